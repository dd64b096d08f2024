//! Const-generic layer kernels, one op family per file.
//!
//! Every layer is a small value (its activation, at most) whose type carries all dimensions as
//! const generics, so each generated model gets kernels with fixed loop bounds. All kernels work
//! on a whole batch of `n` samples stored sample after sample (NCHW) and split it across rayon
//! threads in chunks whose size depends on `n` alone ([`chunk_len`]). Weight gradients are summed
//! per chunk and the chunks reduced in order, so the result has the same bits whatever the
//! number of threads.

mod activation;
mod batch_sums;
mod batchnorm;
mod conv;
mod dropout;
mod gemm;
mod linear;
mod loss;
mod lrn;
mod pool;
mod residual;
mod softmax;
mod sparsity;

pub use activation::{act_backward, sigmoid, Act, Activation};
#[cfg(feature = "std")]
pub(crate) use batch_sums::{with_batch_sums, BatchSums};
pub use batchnorm::BatchNorm;
pub use conv::{col2im, im2col, im2row, Conv2d};
pub use dropout::Dropout;
pub use gemm::{force_isa, gemm, isa, reserve_buffers, Isa, Mat, MatMut};
pub use linear::Linear;
pub use loss::{Loss, Targets};
pub use lrn::Lrn;
pub use pool::{AvgPool2d, L2Pool2d, MaxPool2d};
pub use residual::{add_assign, add_forward, concat_backward, concat_forward, Share};
#[cfg(feature = "std")]
pub(crate) use softmax::softmax_row;
pub use softmax::{softmax_cross_entropy, softmax_forward};
pub use sparsity::{sparsity_penalty, Sparsity};

pub use crate::init::rng;

use core::marker::PhantomData;
use core::sync::atomic::{AtomicU64, Ordering};
#[cfg(feature = "std")]
use rayon::prelude::*;

/// Most chunks a batch is split into for the threads.
///
/// The chunking depends on the batch size only, never on the number of threads, which is what
/// makes training bitwise reproducible across thread counts.
pub const MAX_CHUNKS: usize = 16;

/// Samples per chunk for a batch of `n` samples.
pub const fn chunk_len(n: usize) -> usize {
    if n == 0 {
        1
    } else {
        n.div_ceil(MAX_CHUNKS)
    }
}

/// Number of chunks a batch of `n` samples is split into.
pub const fn chunk_count(n: usize) -> usize {
    n.div_ceil(chunk_len(n))
}

/// Whether a forward pass trains or evaluates.
///
/// Dropout and batch normalisation behave differently in the two: in training, dropout draws a
/// fresh mask from `seed` and batch normalisation uses (and records) the batch's statistics; in
/// evaluation, dropout does nothing and batch normalisation uses its running statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A training pass; `seed` is unique to the step and the layer.
    Train {
        /// Seed of this layer's random draws in this step.
        seed: u64,
    },
    /// An evaluation (inference) pass.
    Eval,
}

impl Mode {
    /// Whether this is a training pass.
    pub const fn is_train(self) -> bool {
        matches!(self, Mode::Train { .. })
    }
}

/// A layer of a generated model: its sizes and its batched forward and backward passes.
///
/// `x` holds `n` input samples of `IN` values, `y` `n` outputs of `OUT` values, `p` the layer's
/// `PARAMS` parameters in PyTorch's layout (weights, then biases), `b` its `BUFFERS` values of
/// non-trained state kept with the model (batch normalisation's running statistics).
pub trait Layer: Sync {
    /// Values per input sample.
    const IN: usize;
    /// Values per output sample.
    const OUT: usize;
    /// Number of parameters (weights, then biases).
    const PARAMS: usize;
    /// `f32` scratch each chunk needs (for instance one sample's im2col matrix).
    const SCRATCH: usize;
    /// `u32` values each sample keeps from the forward to the backward pass (max-pool argmax).
    const STATE: usize;
    /// Multiply-adds times two of one sample's forward pass.
    const FLOPS: u64;
    /// Values of non-trained state kept with the model and saved with its weights.
    const BUFFERS: usize = 0;
    /// `f32` values each chunk needs for its partial parameter gradient sums: `PARAMS` unless
    /// the layer sums its gradients some other way.
    const PARTIAL: usize = Self::PARAMS;

    /// Fills `p` (and `b`) with PyTorch's default initialisation.
    fn init(&self, p: &mut [f32], b: &mut [f32], rng: &mut crate::init::Rng) {
        let _ = (p, b, rng);
    }

