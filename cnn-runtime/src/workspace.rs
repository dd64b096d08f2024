//! Buffers a generated model reuses from one step to the next.

use crate::prelude::*;

/// Per-sample sizes (and per-chunk ones for scratch) of a model's workspace, computed by the
/// `cnn!` macro from its layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkspaceSizes {
    /// Sum of every layer's output size: all activations of one sample.
    pub acts: usize,
    /// All gradient buffers of one sample (each as large as the largest activation).
    pub grad: usize,
    /// Sum of every layer's kept state (max-pool argmax).
    pub state: usize,
    /// Largest per-chunk scratch of any layer.
    pub scratch: usize,
    /// Largest per-chunk partial gradient sums of any layer ([`crate::kernels::Layer::PARTIAL`]).
    pub partial: usize,
}

/// The activations, gradients and scratch of a model for the largest batch seen so far.
///
/// It grows when a larger batch arrives and never shrinks, so training with a fixed batch size
/// allocates on the first step only.
#[derive(Clone, Debug, Default)]
pub struct Workspace {
    batch: usize,
    grad_batch: usize,
    acts: Vec<f32>,
    grad: Vec<f32>,
    state: Vec<u32>,
    scratch: Vec<f32>,
    partial: Vec<f32>,
}

/// The slices of a [`Workspace`] sized for one batch.
#[derive(Debug)]
pub struct WorkspaceParts<'a> {
    /// All activations, layer after layer, each `n * out` values.
    pub acts: &'a mut [f32],
    /// The gradient buffers.
    pub grad: &'a mut [f32],
    /// Kept state, layer after layer, each `n * state` values.
    pub state: &'a mut [u32],
    /// Per-chunk scratch.
    pub scratch: &'a mut [f32],
    /// Per-chunk parameter gradient sums.
    pub partial: &'a mut [f32],
}

impl Workspace {
    /// An empty workspace; buffers are allocated on first use.
    pub const fn new() -> Self {
        Workspace {
            batch: 0,
            grad_batch: 0,
            acts: Vec::new(),
            grad: Vec::new(),
            state: Vec::new(),
            scratch: Vec::new(),
            partial: Vec::new(),
        }
    }

    /// Every activation buffer, as the last [`parts`](Workspace::parts) laid them out.
    pub fn acts(&self) -> &[f32] {
        &self.acts
    }

    /// Grows the buffers a forward pass needs for a batch of `n` samples (if needed) and lends
    /// them out; the gradient buffers come out empty.
    pub fn parts(&mut self, n: usize, sizes: &WorkspaceSizes) -> WorkspaceParts<'_> {
        self.lend(n, sizes, false)
    }

    /// Like [`parts`](Workspace::parts), with the gradient buffers of a backward pass too.
    pub fn training_parts(&mut self, n: usize, sizes: &WorkspaceSizes) -> WorkspaceParts<'_> {
        self.lend(n, sizes, true)
    }

    fn lend(&mut self, n: usize, sizes: &WorkspaceSizes, training: bool) -> WorkspaceParts<'_> {
        let chunks = crate::kernels::chunk_count(n);
        // A smaller batch can have more chunks than a larger one, so size for the most.
        let most = crate::kernels::MAX_CHUNKS.max(chunks);
        let grow = |v: &mut Vec<f32>, len: usize| {
            if v.len() < len {
                v.resize(len, 0.0)
            }
        };
        if n > self.batch {
            grow(&mut self.acts, n * sizes.acts);
            self.state.resize(n * sizes.state, 0);
            grow(&mut self.scratch, most * sizes.scratch);
            self.batch = n;
            // The matrix products' per-thread buffers, on every thread that may run them.
            #[cfg(feature = "std")]
            rayon::broadcast(|_| crate::kernels::reserve_buffers());
        }
        let (grad, partial) = if training {
            if n > self.grad_batch {
                grow(&mut self.grad, n * sizes.grad);
                grow(&mut self.partial, most * sizes.partial);
                self.grad_batch = n;
            }
            (&mut self.grad[..n * sizes.grad], &mut self.partial[..chunks * sizes.partial])
        } else {
            (&mut self.grad[..0], &mut self.partial[..0])
        };
        WorkspaceParts {
            acts: &mut self.acts[..n * sizes.acts],
            grad,
            state: &mut self.state[..n * sizes.state],
            scratch: &mut self.scratch[..chunks * sizes.scratch],
            partial,
        }
    }
}
