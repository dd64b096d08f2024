//! Classifies the 2,000 MNIST test digits of `data/mnist` with the LeNet-5 of
//! `models/lenet5.safetensors`, without the Rust standard library: `#![no_std]` and
//! `#![no_main]`, with `alloc` on the C library's `malloc` and output through its `write`. The
//! weights and the digits (decompressed by the build script) are embedded in the program.
//!
//! It prints every prediction (100 digits a line) and the accuracy; `tests/nostd_digits.rs` of
//! the `cnn` package writes the same text from the `std` build, and CI (`.ci/run`) compares the
//! two. (The probabilities are not compared: `libm`'s `expf`, in the softmax, differs from the C
//! library's by one unit in the last place for some inputs, and the probabilities by up to 3.) Build and run it on its own (a build of
//! the whole workspace would link `std`, see `Cargo.toml`):
//!
//! ```text
//! cargo build --profile nostd -p cnn-nostd-digits --features program
//! target/nostd/cnn-nostd-digits
//! ```

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::ffi::{c_char, c_int};
use core::fmt::{self, Write};

use cnn::io::{load_weights_from_bytes, read_meta_from_bytes};
use cnn::{cnn, Network};
use report::report;

mod report;

cnn! {
    /// The LeNet-5 of the `lenet5` example, its layers read from the committed model file.
    struct LeNet5 = "../models/lenet5.safetensors"
}

/// The trained weights, with the preprocessing in their metadata.
static WEIGHTS: &[u8] = include_bytes!("../../models/lenet5.safetensors");
/// The test digits' images and labels, as IDX files.
static IMAGES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/t10k-images-idx3-ubyte"));
static LABELS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/t10k-labels-idx1-ubyte"));

/// The entry point the C runtime calls.
#[no_mangle]
pub extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    match classify_all() {
        Ok(report) => match Fd(1).write_str(&report) {
            Ok(()) => 0,
            Err(_) => 1,
        },
        Err(e) => {
            let _ = writeln!(Fd(2), "cnn-nostd-digits: {e}");
            1
        }
    }
}

/// The report: the predictions and the accuracy.
fn classify_all() -> Result<String, String> {
    let mut model = LeNet5::new();
    load_weights_from_bytes(&mut model, WEIGHTS).map_err(|e| e.to_string())?;
    let meta = read_meta_from_bytes(WEIGHTS).map_err(|e| e.to_string())?;
    let input = LeNet5::INPUT;
    meta.check(input.d, 10)?;
    let (pixels, image_shape) = idx(IMAGES, 3)?;
    let (labels, label_shape) = idx(LABELS, 1)?;
    if image_shape[1..] != [input.h, input.w] || label_shape[0] != image_shape[0] {
        return Err(alloc::format!("digits of {image_shape:?} and labels of {label_shape:?} do not fit {input}"));
    }
    let mut x = [0.0f32; <LeNet5 as Network>::INPUT_LEN];
    let mut predictions = Vec::with_capacity(labels.len());
    for image in pixels.chunks_exact(x.len()) {
        for (v, &p) in x.iter_mut().zip(image) {
            *v = p as f32 / 255.0;
        }
        meta.prepare(&mut x, input.d);
        predictions.push(model.classify(&x));
    }
    let labels: Vec<usize> = labels.iter().map(|&l| usize::from(l)).collect();
    Ok(report(&predictions, &labels))
}

/// The values after the header of an IDX file of unsigned bytes with `dims` dimensions, and the
/// dimensions.
fn idx(bytes: &[u8], dims: usize) -> Result<(&[u8], Vec<usize>), String> {
    let word = |i: usize| bytes.get(4 * i..4 * i + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    if word(0) != Some(0x0800 + dims) {
        return Err(alloc::format!("not an IDX file of bytes in {dims} dimensions"));
    }
    let shape = (1..=dims).map(word).collect::<Option<Vec<usize>>>().ok_or("a truncated IDX header")?;
    let values = &bytes[4 * (dims + 1)..];
    if values.len() != shape.iter().product::<usize>() {
        return Err(alloc::format!("{} values for the dimensions {shape:?}", values.len()));
    }
    Ok((values, shape))
}

/// A file descriptor of the C library, written with `write`.
struct Fd(c_int);

impl Write for Fd {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s.as_bytes();
        while !rest.is_empty() {
            // SAFETY: `rest` is valid for reads of its length.
            let written = unsafe { libc::write(self.0, rest.as_ptr().cast(), rest.len()) };
            if written <= 0 {
                return Err(fmt::Error);
            }
            rest = &rest[written as usize..];
        }
        Ok(())
    }
}

/// The C library's allocator: `posix_memalign` for every alignment, `free`.
struct Malloc;

// SAFETY: `posix_memalign` returns memory of the size and alignment asked (at least a pointer's
// alignment, as it requires) or fails, and `free` releases what it returned.
unsafe impl GlobalAlloc for Malloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut ptr = core::ptr::null_mut();
        let align = layout.align().max(core::mem::size_of::<usize>());
        // SAFETY: `align` is a power of two and a multiple of the size of a pointer.
        match unsafe { libc::posix_memalign(&mut ptr, align, layout.size()) } {
            0 => ptr.cast(),
            _ => core::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _: Layout) {
        // SAFETY: `ptr` was returned by `alloc`.
        unsafe { libc::free(ptr.cast()) }
    }
}

#[global_allocator]
static ALLOCATOR: Malloc = Malloc;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let _ = writeln!(Fd(2), "cnn-nostd-digits: {info}");
    // SAFETY: `abort` ends the process; nothing is left to unwind.
    unsafe { libc::abort() }
}

// The target's precompiled `alloc` is built for unwinding: its landing pads name the unwinder's
// `_Unwind_Resume` and the personality routine of `std`. With `panic = "abort"` nothing here
// unwinds (the panic handler above aborts), so no landing pad runs and neither is ever called;
// they are defined, as aborts, for the program to link without an unwinder.

/// Never called: the personality routine of a frame being unwound.
#[no_mangle]
extern "C" fn rust_eh_personality() {
    // SAFETY: `abort` ends the process.
    unsafe { libc::abort() }
}

/// Never called: resumes unwinding after a landing pad.
#[allow(non_snake_case)]
#[no_mangle]
extern "C" fn _Unwind_Resume() -> ! {
    // SAFETY: `abort` ends the process.
    unsafe { libc::abort() }
}
