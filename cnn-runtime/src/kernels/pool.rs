//! Max, average and L2 pooling over `KH x KW` windows, sharing one window loop.
//!
//! A `D x H x W` input padded by `PH` rows and `PW` columns on each side gives `D x OH x OW`
//! outputs with `OH = (H + 2 PH - KH) / SH + 1` and `OW = (W + 2 PW - KW) / SW + 1` (floor
//! division, as in PyTorch), so the last rows or columns are left unread (and get a zero
//! gradient) when the strides do not fit the input exactly. Windows overlap when a stride is
//! smaller than the window; the backward pass then adds up the gradients an input receives from
//! each window holding it.
//!
//! Max and average pooling take padding, at most half the window as PyTorch allows, so that
//! every window holds at least one input value; L2 pooling has none, as `torch.nn.LPPool2d`. The
//! padding is never stored: a window overhanging the edge reads only the values it holds. Max
//! pooling pads with `-inf`, so that a padded position never wins and its gradient goes to a
//! real input; average pooling pads with zeros and divides by `KH·KW` all the same (PyTorch's
//! default `count_include_pad=True`).

use core::ops::Range;

#[cfg(not(feature = "std"))]
use crate::math::Float;
use crate::shape::window_len;

use super::{chunk, chunk_count, chunk_len, for_each_chunk, ChunksMut, Layer, Mode};

/// How a pooling layer reduces a window, and how it hands the window's gradient back.
///
/// A window is `KH` rows of `KW` values, `W` apart in its channel plane. It holds the
/// `[rows, cols]` of them that lie in the plane, from `at` on: all `KH x KW` inside the plane,
/// fewer where it overhangs the edge, the rest being padding (see the module's docs). One
/// function serves both, so that a full window and a clipped one are reduced alike.
trait Reduction {
    /// `u32` values kept per output from the forward to the backward pass.
    const STATE: usize;
    /// Floating-point operations per window value.
    const FLOPS_PER_VALUE: u64;
    /// Whether this is [`Max`], which has a vectorised path for 2x2 windows with stride 2.
    const MAX: bool = false;

    /// The window's output and the state to keep for it (ignored when `STATE` is 0).
    fn reduce<const W: usize, const KH: usize, const KW: usize>(
        plane: &[f32],
        at: usize,
        held: [usize; 2],
    ) -> (f32, u32);

    /// The window's output alone, for evaluation, where no backward pass needs the state.
    #[inline(always)]
    fn value<const W: usize, const KH: usize, const KW: usize>(plane: &[f32], at: usize, held: [usize; 2]) -> f32 {
        Self::reduce::<W, KH, KW>(plane, at, held).0
    }

    /// Adds the gradient `g` of the window's output `y` to the window's inputs in `dx`.
    #[allow(clippy::too_many_arguments)]
    fn spread<const W: usize, const KH: usize, const KW: usize>(
        plane: &[f32],
        dx: &mut [f32],
        at: usize,
        held: [usize; 2],
        y: f32,
        g: f32,
        state: u32,
    );
}

/// The window maximum; the state is the winner's index in its plane.
enum Max {}

/// Whether `v`, read after `best` in a max-pooling window, replaces it: `>` keeps the first
/// maximum, as PyTorch does, and a NaN wins so that it propagates.
#[inline(always)]
fn beats(v: f32, best: f32) -> bool {
    v > best || v.is_nan()
}

impl Reduction for Max {
    const STATE: usize = 1;
    const FLOPS_PER_VALUE: u64 = 0;
    const MAX: bool = true;

    #[inline(always)]
    fn reduce<const W: usize, const KH: usize, const KW: usize>(
        plane: &[f32],
        at: usize,
        [rows, cols]: [usize; 2],
    ) -> (f32, u32) {
        // The padding is -inf and never wins: starting from the first value held, as PyTorch
        // does, the winner is a real input even when all of them are -inf.
        let (mut best, mut arg) = (f32::NEG_INFINITY, at);
        for i in 0..rows {
            let row = at + i * W;
            for (j, &v) in plane[row..row + cols].iter().enumerate() {
                // Selects rather than branches: which value wins is data, not a pattern.
                let wins = beats(v, best);
                best = if wins { v } else { best };
                arg = if wins { row + j } else { arg };
            }
        }
        (best, arg as u32)
    }

    #[inline(always)]
    fn value<const W: usize, const KH: usize, const KW: usize>(
        plane: &[f32],
        at: usize,
        [rows, cols]: [usize; 2],
    ) -> f32 {
        let mut best = f32::NEG_INFINITY;
        for i in 0..rows {
            let row = at + i * W;
            for &v in &plane[row..row + cols] {
                best = if beats(v, best) { v } else { best };
            }
        }
        best
    }

    #[inline(always)]
    fn spread<const W: usize, const KH: usize, const KW: usize>(
        _: &[f32],
        dx: &mut [f32],
        _: usize,
        _: [usize; 2],
        _: f32,
        g: f32,
        state: u32,
    ) {
        dx[state as usize] += g;
    }
}

/// The window mean.
enum Avg {}

impl Reduction for Avg {
    const STATE: usize = 0;
    const FLOPS_PER_VALUE: u64 = 1;

    #[inline(always)]
    fn reduce<const W: usize, const KH: usize, const KW: usize>(
        plane: &[f32],
        at: usize,
        [rows, cols]: [usize; 2],
    ) -> (f32, u32) {
        // The padded zeros add nothing to the sum but count in the divisor.
        let mut sum = 0.0f32;
        for i in 0..rows {
            let row = at + i * W;
            sum += plane[row..row + cols].iter().sum::<f32>();
        }
        (sum / (KH * KW) as f32, 0)
    }

    #[inline(always)]
    fn spread<const W: usize, const KH: usize, const KW: usize>(
        _: &[f32],
        dx: &mut [f32],
        at: usize,
        [rows, cols]: [usize; 2],
        _: f32,
        g: f32,
        _: u32,
    ) {
        let share = g / (KH * KW) as f32;
        for i in 0..rows {
            let row = at + i * W;
            dx[row..row + cols].iter_mut().for_each(|d| *d += share);
        }
    }
}

/// The window's Euclidean norm. L2 pooling takes no padding, so its windows are always full.
enum L2 {}

impl Reduction for L2 {
    const STATE: usize = 0;
    const FLOPS_PER_VALUE: u64 = 2;

