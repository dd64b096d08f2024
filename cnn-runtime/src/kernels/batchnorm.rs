//! Batch normalisation over the channels of a volume or the features of a vector.

#[cfg(not(feature = "std"))]
use crate::math::Float;
use crate::prelude::*;

use super::batch_sums::{batch_sums, BatchSums};
use super::{chunk, chunk_count, chunk_len, for_each_chunk, Act, ChunksMut, Layer, Mode};

/// Batch normalisation of `C` channels of `S` values each per sample, as in
/// `torch.nn.BatchNorm2d(C)` (`S = H·W`) or `torch.nn.BatchNorm1d(C)` (`S = 1`) with their
/// defaults: `eps = 1e-5`, `momentum = 0.1`, affine, tracking running statistics.
///
/// `y = act(γ·(x − μ)/√(σ² + eps) + β)` per channel, where a training pass takes `μ` and the
/// biased `σ²` over the batch's `n·S` values of the channel and an evaluation pass the running
/// statistics. Parameters: `γ` (weight) then `β` (bias), `C` each. Buffers: `running_mean` and
/// `running_var`, `C` each, then `num_batches_tracked` as one `f32`.
///
/// The statistics are summed in `f64`, each channel by one task, the samples in order and each
/// sample's values in eight interleaved partial sums added in a fixed order at the end (which
/// vectorises), so they have the same bits whatever the number of threads.
#[derive(Clone, Copy, Debug)]
pub struct BatchNorm<const C: usize, const S: usize> {
    /// Activation fused into the output pass.
    pub act: Act,
}

impl<const C: usize, const S: usize> BatchNorm<C, S> {
    /// Added to the variance before its square root.
    pub const EPS: f64 = 1e-5;
    /// Weight of the batch statistics in the update of the running statistics.
    pub const MOMENTUM: f64 = 0.1;

    /// Mean and biased variance of channel `c` over `n` samples of `x`, in two passes.
    fn stats(x: &[f32], n: usize, c: usize) -> (f64, f64) {
        channel_stats(x, n, [C, S], c)
    }

    /// Each channel's mean and biased variance over the global batch of a data-parallel step,
    /// from `hook`'s totals of this pass's sums, into `kept` (four `u32`s per channel) as
    /// [`keep_stats`] writes them; returns the number of values per channel in the global batch.
    ///
    /// One exchange: the sums of `x − K` and `(x − K)²`, shifted by the running mean `K` (the
    /// same in every pass, and close to the mean, so that `var = Σ(x − K)²/M − (Σ(x − K)/M)²`
    /// loses little to cancellation).
    fn global_stats(hook: &dyn BatchSums, x: &[f32], n: usize, shift: &[f32], kept: &mut [u32]) -> usize {
        let mut sums = vec![0.0f64; 2 * C];
        per_channel::<C, _>(&mut sums, 2, |c, s| {
            let (d, squares) = channel_sums::<SHIFTED>(x, x, n, [C, S], c, f64::from(shift[c]));
            s.copy_from_slice(&[d, squares]);
        });
        let m = hook.forward(&mut sums) * S;
        for (c, s) in sums.chunks_exact(2).enumerate() {
            let d = s[0] / m as f64;
            let var = (s[1] / m as f64 - d * d).max(0.0);
            keep_stats(&mut kept[4 * c..4 * c + 4], f64::from(shift[c]) + d, var);
        }
        m
    }

    /// `1/√(var + eps)`.
    fn inv_std(var: f64) -> f64 {
        1.0 / (var + Self::EPS).sqrt()
    }
}

impl<const C: usize, const S: usize> Layer for BatchNorm<C, S> {
    const IN: usize = C * S;
    const OUT: usize = C * S;
    const PARAMS: usize = 2 * C;
    /// Each channel's mean and inverse standard deviation (in the first chunk's part).
    const SCRATCH: usize = 2 * C;
    /// A training pass keeps each channel's batch mean and variance (`f64`, as two `u32` each)
    /// in the first sample's state, for the backward pass not to compute them again.
    const STATE: usize = 4 * C;
    /// Two per value: the normalisation `(x − μ)·scale + β` counted as one multiply-add. The
    /// batch statistics of a training pass are not counted, as they are not at inference.
    const FLOPS: u64 = 2 * (C * S) as u64;
    const BUFFERS: usize = 2 * C + 1;