    /// Computes `y` from `x`.
    ///
    /// `scratch` holds [`chunk_count`]`(n) * SCRATCH` values, `state` `n * STATE`. A training
    /// pass may update `b`.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        n: usize,
        x: &[f32],
        y: &mut [f32],
        p: &[f32],
        b: &mut [f32],
        scratch: &mut [f32],
        state: &mut [u32],
        mode: Mode,
    );

    /// Back-propagates `dy` (the loss gradient with respect to `y`, which the call may
    /// overwrite) into `dx` (when asked for) and the parameter gradient `dp` (overwritten).
    ///
    /// `partial` holds [`chunk_count`]`(n) * PARTIAL` values for the per-chunk sums.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &self,
        n: usize,
        x: &[f32],
        y: &[f32],
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        p: &[f32],
        dp: &mut [f32],
        scratch: &mut [f32],
        partial: &mut [f32],
        state: &[u32],
    );
}

/// A layer's sizes as values, readable in `const` context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerSizes {
    /// [`Layer::IN`].
    pub inputs: usize,
    /// [`Layer::OUT`].
    pub outputs: usize,
    /// [`Layer::PARAMS`].
    pub params: usize,
    /// [`Layer::SCRATCH`].
    pub scratch: usize,
    /// [`Layer::STATE`].
    pub state: usize,
    /// [`Layer::FLOPS`].
    pub flops: u64,
    /// [`Layer::BUFFERS`].
    pub buffers: usize,
    /// [`Layer::PARTIAL`].
    pub partial: usize,
}

/// The sizes of `layer`'s type.
pub const fn sizes_of<L: Layer>(_layer: &L) -> LayerSizes {
    LayerSizes {
        inputs: L::IN,
        outputs: L::OUT,
        params: L::PARAMS,
        scratch: L::SCRATCH,
        state: L::STATE,
        flops: L::FLOPS,
        buffers: L::BUFFERS,
        partial: L::PARTIAL,
    }
}

/// The sum of `v` in 16 interleaved partial sums, added pairwise at the end, then the values
/// left over: independent additions that vectorise, in an order fixed by the length alone.
pub(crate) fn lane_sum(v: &[f32]) -> f32 {
    lane_sum_of(v, |x| x)
}

/// [`lane_sum`] of `f` of each value.
#[inline(always)]
pub(crate) fn lane_sum_of(v: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    const L: usize = 16;
    let mut acc = [0.0f32; L];
    let chunks = v.chunks_exact(L);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, &x) in acc.iter_mut().zip(chunk) {
            *a += f(x);
        }
    }
    let mut width = L;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            acc[l] += acc[l + width];
        }
    }
    acc[0] + tail.iter().map(|&x| f(x)).sum::<f32>()
}

/// The largest of `values` (0 for none), in `const` context.
pub const fn max_of(values: &[usize]) -> usize {
    let mut max = 0;
    let mut i = 0;
    while i < values.len() {
        if values[i] > max {
            max = values[i];
        }
        i += 1;
    }
    max
}

/// Index of the largest value (the first one on ties; 0 for an empty slice).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// Runs `task(c)` for every chunk `c` in `0..count` on the rayon pool (in order on this thread
/// without the `std` feature).
///
/// The kernels hand their loops to this one function rather than building rayon iterator
/// chains of their own: the thread machinery is then compiled once, in this crate, instead of
/// once per parallel loop of every layer of every model, which is most of what a model costs
/// to compile.
pub fn for_each_chunk(count: usize, task: &(dyn Fn(usize) + Sync)) {
    #[cfg(feature = "std")]
    if count == 1 {
        task(0);
    } else {
        (0..count).into_par_iter().for_each(task);
    }
    #[cfg(not(feature = "std"))]
    (0..count).for_each(task);
}

/// Runs `f` on a thread of the current rayon pool: directly when called from one, otherwise
/// handed to the global pool as one job. A model's pass enters the pool this way once, so that
/// its layers' parallel loops start from inside the pool instead of each going through rayon's
/// queue of jobs from outside, which allocates a block every 63 jobs.
/// Without the `std` feature, there is no pool: `f` runs on this thread.
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(feature = "std")]
    if rayon::current_thread_index().is_none() {
        return rayon::scope(|_| f());
    }
    f()
}

/// A slice lent out in chunks to the tasks of [`for_each_chunk`]: chunk `c` is the values
/// `c * len .. (c + 1) * len` (the last one shorter, those past the end empty), and each can be
/// taken once.
pub struct ChunksMut<'a, T> {
    ptr: *mut T,
    total: usize,
    len: usize,
    taken: AtomicU64,
    _slice: PhantomData<&'a mut [T]>,
}