    #[inline(always)]
    fn reduce<const W: usize, const KH: usize, const KW: usize>(
        plane: &[f32],
        at: usize,
        [rows, cols]: [usize; 2],
    ) -> (f32, u32) {
        let mut sum = 0.0f32;
        for i in 0..rows {
            let row = at + i * W;
            sum += plane[row..row + cols].iter().map(|&v| v * v).sum::<f32>();
        }
        (sum.sqrt(), 0)
    }

    #[inline(always)]
    fn spread<const W: usize, const KH: usize, const KW: usize>(
        plane: &[f32],
        dx: &mut [f32],
        at: usize,
        [rows, cols]: [usize; 2],
        y: f32,
        g: f32,
        _: u32,
    ) {
        // dy/dx = x / y; the norm is not differentiable at 0, where PyTorch's gradient is 0 too.
        if y <= 0.0 {
            return;
        }
        let scale = g / y;
        for i in 0..rows {
            let row = at + i * W;
            for (d, &v) in dx[row..row + cols].iter_mut().zip(&plane[row..row + cols]) {
                *d += scale * v;
            }
        }
    }
}

/// Whether the pooling is [`Max`] over 2x2 windows with stride 2 and no padding, the common
/// case, which has its own vectorised loops ([`max2x2_rows`], [`unmax2x2_rows`]).
const fn max2x2<P: Reduction>(k: [usize; 2], s: [usize; 2], pad: [usize; 2]) -> bool {
    P::MAX && k[0] == 2 && k[1] == 2 && s[0] == 2 && s[1] == 2 && pad[0] == 0 && pad[1] == 0
}

/// Output positions along one axis of `input` values padded by `pad` on each side; in a
/// constant, padding over half the window (which PyTorch refuses too, and which would leave
/// windows of padding alone) stops the build.
const fn pooled_len(input: usize, window: usize, stride: usize, pad: usize) -> usize {
    assert!(2 * pad <= window, "pooling padding is more than half the window");
    window_len(input, window, stride, pad)
}

/// The plane rows (or columns) `0..len` held by the window starting at `start` of the axis
/// padded by `pad`, for a window of `k > pad` values.
#[inline(always)]
fn held(start: usize, k: usize, pad: usize, len: usize) -> Range<usize> {
    start.saturating_sub(pad)..(start + k - pad).min(len)
}

/// Defines `$name`, which calls `$inner` (an `#[inline(always)]` function) with its own
/// arguments, compiled for AVX2 with FMA where the processor has them and [`super::isa`]
/// allows them (blocks of 8 values then fill one register), for the baseline otherwise.
macro_rules! with_avx2 {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) => $inner:ident) => {
        $(#[$doc])*
        #[inline(always)]
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if super::isa() != super::Isa::Portable {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    $inner($($arg),*)
                }
                // SAFETY: the processor has AVX2 and FMA (what `isa` found, or a lower choice).
                unsafe { avx2($($arg),*) };
                return;
            }
            $inner($($arg),*)
        }
    };
}

with_avx2! {
    /// One row of 2x2 max pooling with stride 2: the maxima of the column pairs of the input rows
    /// `top` and `bottom` into `y` and, when `arg` is not empty, each winner's index into `arg`:
    /// `at` for `top[0]`, `w` more for the bottom row. The four values are compared in the order of
    /// [`Max::reduce`] (top left, top right, bottom left, bottom right; the first maximum wins, a NaN
    /// wins), so both give the same outputs and indices.
    fn max2x2_rows(top: &[f32], bottom: &[f32], y: &mut [f32], arg: &mut [u32], at: u32, w: u32) => max2x2_rows_in
}

/// [`max2x2_rows`] in blocks of 8, 4 or 1 outputs, the last block moved back to end at the
/// row's end ([`blocks`]); each block is a fixed-size array computation that compiles to vector
/// selects.
#[inline(always)]
fn max2x2_rows_in(top: &[f32], bottom: &[f32], y: &mut [f32], arg: &mut [u32], at: u32, w: u32) {
    let ow = y.len();
    let (top, bottom) = (&top[..2 * ow], &bottom[..2 * ow]);
    let train = !arg.is_empty();
    macro_rules! block {
        ($l:literal, $ox:expr) => {{
            let ox = $ox;
            let t: &[f32; 2 * $l] = top[2 * ox..2 * (ox + $l)].try_into().expect("2L values");
            let b: &[f32; 2 * $l] = bottom[2 * ox..2 * (ox + $l)].try_into().expect("2L values");
            let (best, idx) = max2x2_block::<$l, { 2 * $l }>(t, b, w);
            y[ox..ox + $l].copy_from_slice(&best);
            if train {
                for (l, (a, i)) in arg[ox..ox + $l].iter_mut().zip(idx).enumerate() {
                    *a = at + 2 * (ox + l) as u32 + i;
                }
            }
        }};
    }
    if ow >= 8 {
        blocks::<8>(ow, |ox| block!(8, ox));
    } else if ow >= 4 {
        blocks::<4>(ow, |ox| block!(4, ox));
    } else {
        blocks::<1>(ow, |ox| block!(1, ox));
    }
}

/// `L` 2x2 windows over the `2L` values of two rows: their maxima and each winner's offset
/// (0, 1, `w` or `w + 1`).
#[inline(always)]
fn max2x2_block<const L: usize, const L2: usize>(t: &[f32; L2], b: &[f32; L2], w: u32) -> ([f32; L], [u32; L]) {
    let mut best: [f32; L] = core::array::from_fn(|l| t[2 * l]);
    let mut idx = [0u32; L];
    for (row, dx, off) in [(t, 1, 1), (b, 0, w), (b, 1, w + 1)] {
        let v: [f32; L] = core::array::from_fn(|l| row[2 * l + dx]);
        for l in 0..L {
            let win = beats(v[l], best[l]);
            best[l] = if win { v[l] } else { best[l] };
            idx[l] = if win { off } else { idx[l] };
        }
    }
    (best, idx)
}

with_avx2! {
    /// The backward pass of [`max2x2_rows`]: writes the two input-gradient rows under one output
    /// row, `g` where its window's winner is and 0 elsewhere.
    fn unmax2x2_rows(top: &mut [f32], bottom: &mut [f32], dy: &[f32], arg: &[u32], at: u32, w: u32) => unmax2x2_rows_in
}