    fn init(&self, p: &mut [f32], b: &mut [f32], _: &mut crate::init::Rng) {
        let (gamma, beta) = p[..2 * C].split_at_mut(C);
        gamma.fill(1.0);
        beta.fill(0.0);
        let (mean, rest) = b[..2 * C + 1].split_at_mut(C);
        mean.fill(0.0);
        rest[..C].fill(1.0);
        rest[C] = 0.0;
    }

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
    ) {
        if n == 0 {
            return;
        }
        let (gamma, beta) = p[..2 * C].split_at(C);
        let stats = &mut scratch[..2 * C];
        let (running_mean, rest) = b[..2 * C + 1].split_at_mut(C);
        let (running_var, tracked) = rest.split_at_mut(C);
        if mode.is_train() {
            // Each channel's mean and variance into the state: over this pass's samples, or
            // over the global batch when a data-parallel step spreads it over several passes.
            let kept = &mut state[..4 * C];
            let m = batch_sums(|hook| match hook {
                Some(hook) => Self::global_stats(hook, x, n, running_mean, kept),
                None => {
                    per_channel::<C, _>(kept, 4, |c, kept| {
                        let (mean, var) = Self::stats(x, n, c);
                        keep_stats(kept, mean, var);
                    });
                    n * S
                }
            });
            let unbias = if m > 1 { m as f64 / (m - 1) as f64 } else { 1.0 };
            let keep = 1.0 - Self::MOMENTUM;
            let each = stats.chunks_exact_mut(2).zip(running_mean.iter_mut()).zip(running_var.iter_mut());
            for (c, ((st, rm), rv)) in each.enumerate() {
                let (mean, var) = kept_stats(&kept[4 * c..4 * c + 4]);
                st[0] = mean as f32;
                st[1] = Self::inv_std(var) as f32;
                *rm = (keep * *rm as f64 + Self::MOMENTUM * mean) as f32;
                *rv = (keep * *rv as f64 + Self::MOMENTUM * var * unbias) as f32;
            }
            tracked[0] += 1.0;
        } else {
            for (c, st) in stats.chunks_exact_mut(2).enumerate() {
                st[0] = running_mean[c];
                st[1] = Self::inv_std(running_var[c] as f64) as f32;
            }
        }
        let stats = &*stats;
        let len = chunk_len(n) * C * S;
        let ys = ChunksMut::new(&mut y[..n * C * S], len);
        let x = &x[..n * C * S];
        for_each_chunk(chunk_count(n), &|k| {
            let (y, x) = (ys.take(k), chunk(x, len, k));
            for (i, (y, x)) in y.chunks_exact_mut(S).zip(x.chunks_exact(S)).enumerate() {
                let c = i % C;
                let (mean, scale, shift) = (stats[2 * c], gamma[c] * stats[2 * c + 1], beta[c]);
                self.act.map_zip(y, x, |_, x| (x - mean) * scale + shift);
            }
        });
    }

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
        _: &mut [f32],
        state: &[u32],
    ) {
        let dp = &mut dp[..2 * C];
        if n == 0 {
            dp.fill(0.0);
            return;
        }
        let (len, count) = (chunk_len(n) * C * S, chunk_count(n));
        let dy = &mut dy[..n * C * S];
        let dys = ChunksMut::new(&mut *dy, len);
        let y = &y[..n * C * S];
        for_each_chunk(count, &|c| self.act.backward_in_place(chunk(y, len, c), dys.take(c)));
        let dy = &*dy;
        // Per channel: the batch statistics kept by the forward pass, dγ = Σ dy·x̂ and dβ = Σ dy.
        let stats = &mut scratch[..2 * C];
        let (dgamma, dbeta) = dp.split_at_mut(C);
        let per = C.div_ceil(64);
        let (sts, dgs, dbs) = (ChunksMut::new(stats, 2 * per), ChunksMut::new(dgamma, per), ChunksMut::new(dbeta, per));
        // The sums in `f64` as well, when they are to be added over the global batch.
        let hooked = batch_sums(|hook| hook.is_some());
        let mut sums = if hooked { vec![0.0f64; 2 * C] } else { Vec::new() };
        let wide = ChunksMut::new(&mut sums, 2 * per);
        for_each_chunk(C.div_ceil(per), &|block| {
            let (st, dg, db, wide) = (sts.take(block), dgs.take(block), dbs.take(block), wide.take(block));
            for (i, ((st, dg), db)) in st.chunks_exact_mut(2).zip(dg).zip(db).enumerate() {
                let c = block * per + i;
                let (mean, var) = kept_stats(&state[4 * c..4 * c + 4]);
                let inv = Self::inv_std(var);
                let (sum, dot) = gradient_sums(x, dy, n, [C, S], c, mean);
                if let Some(w) = wide.get_mut(2 * i..2 * i + 2) {
                    w.copy_from_slice(&[sum, dot]);
                }
                let dot = dot * inv;
                st[0] = mean as f32;
                st[1] = inv as f32;
                *dg = dot as f32;
                *db = sum as f32;
            }
        });
        // The totals over the global batch, which every pass exchanges whether or not it needs
        // dx: per channel Σdy/M and Σ(dy·x̂)/M.
        let global = batch_sums(|hook| {
            hook.map(|hook| {
                let m = (hook.backward(&mut sums) * S) as f64;
                let inv = |c: usize| Self::inv_std(kept_stats(&state[4 * c..4 * c + 4]).1);
                let each = sums.chunks_exact(2).enumerate();
                each.flat_map(|(c, s)| [(s[0] / m) as f32, (s[1] * inv(c) / m) as f32]).collect::<Vec<f32>>()
            })
        });
        let Some(dx) = dx else { return };
        // dx = γ/√(σ² + eps) · (dy − Σdy/M − x̂·Σ(dy·x̂)/M), with M = n·S, or with the sums and
        // M of the global batch.
        let (stats, dp, gamma) = (&*stats, &*dp, &p[..C]);
        let m = (n * S) as f32;
        let coefficients = |c: usize| match &global {
            Some(g) => (g[2 * c], g[2 * c + 1]),
            None => (dp[C + c] / m, dp[c] / m),
        };
        let dxs = ChunksMut::new(&mut dx[..n * C * S], len);
        let x = &x[..n * C * S];
        for_each_chunk(count, &|k| {
            let (dx, dy, x) = (dxs.take(k), chunk(dy, len, k), chunk(x, len, k));
            for (i, ((dx, dy), x)) in dx.chunks_exact_mut(S).zip(dy.chunks_exact(S)).zip(x.chunks_exact(S)).enumerate()
            {
                let c = i % C;
                let (mean, inv) = (stats[2 * c], stats[2 * c + 1]);
                let (scale, (dbeta, dgamma)) = (gamma[c] * inv, coefficients(c));
                for ((dx, &dy), &x) in dx.iter_mut().zip(dy).zip(x) {
                    *dx = scale * (dy - dbeta - (x - mean) * inv * dgamma);
                }
            }
        });
    }
}