// SAFETY: the chunks are disjoint and each is handed out once (checked in `take`), so sharing
// the handle between threads shares nothing else; `T: Send` lets the chunks go to them.
unsafe impl<T: Send> Sync for ChunksMut<'_, T> {}

impl<'a, T> ChunksMut<'a, T> {
    /// `slice` in chunks of `len` values (at least 1), at most 64 of them.
    ///
    /// # Panics
    /// When there would be more than 64 chunks.
    pub fn new(slice: &'a mut [T], len: usize) -> Self {
        let len = len.max(1);
        assert!(slice.len().div_ceil(len) <= 64, "{} values in chunks of {len}: more than 64", slice.len());
        ChunksMut { ptr: slice.as_mut_ptr(), total: slice.len(), len, taken: AtomicU64::new(0), _slice: PhantomData }
    }

    /// Chunk `c`, for the one task that owns it.
    ///
    /// # Panics
    /// When chunk `c` was taken before (`c` up to 63).
    pub fn take(&self, c: usize) -> &'a mut [T] {
        let start = (c * self.len).min(self.total);
        let end = (start + self.len).min(self.total);
        if start < end {
            let bit = 1u64 << c;
            assert!(self.taken.fetch_or(bit, Ordering::Relaxed) & bit == 0, "chunk {c} taken twice");
        }
        // SAFETY: start..end lies in the slice borrowed for 'a, and no other chunk overlaps it;
        // a non-empty chunk is handed out once (asserted above).
        unsafe { core::slice::from_raw_parts_mut(self.ptr.add(start), end - start) }
    }
}

/// Chunk `c` of `len` values of `slice` (the last one shorter, those past the end empty).
pub fn chunk<T>(slice: &[T], len: usize, c: usize) -> &[T] {
    let start = (c * len).min(slice.len());
    &slice[start..(start + len).min(slice.len())]
}

/// Sums the per-chunk partial gradients in `partial` (chunk after chunk, `dp.len()` values
/// each) into `dp`, always in chunk order.
pub(crate) fn reduce_partials(n: usize, partial: &[f32], dp: &mut [f32]) {
    let len = dp.len();
    let count = chunk_count(n);
    if len == 0 {
        return;
    }
    // Parallel over parameters, sequential (ordered) over chunks.
    const BLOCK: usize = 4096;
    #[cfg(feature = "std")]
    let blocks = dp.par_chunks_mut(BLOCK);
    #[cfg(not(feature = "std"))]
    let blocks = dp.chunks_mut(BLOCK);
    blocks.enumerate().for_each(|(bi, out)| {
        let off = bi * BLOCK;
        out.copy_from_slice(&partial[off..off + out.len()]);
        for c in 1..count {
            let src = &partial[c * len + off..c * len + off + out.len()];
            for (o, s) in out.iter_mut().zip(src) {
                *o += s;
            }
        }
    });
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests {
    use super::{chunk, for_each_chunk, lane_sum, ChunksMut};
    use crate::kernels::testutil::random_vec;

    #[test]
    fn every_chunk_is_lent_once_and_covers_its_values() {
        let mut v = vec![0u32; 23];
        let chunks = ChunksMut::new(&mut v, 5);
        for_each_chunk(6, &|c| {
            let part = chunks.take(c);
            assert_eq!(part.len(), [5, 5, 5, 5, 3, 0][c]);
            part.iter_mut().for_each(|x| *x += c as u32 + 1);
        });
        let want: Vec<u32> = (0..23).map(|i| i / 5 + 1).collect();
        assert_eq!(v, want);
        assert_eq!(chunk(&want, 5, 4), &[5, 5, 5]);
        assert!(chunk(&want, 5, 7).is_empty());
    }

    #[test]
    #[should_panic(expected = "taken twice")]
    fn a_chunk_cannot_be_lent_twice() {
        let mut v = vec![0.0f32; 8];
        let chunks = ChunksMut::new(&mut v, 4);
        let _first = chunks.take(1);
        let _again = chunks.take(1);
    }

    #[test]
    fn lane_sums_add_every_value() {
        for len in [0, 1, 15, 16, 17, 33, 784, 1001] {
            let v = random_vec(len, len as u64);
            let want: f64 = v.iter().map(|&x| x as f64).sum();
            assert!((lane_sum(&v) as f64 - want).abs() < 1e-4, "length {len}");
            // Small integers add exactly in any order.
            let ints: Vec<f32> = (0..len).map(|i| (i % 7) as f32).collect();
            assert_eq!(lane_sum(&ints), ints.iter().sum::<f32>(), "length {len}");
        }
    }
}
