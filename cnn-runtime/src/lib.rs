//! CPU runtime of the [`cnn`](https://docs.rs/cnn) crate.
//!
//! The `cnn!` macro generates a model struct whose every dimension is a compile-time constant and
//! wires it to the const-generic layer kernels of this crate. Everything a training loop needs
//! beyond the model itself lives here too: the traits that every generated model implements
//! ([`Network`] for its layers, parameters and training state, [`Model`] for its one output),
//! the [`optim`] module with its [`Optimizer`] trait, seeded initialisation ([`init`]) and the
//! [`Error`] type.
//!
//! Conventions shared with PyTorch, so that models and weights move both ways:
//! batches are NCHW `f32`, convolution weights are `[K, D, FH, FW]`, fully connected weights are
//! `[out, in]`, and flattening before a fully connected layer follows `torch.flatten` on NCHW.

//!
//! Without the default feature `std` the crate is `#![no_std]` (it needs `alloc`): the kernels,
//! the traits, the optimizers and loading weights from bytes
//! ([`io::load_weights_from_bytes`]) remain, computed on one thread with the maths of `libm`;
//! threads, files, data sets, augmentation, distributed training and ONNX export need `std`.

#![cfg_attr(not(feature = "std"), no_std)]
// The documentation links to what needs `std` (saving, files, data sets), absent without it.
#![cfg_attr(not(feature = "std"), allow(rustdoc::broken_intra_doc_links))]
#![warn(missing_docs)]

extern crate alloc;

#[cfg(feature = "std")]
pub mod augment;
#[doc(hidden)]
pub mod compiled;
#[cfg(feature = "std")]
pub mod data;
#[cfg(feature = "std")]
pub mod distributed;
mod error;
pub mod graph;
mod heads;
pub mod init;
pub mod io;
#[doc(hidden)]
pub mod kernels;
mod limit;
#[cfg(feature = "std")]
mod mapped;
mod math;
mod meta;
mod model;
#[cfg(feature = "nalgebra")]
pub mod na;
#[cfg(feature = "std")]
pub mod onnx;
pub mod optim;
mod prelude;
#[cfg(feature = "std")]
pub mod quant;
pub mod schedule;
mod shape;
mod state;
pub mod visual;
mod workspace;

pub use error::Error;
pub use heads::{HeadInfo, MultiTask, PerHead};
pub use kernels::{Loss, Targets};
pub use limit::Limit;
pub use model::{accuracy, Evaluation, LayerInfo, Model, Network, Noise, TensorInfo, TensorKind};
pub use optim::{Adam, AdamW, Optimizer, Segment, Sgd};
pub use schedule::Schedule;
pub use shape::{conv_output_len, Shape};

/// The result type of every fallible runtime operation.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Without the `nalgebra` feature, what `cnn!` generates for nalgebra types is left out.
#[cfg(not(feature = "nalgebra"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __with_nalgebra {
    ($($item:tt)*) => {};
}