/// Runs `f(c, values)` for each of `C` channels, on `each` values of `out` per channel, in
/// blocks of channels over the threads.
fn per_channel<const C: usize, T: Send>(out: &mut [T], each: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let per = C.div_ceil(64);
    let outs = ChunksMut::new(&mut out[..C * each], each * per);
    for_each_chunk(C.div_ceil(per), &|block| {
        for (i, values) in outs.take(block).chunks_exact_mut(each).enumerate() {
            f(block * per + i, values);
        }
    });
}

/// The values of channel `c` in each of the first `n` samples of `v` (`[chans, s]` values
/// per sample), samples in order.
#[inline(always)]
fn planes(v: &[f32], n: usize, [chans, s]: [usize; 2], c: usize) -> impl Iterator<Item = &[f32]> {
    v[..n * chans * s].chunks_exact(chans * s).map(move |sample| &sample[c * s..(c + 1) * s])
}

/// What [`channel_sums`] adds up, per pair of values `(a, b)`: `a` ([`SUM`]), `(a − mean)²`
/// ([`SQUARES`]), both `b` and `b·(a − mean)` ([`GRADIENT`]), or both `a − mean` and
/// `(a − mean)²` ([`SHIFTED`]).
const SUM: u8 = 0;
const SQUARES: u8 = 1;
const GRADIENT: u8 = 2;
const SHIFTED: u8 = 3;