#[inline(always)]
fn unmax2x2_rows_in(top: &mut [f32], bottom: &mut [f32], dy: &[f32], arg: &[u32], at: u32, w: u32) {
    let ow = dy.len();
    let (top, bottom, arg) = (&mut top[..2 * ow], &mut bottom[..2 * ow], &arg[..ow]);
    macro_rules! block {
        ($l:literal, $ox:expr) => {{
            let ox = $ox;
            let t: &mut [f32; 2 * $l] = (&mut top[2 * ox..2 * (ox + $l)]).try_into().expect("2L values");
            let b: &mut [f32; 2 * $l] = (&mut bottom[2 * ox..2 * (ox + $l)]).try_into().expect("2L values");
            for l in 0..$l {
                let (g, idx) = (dy[ox + l], arg[ox + l].wrapping_sub(at + 2 * (ox + l) as u32));
                t[2 * l] = if idx == 0 { g } else { 0.0 };
                t[2 * l + 1] = if idx == 1 { g } else { 0.0 };
                b[2 * l] = if idx == w { g } else { 0.0 };
                b[2 * l + 1] = if idx == w + 1 { g } else { 0.0 };
            }
        }};
    }
    // As in `max2x2_rows_in`; a moved-back block writes the same values again.
    if ow >= 8 {
        blocks::<8>(ow, |ox| block!(8, ox));
    } else if ow >= 4 {
        blocks::<4>(ow, |ox| block!(4, ox));
    } else {
        blocks::<1>(ow, |ox| block!(1, ox));
    }
}

/// Calls `f` with the start of each block of `L` outputs in a row of `ow >= L`, the last block
/// moved back to end at the row's end: it recomputes some outputs, to the same values, rather
/// than finishing one at a time.
#[inline(always)]
fn blocks<const L: usize>(ow: usize, mut f: impl FnMut(usize)) {
    let mut ox = 0;
    while ox < ow {
        let start = ox.min(ow - L);
        f(start);
        ox = start + L;
    }
}

/// Pools one sample `x` (`[D, H, W]`) into `y` (`[D, OH, OW]`), keeping `P::STATE` values per
/// output in `state`.
#[inline(always)]
fn pool_sample<
    P: Reduction,
    const D: usize,
    const H: usize,
    const W: usize,
    const KH: usize,
    const KW: usize,
    const SH: usize,
    const SW: usize,
    const PH: usize,
    const PW: usize,
>(
    x: &[f32],
    y: &mut [f32],
    state: &mut [u32],
    train: bool,
) {
    let (oh, ow) = (pooled_len(H, KH, SH, PH), pooled_len(W, KW, SW, PW));
    if max2x2::<P>([KH, KW], [SH, SW], [PH, PW]) {
        for c in 0..D {
            let plane = &x[c * H * W..(c + 1) * H * W];
            for oy in 0..oh {
                let o = (c * oh + oy) * ow;
                let arg: &mut [u32] = if train { &mut state[o..o + ow] } else { &mut [] };
                let at = 2 * oy * W;
                max2x2_rows(
                    &plane[at..at + W],
                    &plane[at + W..at + 2 * W],
                    &mut y[o..o + ow],
                    arg,
                    at as u32,
                    W as u32,
                );
            }
        }
        return;
    }
    if PH > 0 || PW > 0 {
        // The windows inside the plane take the loops of fixed bounds below; those overhanging
        // its edge read the part they hold, with bounds known only at run time.
        for c in 0..D {
            let plane = &x[c * H * W..(c + 1) * H * W];
            for oy in 0..oh {
                let rows = held(oy * SH, KH, PH, H);
                for ox in 0..ow {
                    let cols = held(ox * SW, KW, PW, W);
                    let o = (c * oh + oy) * ow + ox;
                    let (at, held) = (rows.start * W + cols.start, [rows.len(), cols.len()]);
                    let (v, s) = if held == [KH, KW] {
                        // Inside the plane: loops of fixed bounds.
                        if P::STATE > 0 && train {
                            P::reduce::<W, KH, KW>(plane, at, [KH, KW])
                        } else {
                            (P::value::<W, KH, KW>(plane, at, [KH, KW]), 0)
                        }
                    } else {
                        P::reduce::<W, KH, KW>(plane, at, held)
                    };
                    y[o] = v;
                    if P::STATE > 0 && train {
                        state[o] = s;
                    }
                }
            }
        }
        return;
    }
    for c in 0..D {
        let plane = &x[c * H * W..(c + 1) * H * W];
        for oy in 0..oh {
            for ox in 0..ow {
                let o = (c * oh + oy) * ow + ox;
                let at = oy * SH * W + ox * SW;
                if P::STATE > 0 && train {
                    let (v, s) = P::reduce::<W, KH, KW>(plane, at, [KH, KW]);
                    y[o] = v;
                    state[o] = s;
                } else {
                    y[o] = P::value::<W, KH, KW>(plane, at, [KH, KW]);
                }
            }
        }
    }
}

/// Adds the gradient of one sample's outputs `y` (gradient `dy`) to its input gradient `dx`.
#[inline(always)]
fn unpool_sample<
    P: Reduction,
    const D: usize,
    const H: usize,
    const W: usize,
    const KH: usize,
    const KW: usize,
    const SH: usize,
    const SW: usize,
    const PH: usize,
    const PW: usize,
>(
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    state: &[u32],
) {
    let (oh, ow) = (pooled_len(H, KH, SH, PH), pooled_len(W, KW, SW, PW));
    if max2x2::<P>([KH, KW], [SH, SW], [PH, PW]) {
        // Every input under a window is written; a last odd row or column gets no gradient.
        for c in 0..D {
            let dx = &mut dx[c * H * W..(c + 1) * H * W];
            for oy in 0..oh {
                let (o, at) = ((c * oh + oy) * ow, 2 * oy * W);
                let (top, bottom) = dx[at..at + 2 * W].split_at_mut(W);
                unmax2x2_rows(top, bottom, &dy[o..o + ow], &state[o..o + ow], at as u32, W as u32);
                top[2 * ow..].fill(0.0);
                bottom[2 * ow..].fill(0.0);
            }
            dx[2 * oh * W..].fill(0.0);
        }
        return;
    }
    if PH > 0 || PW > 0 {
        // As in `pool_sample`: fixed bounds inside the plane, the part held at its edge.
        for c in 0..D {
            let range = c * H * W..(c + 1) * H * W;
            let (plane, dx) = (&x[range.clone()], &mut dx[range]);
            for oy in 0..oh {
                let rows = held(oy * SH, KH, PH, H);
                for ox in 0..ow {
                    let cols = held(ox * SW, KW, PW, W);
                    let o = (c * oh + oy) * ow + ox;
                    let s = if P::STATE > 0 { state[o] } else { 0 };
                    let (at, held) = (rows.start * W + cols.start, [rows.len(), cols.len()]);
                    if held == [KH, KW] {
                        // Inside the plane: loops of fixed bounds.
                        P::spread::<W, KH, KW>(plane, dx, at, [KH, KW], y[o], dy[o], s);
                    } else {
                        P::spread::<W, KH, KW>(plane, dx, at, held, y[o], dy[o], s);
                    }
                }
            }
        }
        return;
    }
    for c in 0..D {
        let range = c * H * W..(c + 1) * H * W;
        let (plane, dx) = (&x[range.clone()], &mut dx[range]);
        for oy in 0..oh {
            for ox in 0..ow {
                let o = (c * oh + oy) * ow + ox;
                let s = if P::STATE > 0 { state[o] } else { 0 };
                P::spread::<W, KH, KW>(plane, dx, oy * SH * W + ox * SW, [KH, KW], y[o], dy[o], s);
            }
        }
    }
}