/// The sums that `K` names over the pairs of values of channel `c` in the first `n` samples of
/// `a` and `b`, in one pass: value `i` of each plane goes to partial sum `i % 8` of each, in
/// `f64`, and the eight are added pairwise at the end; the second is 0 unless `K` is
/// [`GRADIENT`]. With AVX2, the eight partial sums are two registers, whose lanes do each
/// value's operations as the scalar code does: the same bits.
#[inline(always)]
fn channel_sums<const K: u8>(a: &[f32], b: &[f32], n: usize, dims: [usize; 2], c: usize, mean: f64) -> (f64, f64) {
    let mut lanes = [[0.0f64; 8]; 2];
    for (pa, pb) in planes(a, n, dims, c).zip(planes(b, n, dims, c)) {
        let ((ca, ra), (cb, rb)) = (pa.as_chunks::<8>(), pb.as_chunks::<8>());
        whole_blocks::<K>(ca, cb, mean, &mut lanes);
        for (j, (&va, &vb)) in ra.iter().zip(rb).enumerate() {
            add::<K>(&mut lanes, j, va, vb, mean);
        }
    }
    let total = |l: [f64; 8]| ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
    (total(lanes[0]), total(lanes[1]))
}

/// Adds the pair `(a, b)` into partial sum `j`, as [`channel_sums`] says.
#[inline(always)]
fn add<const K: u8>(lanes: &mut [[f64; 8]; 2], j: usize, a: f32, b: f32, mean: f64) {
    let d = a as f64 - mean;
    match K {
        SUM => lanes[0][j] += a as f64,
        SQUARES => lanes[0][j] += d * d,
        SHIFTED => {
            lanes[0][j] += d;
            lanes[1][j] += d * d;
        }
        _ => {
            lanes[0][j] += b as f64;
            lanes[1][j] += b as f64 * d;
        }
    }
}

/// [`channel_sums`]' whole blocks of 8 pairs: in AVX2 registers where the processor has them.
#[inline(always)]
fn whole_blocks<const K: u8>(ca: &[[f32; 8]], cb: &[[f32; 8]], mean: f64, lanes: &mut [[f64; 8]; 2]) {
    #[cfg(target_arch = "x86_64")]
    if super::isa() != super::Isa::Portable {
        // SAFETY: the processor has AVX2 (what `isa` found, or a lower choice).
        unsafe { avx2_lanes::<K>(ca, cb, mean, lanes) };
        return;
    }
    scalar_lanes::<K>(ca, cb, mean, lanes);
}

/// [`whole_blocks`] one value at a time.
#[inline(always)]
fn scalar_lanes<const K: u8>(ca: &[[f32; 8]], cb: &[[f32; 8]], mean: f64, lanes: &mut [[f64; 8]; 2]) {
    ca.iter().zip(cb).for_each(|(va, vb)| (0..8).for_each(|j| add::<K>(lanes, j, va[j], vb[j], mean)));
}

/// [`channel_sums`]' whole blocks of 8 pairs, the partial sums in registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn avx2_lanes<const K: u8>(ca: &[[f32; 8]], cb: &[[f32; 8]], mean: f64, lanes: &mut [[f64; 8]; 2]) {
    use core::arch::x86_64::*;
    // SAFETY (all loads and stores): 8 `f32` or 4 `f64` values inside the arrays named.
    let load = |l: &[f64; 8]| unsafe { [_mm256_loadu_pd(l.as_ptr()), _mm256_loadu_pd(l.as_ptr().add(4))] };
    let wide = |v: &[f32; 8]| {
        let v = unsafe { _mm256_loadu_ps(v.as_ptr()) };
        [_mm256_cvtps_pd(_mm256_castps256_ps128(v)), _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(v))]
    };
    let (mut s, mut t) = (load(&lanes[0]), load(&lanes[1]));
    let m = _mm256_set1_pd(mean);
    for (va, vb) in ca.iter().zip(cb) {
        let a = wide(va);
        for h in 0..2 {
            match K {
                SUM => s[h] = _mm256_add_pd(s[h], a[h]),
                SQUARES => {
                    let d = _mm256_sub_pd(a[h], m);
                    s[h] = _mm256_add_pd(s[h], _mm256_mul_pd(d, d));
                }
                SHIFTED => {
                    let d = _mm256_sub_pd(a[h], m);
                    s[h] = _mm256_add_pd(s[h], d);
                    t[h] = _mm256_add_pd(t[h], _mm256_mul_pd(d, d));
                }
                _ => {
                    let (b, d) = (wide(vb)[h], _mm256_sub_pd(a[h], m));
                    s[h] = _mm256_add_pd(s[h], b);
                    t[h] = _mm256_add_pd(t[h], _mm256_mul_pd(b, d));
                }
            }
        }
    }
    for (l, v) in lanes.iter_mut().zip([s, t]) {
        unsafe {
            _mm256_storeu_pd(l.as_mut_ptr(), v[0]);
            _mm256_storeu_pd(l.as_mut_ptr().add(4), v[1]);
        }
    }
}

/// Mean and biased variance of channel `c` over `n` samples of `x` (`[chans, s]` values per
/// sample), in two passes.
fn channel_stats(x: &[f32], n: usize, dims: [usize; 2], c: usize) -> (f64, f64) {
    let m = (n * dims[1]) as f64;
    let mean = channel_sums::<SUM>(x, x, n, dims, c, 0.0).0 / m;
    (mean, channel_sums::<SQUARES>(x, x, n, dims, c, mean).0 / m)
}

/// `Σ dy` and `Σ dy·(x − mean)` over channel `c` of `n` samples, in one pass.
fn gradient_sums(x: &[f32], dy: &[f32], n: usize, dims: [usize; 2], c: usize, mean: f64) -> (f64, f64) {
    channel_sums::<GRADIENT>(x, dy, n, dims, c, mean)
}

/// Writes `mean` and `var` into four `u32`s of a sample's state.
fn keep_stats(state: &mut [u32], mean: f64, var: f64) {
    for (pair, v) in state.chunks_exact_mut(2).zip([mean, var]) {
        let bits = v.to_bits();
        pair[0] = bits as u32;
        pair[1] = (bits >> 32) as u32;
    }
}

/// The mean and variance [`keep_stats`] wrote.
fn kept_stats(state: &[u32]) -> (f64, f64) {
    let value = |pair: &[u32]| f64::from_bits(u64::from(pair[0]) | (u64::from(pair[1]) << 32));
    (value(&state[..2]), value(&state[2..4]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::batch_sums::with_batch_sums;
    use crate::kernels::chunk_count;
    use crate::kernels::testutil::{assert_close, forward, forward_in, layer_gradient_errors, random_vec};

    /// Runs a training forward pass and a backward pass; returns `y`, buffers, `dx` and `dp`.
    fn train_step<const C: usize, const S: usize>(layer: &BatchNorm<C, S>, n: usize, seed: u64) -> [Vec<f32>; 4] {
        let x = random_vec(n * C * S, seed);
        let p = random_vec(2 * C, seed + 1);
        let mut b = random_vec(2 * C + 1, seed + 2).iter().map(|v| v.abs()).collect::<Vec<_>>();
        let (y, state) = forward_in(layer, n, &x, &p, &mut b, Mode::Train { seed: 0 });
        let mut dy = random_vec(n * C * S, seed + 3);
        let mut dx = vec![0.0; n * C * S];
        let mut dp = vec![0.0; 2 * C];
        let count = chunk_count(n);
        let (mut scratch, mut partial) = (vec![0.0; count * 2 * C], vec![0.0; count * 2 * C]);
        layer.backward(n, &x, &y, &mut dy, Some(&mut dx), &p, &mut dp, &mut scratch, &mut partial, &state);
        [y, b, dx, dp]
    }

    /// Two passes over parts of one batch that meet at a barrier and add their sums in order.
    struct Halves {
        barrier: std::sync::Barrier,
        slots: std::sync::Mutex<[Vec<f64>; 2]>,
        samples: usize,
    }

    /// One of the [`Halves`], with its weight in the whole batch's loss.
    struct Half<'a>(&'a Halves, usize, f64);

    impl Half<'_> {
        fn exchange(&self, sums: &mut [f64]) {
            self.0.slots.lock().unwrap()[self.1] = sums.to_vec();
            self.0.barrier.wait();
            let slots = self.0.slots.lock().unwrap().clone();
            sums.iter_mut().zip(&slots[0]).zip(&slots[1]).for_each(|((s, a), b)| *s = a + b);
            self.0.barrier.wait();
        }
    }

    impl BatchSums for Half<'_> {
        fn forward(&self, sums: &mut [f64]) -> usize {
            self.exchange(sums);
            self.0.samples
        }

        fn backward(&self, sums: &mut [f64]) -> usize {
            sums.iter_mut().for_each(|s| *s *= self.2);
            self.exchange(sums);
            sums.iter_mut().for_each(|s| *s /= self.2);
            self.0.samples
        }
    }

    #[test]
    fn statistics_over_the_global_batch_match_one_pass_over_it() {
        const C: usize = 3;
        const S: usize = 4;
        const N: usize = 7;
        let layer = BatchNorm::<C, S> { act: Act::Relu };
        let (x, p, dy) = (random_vec(N * C * S, 1), random_vec(2 * C, 2), random_vec(N * C * S, 3));
        let pass = |n: usize, x: &[f32], dy: &[f32], b: &mut Vec<f32>| {
            let (y, state) = forward_in(&layer, n, x, &p, b, Mode::Train { seed: 0 });
            let (mut dy, mut dx, mut dp) = (dy.to_vec(), vec![0.0; n * C * S], vec![0.0; 2 * C]);
            let (mut scratch, mut partial) = (vec![0.0; chunk_count(n) * 2 * C], vec![0.0; chunk_count(n) * 2 * C]);
            layer.backward(n, x, &y, &mut dy, Some(&mut dx), &p, &mut dp, &mut scratch, &mut partial, &state);
            (y, dx, dp)
        };
        let start = vec![0.1, -0.2, 0.3, 1.0, 2.0, 0.5, 4.0];
        let mut whole_b = start.clone();
        let whole = pass(N, &x, &dy, &mut whole_b);
        // Samples 0..3 and 3..7 as two passes, each loss a mean over its own samples.
        let halves = Halves { barrier: std::sync::Barrier::new(2), slots: Default::default(), samples: N };
        let parts: Vec<_> = std::thread::scope(|scope| {
            let run = |g: usize, range: core::ops::Range<usize>| {
                let (halves, pass, x, dy, start) = (&halves, &pass, &x, &dy, &start);
                scope.spawn(move || {
                    let weight = range.len() as f64 / N as f64;
                    let values = range.start * C * S..range.end * C * S;
                    let dy: Vec<f32> = dy[values.clone()].iter().map(|v| v / weight as f32).collect();
                    let mut b = start.clone();
                    let out = with_batch_sums(&Half(halves, g, weight), || pass(range.len(), &x[values], &dy, &mut b));
                    (out, b, weight as f32)
                })
            };
            let handles = [run(0, 0..3), run(1, 3..7)];
            handles.map(|h| h.join().unwrap()).into()
        });
        let y: Vec<f32> = parts.iter().flat_map(|((y, _, _), _, _)| y.clone()).collect();
        assert_close(&y, &whole.0, 1e-5, "outputs");
        let dx: Vec<f32> = parts.iter().flat_map(|((_, dx, _), _, w)| dx.iter().map(move |v| v * w)).collect();
        assert_close(&dx, &whole.1, 1e-5, "input gradient");
        let dp: Vec<f32> = (0..2 * C).map(|i| parts.iter().map(|((_, _, dp), _, w)| dp[i] * w).sum()).collect();
        assert_close(&dp, &whole.2, 1e-5, "parameter gradient");
        for (_, b, _) in &parts {
            assert_close(b, &whole_b, 1e-6, "running statistics");
        }
        // Each part on its own normalises differently: the check above can fail.
        let mut alone = start.clone();
        let first = pass(3, &x[..3 * C * S], &dy[..3 * C * S], &mut alone);
        assert!(first.0.iter().zip(&whole.0).any(|(a, b)| (a - b).abs() > 1e-3));
    }

    #[test]
    fn init_matches_pytorch() {
        let (mut p, mut b) = (vec![9.0; 6], vec![9.0; 7]);
        BatchNorm::<3, 4> { act: Act::Identity }.init(&mut p, &mut b, &mut crate::init::rng(0));
        assert_eq!(p, [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(b, [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]);
    }

    #[test]
    fn training_output_has_mean_beta_and_std_gamma() {
        const C: usize = 3;
        const S: usize = 4;
        let n = 9;
        let x: Vec<f32> = random_vec(n * C * S, 5).iter().enumerate().map(|(i, v)| 3.0 * v + (i % 7) as f32).collect();
        let p = [0.5, 2.0, 1.5, -1.0, 0.0, 3.0];
        let y = forward(&BatchNorm::<C, S> { act: Act::Identity }, n, &x, &p).0;
        for c in 0..C {
            let v: Vec<f64> = planes(&y, n, [C, S], c).flatten().map(|&v| v as f64).collect();
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let std = (v.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
            assert!((mean - p[C + c] as f64).abs() < 1e-5, "channel {c}: mean {mean}");
            assert!((std - p[c] as f64).abs() < 1e-4, "channel {c}: std {std}");
        }
    }

    #[test]
    fn running_statistics_follow_the_update_rule() {
        const C: usize = 2;
        const S: usize = 3;
        let n = 4;
        let layer = BatchNorm::<C, S> { act: Act::Relu };
        let p = [1.0, 1.0, 0.0, 0.0];
        let mut b = vec![0.0; 2 * C + 1];
        layer.init(&mut p.clone(), &mut b, &mut crate::init::rng(0));
        let (mut rm, mut rv) = (vec![0.0f64; C], vec![1.0f64; C]);
        for step in 1..=2 {
            let x = random_vec(n * C * S, step);
            forward_in(&layer, n, &x, &p, &mut b, Mode::Train { seed: step });
            for c in 0..C {
                let v: Vec<f64> = planes(&x, n, [C, S], c).flatten().map(|&v| v as f64).collect();
                let m = v.len() as f64;
                let mean = v.iter().sum::<f64>() / m;
                let unbiased = v.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (m - 1.0);
                rm[c] = 0.9 * rm[c] + 0.1 * mean;
                rv[c] = 0.9 * rv[c] + 0.1 * unbiased;
                assert!((b[c] as f64 - rm[c]).abs() < 1e-6, "step {step}: running_mean[{c}] {}", b[c]);
                assert!((b[C + c] as f64 - rv[c]).abs() < 1e-6, "step {step}: running_var[{c}] {}", b[C + c]);
            }
            assert_eq!(b[2 * C], step as f32);
        }
        // A single value per channel: the variance update uses the biased estimate, zero.
        let mut b = vec![0.0, 1.0, 0.0];
        forward_in(&BatchNorm::<1, 1> { act: Act::Identity }, 1, &[2.0], &[1.0, 0.0], &mut b, Mode::Train { seed: 0 });
        assert_eq!(b, [0.2, 0.9, 1.0]);
    }

    #[test]
    fn evaluation_uses_running_statistics_and_keeps_them() {
        const C: usize = 2;
        const S: usize = 3;
        let n = 3;
        let x = random_vec(n * C * S, 11);
        let p = [0.5, -2.0, 0.25, 0.1];
        let mut b = vec![0.3, -0.2, 0.5, 2.0, 7.0];
        let before = b.clone();
        let y = forward_in(&BatchNorm::<C, S> { act: Act::Relu }, n, &x, &p, &mut b, Mode::Eval).0;
        assert_eq!(b, before);
        for (i, (&y, &x)) in y.iter().zip(&x).enumerate() {
            let c = i / S % C;
            let want =
                (p[c] as f64 * (x as f64 - b[c] as f64) / (b[C + c] as f64 + 1e-5).sqrt() + p[C + c] as f64).max(0.0);
            assert!((y as f64 - want).abs() < 1e-6, "index {i}: got {y}, want {want}");
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        for act in [Act::Identity, Act::Relu, Act::Tanh] {
            let (ex, ep) = layer_gradient_errors(&BatchNorm::<5, 1> { act }, 4, 21);
            println!("batchnorm C=5 S=1 ({act:?}, n=4): max relative error dx {ex:e}, dparams {ep:e}");
            assert!(ex < 1e-2 && ep < 1e-2, "{act:?}: dx {ex}, dparams {ep}");
            let (ex, ep) = layer_gradient_errors(&BatchNorm::<3, 6> { act }, 3, 22);
            println!("batchnorm C=3 S=6 ({act:?}, n=3): max relative error dx {ex:e}, dparams {ep:e}");
            assert!(ex < 1e-2 && ep < 1e-2, "{act:?}: dx {ex}, dparams {ep}");
        }
    }

    #[test]
    fn more_channels_than_tasks() {
        // 70 channels go to 35 tasks of 2: statistics, running averages and gradients as ever.
        const C: usize = 70;
        let (x, p) = (random_vec(5 * C * 2, 31), random_vec(2 * C, 32));
        let mut b = vec![0.0; 2 * C + 1];
        let layer = BatchNorm::<C, 2> { act: Act::Identity };
        let y = forward_in(&layer, 5, &x, &p, &mut b, Mode::Train { seed: 0 }).0;
        for c in [0, 1, 2, 33, 69] {
            let mean = planes(&x, 5, [C, 2], c).flatten().map(|&v| v as f64).sum::<f64>() / 10.0;
            assert!((b[c] as f64 - 0.1 * mean).abs() < 1e-6, "running mean of channel {c}");
            let out: f64 = planes(&y, 5, [C, 2], c).flatten().map(|&v| v as f64).sum::<f64>() / 10.0;
            assert!((out - p[C + c] as f64).abs() < 1e-5, "channel {c} has mean beta");
        }
        let (ex, ep) = layer_gradient_errors(&layer, 5, 33);
        assert!(ex < 1e-2 && ep < 1e-2, "dx {ex}, dparams {ep}");
    }

    #[test]
    fn same_bits_for_any_thread_count() -> Result<(), rayon::ThreadPoolBuildError> {
        let layer = BatchNorm::<4, 5> { act: Act::Relu };
        let run = |threads| -> Result<_, rayon::ThreadPoolBuildError> {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
            Ok(pool.install(|| train_step(&layer, 37, 3)).map(|v| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>()))
        };
        assert_eq!(run(1)?, run(3)?);
        Ok(())
    }

    /// The AVX2 lanes do each value's operations as the scalar code: the same bits, for each
    /// kind of sum, over planes whose lengths leave every remainder of 8.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_lanes_add_as_the_scalar_code() {
        if !is_x86_feature_detected!("avx2") {
            return;
        }
        fn both<const K: u8>(a: &[f32], b: &[f32], mean: f64) {
            let (ca, cb) = (a.as_chunks::<8>().0, b.as_chunks::<8>().0);
            let mut scalar = [[0.25f64; 8]; 2];
            scalar_lanes::<K>(ca, cb, mean, &mut scalar);
            let mut vector = [[0.25f64; 8]; 2];
            // SAFETY: the processor has AVX2.
            unsafe { avx2_lanes::<K>(ca, cb, mean, &mut vector) };
            assert_eq!(scalar.map(|l| l.map(f64::to_bits)), vector.map(|l| l.map(f64::to_bits)), "kind {K}");
        }
        for len in [8, 24, 1000] {
            let a: Vec<f32> = random_vec(len, len as u64).iter().map(|v| 1e3 * v + 0.1).collect();
            let b = random_vec(len, len as u64 + 1);
            both::<SUM>(&a, &b, 0.0);
            both::<SQUARES>(&a, &b, 0.3);
            both::<GRADIENT>(&a, &b, -1.7);
            both::<SHIFTED>(&a, &b, 2.1);
        }
        // Through the whole sum: channels of 49 values (6 blocks of 8 and 1 left), 5 samples.
        let x = random_vec(5 * 3 * 49, 9);
        let dims = [3, 49];
        let mean = channel_stats(&x, 5, dims, 1).0;
        let direct: f64 = planes(&x, 5, dims, 1).flatten().map(|&v| v as f64).sum::<f64>() / 245.0;
        assert!((mean - direct).abs() < 1e-12, "{mean} against {direct}");
    }
}