/// Defines a pooling layer type reducing its windows with the [`Reduction`] `$op`: with the
/// padding parameters `PH` and `PW` (0 unless given) when `padded`, without them otherwise.
macro_rules! pool_layer {
    ($(#[$doc:meta])* $name:ident, $op:ty, padded) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default)]
        pub struct $name<
            const D: usize,
            const H: usize,
            const W: usize,
            const KH: usize,
            const KW: usize,
            const SH: usize,
            const SW: usize,
            const PH: usize = 0,
            const PW: usize = 0,
        >;

        pool_layer!(@impl $name, $op, [const PH: usize, const PW: usize], [PH, PW], [PH, PW],
            /// Output height: `(H + 2 PH - KH) / SH + 1`.
            /// Output width: `(W + 2 PW - KW) / SW + 1`.
        );
    };
    ($(#[$doc:meta])* $name:ident, $op:ty) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default)]
        pub struct $name<
            const D: usize,
            const H: usize,
            const W: usize,
            const KH: usize,
            const KW: usize,
            const SH: usize,
            const SW: usize,
        >;

        pool_layer!(@impl $name, $op, [], [], [0, 0],
            /// Output height: `(H - KH) / SH + 1`.
            /// Output width: `(W - KW) / SW + 1`.
        );
    };
    (
        @impl $name:ident, $op:ty, [$($generics:tt)*], [$($args:tt)*], [$ph:tt, $pw:tt],
        #[$oh_doc:meta] #[$ow_doc:meta]
    ) => {
        impl<
                const D: usize,
                const H: usize,
                const W: usize,
                const KH: usize,
                const KW: usize,
                const SH: usize,
                const SW: usize,
                $($generics)*
            > $name<D, H, W, KH, KW, SH, SW, $($args)*>
        {
            #[$oh_doc]
            pub const OH: usize = pooled_len(H, KH, SH, $ph);
            #[$ow_doc]
            pub const OW: usize = pooled_len(W, KW, SW, $pw);

            /// Pools one sample `x` into `y`, writing the state the backward pass needs (one
            /// value per output for max pooling, none otherwise) to `state`.
            pub fn pool_sample(x: &[f32], y: &mut [f32], state: &mut [u32]) {
                pool_sample::<$op, D, H, W, KH, KW, SH, SW, $ph, $pw>(x, y, state, true);
            }
        }

        impl<
                const D: usize,
                const H: usize,
                const W: usize,
                const KH: usize,
                const KW: usize,
                const SH: usize,
                const SW: usize,
                $($generics)*
            > Layer for $name<D, H, W, KH, KW, SH, SW, $($args)*>
        {
            const IN: usize = D * H * W;
            const OUT: usize = D * Self::OH * Self::OW;
            const PARAMS: usize = 0;
            const SCRATCH: usize = 0;
            const STATE: usize = <$op as Reduction>::STATE * Self::OUT;
            const FLOPS: u64 = <$op as Reduction>::FLOPS_PER_VALUE * (Self::OUT * KH * KW) as u64;

            fn forward(
                &self,
                n: usize,
                x: &[f32],
                y: &mut [f32],
                _: &[f32],
                _: &mut [f32],
                _: &mut [f32],
                state: &mut [u32],
                mode: Mode,
            ) {
                let len = chunk_len(n);
                let (input, output, kept) = (Self::IN, Self::OUT, Self::STATE);
                // Evaluation keeps no state: no backward pass follows it.
                let train = mode.is_train();
                let ys = ChunksMut::new(&mut y[..n * output], len * output);
                let states = ChunksMut::new(&mut state[..n * kept], len * kept);
                let x = &x[..n * input];
                for_each_chunk(chunk_count(n), &|c| {
                        let (y, x, state) = (ys.take(c), chunk(x, len * input, c), states.take(c));
                        for (s, (y, x)) in y.chunks_exact_mut(output).zip(x.chunks_exact(input)).enumerate() {
                            pool_sample::<$op, D, H, W, KH, KW, SH, SW, $ph, $pw>(
                                x,
                                y,
                                &mut state[s * kept..(s + 1) * kept],
                                train,
                            );
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
                _: &[f32],
                _: &mut [f32],
                _: &mut [f32],
                _: &mut [f32],
                state: &[u32],
            ) {
                let Some(dx) = dx else { return };
                let len = chunk_len(n);
                let (input, output, kept) = (Self::IN, Self::OUT, Self::STATE);
                let dxs = ChunksMut::new(&mut dx[..n * input], len * input);
                let (x, y, dy) = (&x[..n * input], &y[..n * output], &dy[..n * output]);
                for_each_chunk(chunk_count(n), &|c| {
                        let dx = dxs.take(c);
                        let (x, y, dy) = (chunk(x, len * input, c), chunk(y, len * output, c), chunk(dy, len * output, c));
                        // The 2x2 max pooling path writes every input gradient itself.
                        if !max2x2::<$op>([KH, KW], [SH, SW], [$ph, $pw]) {
                            dx.fill(0.0);
                        }
                        for (s, (dx, x)) in dx.chunks_exact_mut(input).zip(x.chunks_exact(input)).enumerate() {
                            let out = s * output..(s + 1) * output;
                            let sample = c * len + s;
                            unpool_sample::<$op, D, H, W, KH, KW, SH, SW, $ph, $pw>(
                                x,
                                &y[out.clone()],
                                &dy[out],
                                dx,
                                &state[sample * kept..(sample + 1) * kept],
                            );
                        }
                    });
            }
        }
    };
}

pool_layer!(
    /// Max pooling of a `D x H x W` input over `KH x KW` windows with strides `SH`/`SW` and
    /// padding `PH`/`PW` (at most half the window), like `torch.nn.MaxPool2d`.
    ///
    /// The forward pass records, per output, the index of the winning input inside its channel
    /// plane; the backward pass routes each output gradient to that input alone. The padding is
    /// `-inf`: it never wins.
    ///
    /// Padding over half the window stops the build, as PyTorch refuses it:
    ///
    /// ```
    /// use cnn_runtime::kernels::{Layer, MaxPool2d};
    /// assert_eq!(<MaxPool2d<1, 4, 4, 2, 2, 1, 1, 1, 0> as Layer>::OUT, 5 * 3);
    /// ```
    ///
    /// ```compile_fail
    /// use cnn_runtime::kernels::{Layer, MaxPool2d};
    /// assert_eq!(<MaxPool2d<1, 4, 4, 2, 2, 1, 1, 2, 0> as Layer>::OUT, 7 * 3);
    /// ```
    MaxPool2d,
    Max,
    padded
);

pool_layer!(
    /// Average pooling of a `D x H x W` input over `KH x KW` windows with strides `SH`/`SW` and
    /// padding `PH`/`PW` (at most half the window), like `torch.nn.AvgPool2d` with its default
    /// `count_include_pad=True`: padded zeros count, so every window divides by `KH·KW`.
    ///
    /// The backward pass shares each output gradient equally among the window's positions; the
    /// shares of padded ones are dropped.
    AvgPool2d,
    Avg,
    padded
);

pool_layer!(
    /// L2 pooling of a `D x H x W` input over `KH x KW` windows with strides `SH`/`SW`, without
    /// padding: each output is the window's Euclidean norm `sqrt(Σ x²)`, like
    /// `torch.nn.LPPool2d(2, ...)`.
    ///
    /// The backward pass gives each input `dy·x/y`, and nothing when the window is all zeros.
    L2Pool2d,
    L2
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::sizes_of;
    use crate::kernels::testutil::{assert_close, forward, forward_in, layer_gradient_errors, random_vec};

    /// Which reference a test computes.
    #[derive(Clone, Copy, Debug)]
    enum Op {
        Max,
        Avg,
        L2,
    }

    /// Pooling of `n` samples of `[d, h, w]` padded by `[ph, pw]` straight from the definition,
    /// in f64, on an explicitly padded copy: `-inf` around max pooling, zeros around the others.
    fn reference(
        op: Op,
        n: usize,
        [d, h, w]: [usize; 3],
        [kh, kw]: [usize; 2],
        [sh, sw]: [usize; 2],
        [ph, pw]: [usize; 2],
        x: &[f32],
    ) -> Vec<f32> {
        let (hp, wp) = (h + 2 * ph, w + 2 * pw);
        let (oh, ow) = ((hp - kh) / sh + 1, (wp - kw) / sw + 1);
        let fill = if let Op::Max = op { f64::NEG_INFINITY } else { 0.0 };
        let mut y = Vec::new();
        for s in 0..n {
            for c in 0..d {
                let mut padded = vec![fill; hp * wp];
                for r in 0..h {
                    for col in 0..w {
                        padded[(r + ph) * wp + col + pw] = x[((s * d + c) * h + r) * w + col] as f64;
                    }
                }
                for oy in 0..oh {
                    for ox in 0..ow {
                        let window = (0..kh)
                            .flat_map(|i| (0..kw).map(move |j| (oy * sh + i, ox * sw + j)))
                            .map(|(r, col)| padded[r * wp + col]);
                        y.push(match op {
                            Op::Max => window.fold(f64::NEG_INFINITY, f64::max),
                            Op::Avg => window.sum::<f64>() / (kh * kw) as f64,
                            Op::L2 => window.map(|v| v * v).sum::<f64>().sqrt(),
                        } as f32);
                    }
                }
            }
        }
        y
    }

    /// Checks the three pools of one geometry against [`reference`] on `n` random samples.
    fn check_against_reference<
        const D: usize,
        const H: usize,
        const W: usize,
        const KH: usize,
        const KW: usize,
        const SH: usize,
        const SW: usize,
    >(
        n: usize,
    ) {
        let x = random_vec(n * D * H * W, 5);
        let geometry = ([D, H, W], [KH, KW], [SH, SW]);
        let want = |op| reference(op, n, geometry.0, geometry.1, geometry.2, [0, 0], &x);
        let (max, _) = forward(&MaxPool2d::<D, H, W, KH, KW, SH, SW>, n, &x, &[]);
        assert_eq!(max, want(Op::Max), "max pooling, geometry {geometry:?}");
        let (avg, _) = forward(&AvgPool2d::<D, H, W, KH, KW, SH, SW>, n, &x, &[]);
        assert_close(&avg, &want(Op::Avg), 1e-6, "average pooling");
        let (l2, _) = forward(&L2Pool2d::<D, H, W, KH, KW, SH, SW>, n, &x, &[]);
        assert_close(&l2, &want(Op::L2), 1e-6, "L2 pooling");
    }

    #[test]
    fn takes_the_window_maximum() {
        type L = MaxPool2d<1, 4, 4, 2, 2, 2, 2>;
        #[rustfmt::skip]
        let x = [
            1.0, 2.0, 0.0, -1.0,
            3.0, 0.5, -2.0, -3.0,
            0.0, 0.0, 7.0, 1.0,
            0.0, 9.0, 1.0, 1.0,
        ];
        let (y, arg) = forward(&L::default(), 1, &x, &[]);
        assert_eq!(y, [3.0, 0.0, 9.0, 7.0]);
        assert_eq!(arg, [4, 2, 13, 10]);
    }

    #[test]
    fn averages_and_norms_of_a_known_input() {
        // Windows 2x2, stride 2x1: columns overlap, the last row is left unread.
        #[rustfmt::skip]
        let x = [
            3.0, 4.0, 0.0,
            0.0, 0.0, 0.0,
            9.0, 9.0, 9.0,
        ];
        let (avg, state) = forward(&AvgPool2d::<1, 3, 3, 2, 2, 2, 1>, 1, &x, &[]);
        assert_eq!((avg, state), (vec![1.75, 1.0], vec![]));
        let (l2, _) = forward(&L2Pool2d::<1, 3, 3, 2, 2, 2, 1>, 1, &x, &[]);
        assert_eq!(l2, [5.0, 4.0]);
    }

    #[test]
    fn evaluation_gives_the_training_outputs_without_state() {
        type L = MaxPool2d<3, 7, 6, 3, 2, 2, 1>;
        let mut x = random_vec(4 * L::IN, 31);
        x[5] = x[6]; // a tie
        let (train, _) = forward_in(&L::default(), 4, &x, &[], &mut [], Mode::Train { seed: 1 });
        let (eval, _) = forward_in(&L::default(), 4, &x, &[], &mut [], Mode::Eval);
        assert_eq!(eval, train);
    }

    /// Checks padded max and average pooling of one geometry against [`reference`] on `n`
    /// random samples (and L2 pooling's window loop, which the layer does not pad), evaluation
    /// against training, and the max pooling gradient against its winners.
    fn check_padded<
        const D: usize,
        const H: usize,
        const W: usize,
        const KH: usize,
        const KW: usize,
        const SH: usize,
        const SW: usize,
        const PH: usize,
        const PW: usize,
    >(
        n: usize,
    ) {
        let x = random_vec(n * D * H * W, 6);
        let geometry = ([D, H, W], [KH, KW], [SH, SW], [PH, PW]);
        let want = |op| reference(op, n, geometry.0, geometry.1, geometry.2, geometry.3, &x);
        let max = MaxPool2d::<D, H, W, KH, KW, SH, SW, PH, PW>;
        let (y, arg) = forward(&max, n, &x, &[]);
        assert_eq!(y, want(Op::Max), "max pooling, geometry {geometry:?}");
        let (eval, _) = forward_in(&max, n, &x, &[], &mut [], Mode::Eval);
        assert_eq!(eval, y, "max pooling evaluation, geometry {geometry:?}");
        let out =
            D * MaxPool2d::<D, H, W, KH, KW, SH, SW, PH, PW>::OH * MaxPool2d::<D, H, W, KH, KW, SH, SW, PH, PW>::OW;
        for (o, &a) in arg.iter().enumerate() {
            let (s, c) = (o / out, o % out / (out / D));
            assert_eq!(x[(s * D + c) * H * W + a as usize], y[o], "max pooling winner of output {o}");
        }
        let dx = input_gradient(&max, n, &x);
        assert_eq!(dx.iter().sum::<f32>(), y.len() as f32, "every output gradient reaches an input");
        let (avg, _) = forward(&AvgPool2d::<D, H, W, KH, KW, SH, SW, PH, PW>, n, &x, &[]);
        assert_close(&avg, &want(Op::Avg), 1e-6, "average pooling");
        let mut l2 = vec![0.0; y.len()];
        for (x, y) in x.chunks_exact(D * H * W).zip(l2.chunks_exact_mut(out)) {
            pool_sample::<L2, D, H, W, KH, KW, SH, SW, PH, PW>(x, y, &mut [], false);
        }
        assert_close(&l2, &want(Op::L2), 1e-6, "L2 pooling with zero padding");
    }

    #[test]
    fn padded_pooling_matches_a_naive_reference() {
        // ResNet's stem pooling (3x3, stride 2, padding 1) on even and odd sizes: the last
        // window overhangs the bottom and right edges on odd ones.
        check_padded::<2, 8, 8, 3, 3, 2, 2, 1, 1>(3);
        check_padded::<2, 7, 9, 3, 3, 2, 2, 1, 1>(3);
        // Stride 1 ("same" pooling), rectangular windows and padding on one axis alone.
        check_padded::<3, 5, 6, 3, 3, 1, 1, 1, 1>(2);
        check_padded::<2, 6, 7, 3, 2, 2, 1, 1, 0>(2);
        check_padded::<2, 6, 7, 2, 4, 1, 3, 0, 2>(2);
        // 2x2 windows with stride 2 and padding 1, off the vectorised 2x2 path.
        check_padded::<2, 6, 5, 2, 2, 2, 2, 1, 1>(3);
        // 5x5 windows padded by 2, larger than a 2x3 input.
        check_padded::<1, 2, 3, 5, 5, 1, 1, 2, 2>(2);
    }

    #[test]
    fn padded_3x3_windows_of_a_known_input() {
        // 3x3 windows, stride 1, padding 1 on a 4x4 input: a 4x4 output, window (i, j) centred
        // on input (i, j).
        let x: Vec<f32> = (1..=16).map(|v| v as f32).collect();
        // Max pooling of negative values: a zero padding would win at the edges; -inf never does,
        // so each window takes its top-left real value, -x[max(i-1, 0)][max(j-1, 0)].
        let neg: Vec<f32> = x.iter().map(|v| -v).collect();
        type Max3 = MaxPool2d<1, 4, 4, 3, 3, 1, 1, 1, 1>;
        let (y, arg) = forward(&Max3::default(), 1, &neg, &[]);
        #[rustfmt::skip]
        assert_eq!(y, [
            -1.0, -1.0, -2.0, -3.0,
            -1.0, -1.0, -2.0, -3.0,
            -5.0, -5.0, -6.0, -7.0,
            -9.0, -9.0, -10.0, -11.0,
        ]);
        assert_eq!(arg, [0, 0, 1, 2, 0, 0, 1, 2, 4, 4, 5, 6, 8, 8, 9, 10]);
        #[rustfmt::skip]
        assert_eq!(input_gradient(&Max3::default(), 1, &neg), [
            4.0, 2.0, 2.0, 0.0,
            2.0, 1.0, 1.0, 0.0,
            2.0, 1.0, 1.0, 0.0,
            0.0, 0.0, 0.0, 0.0,
        ]);
        // All -inf: the winners are still real inputs, the first each window holds.
        let (y, inf_arg) = forward(&Max3::default(), 1, &[f32::NEG_INFINITY; 16], &[]);
        assert_eq!((y, inf_arg), (vec![f32::NEG_INFINITY; 16], arg));
        // Average pooling divides every window by 9, padded zeros included.
        type Avg3 = AvgPool2d<1, 4, 4, 3, 3, 1, 1, 1, 1>;
        let (y, state) = forward(&Avg3::default(), 1, &x, &[]);
        #[rustfmt::skip]
        let sums = [
            14.0, 24.0, 30.0, 22.0,
            33.0, 54.0, 63.0, 45.0,
            57.0, 90.0, 99.0, 69.0,
            46.0, 72.0, 78.0, 54.0,
        ];
        assert_close(&y, &sums.map(|s: f32| s / 9.0), 1e-6, "3x3 average pooling with padding 1");
        assert!(state.is_empty());
        // Input (r, c) lies in 2 windows along an axis at an edge, 3 inside; each gives 1/9.
        let along = [2.0, 3.0, 3.0, 2.0];
        let want: Vec<f32> = (0..16).map(|i| along[i / 4] * along[i % 4] / 9.0).collect();
        assert_close(&input_gradient(&Avg3::default(), 1, &x), &want, 1e-6, "average pooling gradient");
    }

    #[test]
    fn resnet_stem_pooling_of_a_known_input() {
        // 3x3 windows, stride 2, padding 1 on 6x6: a 3x3 output whose windows start at rows
        // (and columns) -1, 1 and 3.
        type Max3 = MaxPool2d<1, 6, 6, 3, 3, 2, 2, 1, 1>;
        type Avg3 = AvgPool2d<1, 6, 6, 3, 3, 2, 2, 1, 1>;
        assert_eq!((Max3::OH, Max3::OW, Max3::IN, Max3::OUT, Max3::STATE), (3, 3, 36, 9, 9));
        assert_eq!((Avg3::OUT, Avg3::STATE, Avg3::SCRATCH, Avg3::PARAMS), (9, 0, 0, 0));
        // Decreasing values: each window's maximum is the first value it holds.
        let x: Vec<f32> = (0..36).map(|i| -(i as f32) - 1.0).collect();
        let (y, arg) = forward(&Max3::default(), 1, &x, &[]);
        assert_eq!(y, [-1.0, -2.0, -4.0, -7.0, -8.0, -10.0, -19.0, -20.0, -22.0]);
        assert_eq!(arg, [0, 1, 3, 6, 7, 9, 18, 19, 21]);
        // Over ones, a window holding r x c inputs averages to r·c/9 (PyTorch gives the same
        // for F.avg_pool2d(torch.ones(1, 1, 6, 6), 3, 2, 1)).
        let (y, _) = forward(&Avg3::default(), 1, &[1.0; 36], &[]);
        let want = [4.0, 6.0, 6.0, 6.0, 9.0, 9.0, 6.0, 9.0, 9.0].map(|v: f32| v / 9.0);
        assert_close(&y, &want, 1e-6, "stem average pooling of ones");
        // ResNet-18 on 224x224: 112x112 pooled to 56x56.
        assert_eq!(
            (MaxPool2d::<64, 112, 112, 3, 3, 2, 2, 1, 1>::OH, MaxPool2d::<64, 112, 112, 3, 3, 2, 2, 1, 1>::OW),
            (56, 56)
        );
    }

    #[test]
    fn no_padding_is_the_default() {
        // The 7-parameter types are the padded ones with padding 0.
        let max: MaxPool2d<2, 6, 6, 2, 2, 2, 2> = MaxPool2d::<2, 6, 6, 2, 2, 2, 2, 0, 0>;
        let avg: AvgPool2d<2, 6, 6, 3, 3, 1, 1> = AvgPool2d::<2, 6, 6, 3, 3, 1, 1, 0, 0>;
        assert_eq!(sizes_of(&max), sizes_of(&MaxPool2d::<2, 6, 6, 2, 2, 2, 2>));
        assert_eq!(sizes_of(&avg).outputs, 2 * 4 * 4);
    }

    #[test]
    fn forward_matches_a_naive_reference() {
        // Overlap along the height, floor along the width (column 4 unread), several channels.
        check_against_reference::<3, 7, 5, 3, 2, 2, 2>(3);
        // Overlap in both directions, and both the last row and column unread.
        check_against_reference::<2, 8, 6, 3, 3, 2, 2>(3);
        // AlexNet's 3x3 windows with stride 2, rectangular input, and stride 2x1 windows.
        check_against_reference::<4, 13, 11, 3, 3, 2, 2>(2);
        check_against_reference::<3, 7, 5, 3, 2, 2, 1>(3);
        // Non-overlapping and a window covering the whole input.
        check_against_reference::<2, 6, 4, 2, 2, 2, 2>(5);
        check_against_reference::<2, 5, 3, 5, 3, 1, 1>(2);
    }

    #[test]
    fn overlapping_windows_route_gradients_to_each_winner() {
        // 3x3 windows with stride 2 overlap; a shared maximum collects both gradients.
        type L = MaxPool2d<1, 5, 5, 3, 3, 2, 2>;
        let mut x = [0.0f32; 25];
        x[12] = 5.0; // centre: inside all four windows
        let (y, arg) = forward(&L::default(), 1, &x, &[]);
        assert_eq!(y, [5.0; 4]);
        let mut dy = [1.0, 2.0, 3.0, 4.0];
        let mut dx = [0.0; 25];
        L::default().backward(1, &x, &y, &mut dy, Some(&mut dx), &[], &mut [], &mut [], &mut [], &arg);
        assert_eq!(dx[12], 10.0);
        assert_eq!(dx.iter().sum::<f32>(), 10.0);
    }

    /// Runs `layer` forward and backward on `x` with output gradient 1 everywhere, starting from
    /// a `dx` full of garbage; returns `dx`.
    fn input_gradient<L: Layer>(layer: &L, n: usize, x: &[f32]) -> Vec<f32> {
        let (y, state) = forward(layer, n, x, &[]);
        let mut dy = vec![1.0; y.len()];
        let mut dx = vec![f32::NAN; x.len()];
        layer.backward(n, x, &y, &mut dy, Some(&mut dx), &[], &mut [], &mut [], &mut [], &state);
        dx
    }

    #[test]
    fn overlapping_average_windows_accumulate_and_unread_inputs_get_no_gradient() {
        // 5x6 input, 3x3 windows, stride 2: rows 0..5 read (row 2 by two windows), column 5 unread.
        type L = AvgPool2d<1, 5, 6, 3, 3, 2, 2>;
        let dx = input_gradient(&L::default(), 1, &random_vec(30, 1));
        let mut want = [0.0f32; 30];
        for (oy, ox) in (0..L::OH).flat_map(|oy| (0..L::OW).map(move |ox| (oy, ox))) {
            for (i, j) in (0..3).flat_map(|i| (0..3).map(move |j| (i, j))) {
                want[(2 * oy + i) * 6 + 2 * ox + j] += 1.0 / 9.0;
            }
        }
        assert_close(&dx, &want, 1e-6, "average pooling input gradient");
        assert!((0..5).all(|r| dx[r * 6 + 5] == 0.0), "column 5 is never read");
        assert!((dx[2 * 6 + 2] - 4.0 / 9.0).abs() < 1e-6, "row 2, column 2 is in all four windows");
    }

    #[test]
    fn unread_edges_get_zero_gradient() {
        // 3 channels of 8x7 with 3x2 windows and stride 2x2: row 7 and column 6 are never read.
        let x = random_vec(2 * 3 * 8 * 7, 3);
        let grads = [
            input_gradient(&MaxPool2d::<3, 8, 7, 3, 2, 2, 2>, 2, &x),
            input_gradient(&AvgPool2d::<3, 8, 7, 3, 2, 2, 2>, 2, &x),
            input_gradient(&L2Pool2d::<3, 8, 7, 3, 2, 2, 2>, 2, &x),
        ];
        for dx in grads {
            assert!(dx.iter().all(|g| g.is_finite()), "every input gradient is written");
            for (i, &g) in dx.iter().enumerate() {
                let (r, c) = ((i / 7) % 8, i % 7);
                if r == 7 || c == 6 {
                    assert_eq!(g, 0.0, "input {i} (row {r}, column {c})");
                }
            }
        }
    }

    /// The 2x2 max pooling path on 2 channels of `H x W` with ties, NaNs and -inf among the
    /// values: outputs and winners as `Max::reduce` gives them, gradients as its scatter,
    /// evaluation as training.
    fn check_max2x2<const H: usize, const W: usize>() {
        const D: usize = 2;
        let (oh, ow) = (H / 2, W / 2);
        let mut x: Vec<f32> = random_vec(D * H * W, 21).iter().map(|v| (v * 3.0).round()).collect();
        let len = x.len();
        for i in [4, 30, 31, 77] {
            x[i % len] = f32::NAN;
        }
        for i in [0, 1, W, W + 1, 50] {
            x[i % len] = f32::NEG_INFINITY;
        }
        let (mut y, mut arg) = (vec![0.0; D * oh * ow], vec![0; D * oh * ow]);
        MaxPool2d::<D, H, W, 2, 2, 2, 2>::pool_sample(&x, &mut y, &mut arg);
        let dy = random_vec(y.len(), 22);
        let mut dx = vec![f32::NAN; x.len()];
        unpool_sample::<Max, D, H, W, 2, 2, 2, 2, 0, 0>(&x, &y, &dy, &mut dx, &arg);
        let mut want_dx = vec![0.0; x.len()];
        for c in 0..D {
            let plane = &x[c * H * W..(c + 1) * H * W];
            for oy in 0..oh {
                for ox in 0..ow {
                    let o = (c * oh + oy) * ow + ox;
                    let (v, a) = Max::reduce::<W, 2, 2>(plane, 2 * oy * W + 2 * ox, [2, 2]);
                    assert_eq!((y[o].to_bits(), arg[o]), (v.to_bits(), a), "{H}x{W}: output {o}");
                    want_dx[c * H * W + a as usize] += dy[o];
                }
            }
        }
        assert_eq!(dx, want_dx, "{H}x{W}: input gradient");
        let mut eval = vec![0.0; y.len()];
        pool_sample::<Max, D, H, W, 2, 2, 2, 2, 0, 0>(&x, &mut eval, &mut [], false);
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&eval), bits(&y), "{H}x{W}: evaluation");
    }

    #[test]
    fn vectorised_2x2_max_pooling_is_the_window_loop() {
        // Rows of 4, 11 (blocks of 8 with an overlapping last one), 16, 2 and 5 outputs, with
        // and without a last odd row or column.
        check_max2x2::<7, 9>();
        check_max2x2::<5, 23>();
        check_max2x2::<6, 32>();
        check_max2x2::<4, 5>();
        check_max2x2::<3, 10>();
    }

    #[test]
    fn l2_gradient_is_zero_for_an_all_zero_window() {
        let mut x = [0.0f32; 8];
        x[6] = 2.0;
        // Two 2x2 windows over a 2x4 plane: the first is all zeros.
        let dx = input_gradient(&L2Pool2d::<1, 2, 4, 2, 2, 2, 2>, 1, &x);
        assert_eq!(dx, [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        macro_rules! check {
            ($($layer:expr),* $(,)?) => {$(
                let (ex, _) = layer_gradient_errors(&$layer, 3, 7);
                println!("{}: max relative error {ex:e}", stringify!($layer));
                assert!(ex < 1e-2, "{}: max relative error {ex}", stringify!($layer));
            )*};
        }
        check!(
            // Non-overlapping, rectangular windows.
            MaxPool2d::<3, 6, 8, 2, 3, 2, 1>,
            AvgPool2d::<3, 6, 8, 2, 3, 2, 1>,
            L2Pool2d::<3, 6, 8, 2, 3, 2, 1>,
            // Overlapping windows, with the last row and column unread.
            MaxPool2d::<2, 8, 6, 3, 3, 2, 2>,
            AvgPool2d::<2, 8, 6, 3, 3, 2, 2>,
            L2Pool2d::<2, 8, 6, 3, 3, 2, 2>,
            // Overlapping rectangular windows, unread last column.
            MaxPool2d::<3, 7, 5, 3, 2, 2, 2>,
            AvgPool2d::<3, 7, 5, 3, 2, 2, 2>,
            L2Pool2d::<3, 7, 5, 3, 2, 2, 2>,
            // Padding: ResNet's stem pooling on an odd input, stride 1, one axis alone, 2x2.
            MaxPool2d::<2, 7, 7, 3, 3, 2, 2, 1, 1>,
            AvgPool2d::<2, 7, 7, 3, 3, 2, 2, 1, 1>,
            MaxPool2d::<2, 5, 6, 3, 3, 1, 1, 1, 1>,
            AvgPool2d::<2, 5, 6, 3, 3, 1, 1, 1, 1>,
            MaxPool2d::<3, 6, 7, 3, 2, 2, 1, 1, 0>,
            AvgPool2d::<3, 6, 7, 2, 4, 1, 3, 0, 2>,
            MaxPool2d::<2, 6, 5, 2, 2, 2, 2, 1, 1>,
            AvgPool2d::<2, 6, 5, 2, 2, 2, 2, 1, 1>,
        );
    }
}
