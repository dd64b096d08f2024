//! 2-D convolution as GEMM, with bias and activation fused into one pass.
//!
//! A convolution with stride 1 whose padding is smaller than its filter multiplies shifted views
//! of a zero-padded copy of each input ([`Mat::taps`]): row `(c, i, j)` of the im2col matrix is
//! the padded input read from tap `(c, i, j)` on, so no copy 9 times the input's size (for 3x3)
//! is written. Each output row then has `FW - 1` throw-away columns, which is worth it while they
//! are at most a seventh of the row. The input gradient is the same product with the flipped
//! filters over the padded output gradient. Other convolutions unfold each sample with
//! [`im2col`] and fold the input gradient back with [`col2im`].
//!
//! With 16 filters or more, the weight gradient is `dWᵀ` from the unfolded input (shifted views
//! or im2col's matrix) against the transposed output gradient, one column per filter. With
//! fewer, it is dot products of the output gradient's rows with the transposed shifted views,
//! or `dW` from [`im2row`]'s matrix.
//!
//! A grouped convolution is `G` independent convolutions of `D/G` channels into `K/G` filters,
//! each on its own slice of the input, the weights and the output: the passes above run once
//! per group, choosing their ways by the group's sizes. That costs `G` times the GEMM calls,
//! each `G` times smaller, whose fixed overheads (packing, edge tiles) dominate when a group
//! has few filters: a depthwise convolution (`G = D = K`) makes GEMMs of a single row, several
//! times slower per multiply-add than a direct loop would be. With `G = 1` the per-group loops
//! run once, over whole samples, and compile to the ungrouped code.

use crate::shape::window_len;

use super::{
    chunk, chunk_count, chunk_len, for_each_chunk, gemm, lane_sum, reduce_partials, Act, ChunksMut, Layer, Mat, MatMut,
    Mode,
};

/// Convolution of a `D x H x W` input (channels, rows, columns) with `K` filters of `FH x FW`,
/// strides `SH`/`SW`, zero padding `PH`/`PW` and `G` groups, followed by an activation.
///
/// Parameters: weights `[K, D/G, FH, FW]` then, when `BIAS`, biases `[K]`, as in
/// `torch.nn.Conv2d(..., bias=BIAS, groups=G)`: group `g` convolves input channels
/// `g·D/G .. (g+1)·D/G` into output channels `g·K/G .. (g+1)·K/G`, and `G = D = K` is a
/// depthwise convolution. `G` must divide `D` and `K`, or the build stops:
///
/// ```
/// use cnn_runtime::kernels::{Conv2d, Layer};
/// assert_eq!(<Conv2d<4, 5, 5, 6, 3, 3, 1, 1, 1, 1, false, 2> as Layer>::PARAMS, 6 * 2 * 3 * 3);
/// ```
///
/// ```compile_fail
/// use cnn_runtime::kernels::{Conv2d, Layer};
/// assert_eq!(<Conv2d<4, 5, 5, 6, 3, 3, 1, 1, 1, 1, false, 4> as Layer>::PARAMS, 6 * 3 * 3);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Conv2d<
    const D: usize,
    const H: usize,
    const W: usize,
    const K: usize,
    const FH: usize,
    const FW: usize,
    const SH: usize,
    const SW: usize,
    const PH: usize,
    const PW: usize,
    const BIAS: bool = true,
    const G: usize = 1,
> {
    /// Activation fused into the output pass.
    pub act: Act,
}

impl<
        const D: usize,
        const H: usize,
        const W: usize,
        const K: usize,
        const FH: usize,
        const FW: usize,
        const SH: usize,
        const SW: usize,
        const PH: usize,
        const PW: usize,
        const BIAS: bool,
        const G: usize,
    > Conv2d<D, H, W, K, FH, FW, SH, SW, PH, PW, BIAS, G>
{
    /// Output height: `(H - FH + 2 PH) / SH + 1`.
    pub const OH: usize = Self::GEOMETRY.oh;
    /// Output width: `(W - FW + 2 PW) / SW + 1`.
    pub const OW: usize = Self::GEOMETRY.ow;

    /// Unfolds one sample `x` (`[D, H, W]`) into `cols` (`[D*FH*FW, OH*OW]`): column `n` holds the
    /// receptive field of output position `n`, zeros where it overlaps the padding. (All `D`
    /// channels, whatever the groups.)
    pub fn im2col(x: &[f32], cols: &mut [f32]) {
        im2col(x, cols, [D, H, W], [FH, FW], [SH, SW], [PH, PW]);
    }
}

/// Unfolds one `[d, h, w]` sample into a `[d*fh*fw, oh*ow]` matrix (see [`Conv2d::im2col`]).
#[inline(always)]
pub fn im2col(x: &[f32], cols: &mut [f32], dims: [usize; 3], f: [usize; 2], stride: [usize; 2], pad: [usize; 2]) {
    let [oh, ow] = out_dims(dims, f, stride, pad);
    im2col_strided(x, cols, oh * ow, dims, f, stride, pad);
}

/// The output height and width of a window over `[d, h, w]`.
#[inline(always)]
fn out_dims([_, h, w]: [usize; 3], [fh, fw]: [usize; 2], [sh, sw]: [usize; 2], [ph, pw]: [usize; 2]) -> [usize; 2] {
    [window_len(h, fh, sh, ph), window_len(w, fw, sw, pw)]
}

/// [`im2col`] into the first `oh*ow` columns of a matrix whose rows are `ld` apart: one sample's
/// block of a matrix that holds several samples side by side.
#[inline(always)]
fn im2col_strided(
    x: &[f32],
    cols: &mut [f32],
    ld: usize,
    dims: [usize; 3],
    f: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
) {
    im2col_rows(x, cols, ld, 0..dims[0] * f[0] * f[1], dims, f, stride, pad);
}

/// The rows `taps` of [`im2col_strided`]'s matrix (filter taps `(c * fh + i) * fw + j`), from
/// the first row of `cols` on.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn im2col_rows(
    x: &[f32],
    cols: &mut [f32],
    ld: usize,
    taps: core::ops::Range<usize>,
    [d, h, w]: [usize; 3],
    [fh, fw]: [usize; 2],
    [sh, sw]: [usize; 2],
    [ph, pw]: [usize; 2],
) {
    let (oh, ow) = (window_len(h, fh, sh, ph), window_len(w, fw, sw, pw));
    debug_assert!(x.len() >= d * h * w && taps.end <= d * fh * fw);
    debug_assert!(taps.is_empty() || cols.len() >= (taps.len() - 1) * ld + oh * ow);
    for (q, t) in taps.enumerate() {
        let (c, i, j) = (t / (fh * fw), t / fw % fh, t % fw);
        let plane = &x[c * h * w..(c + 1) * h * w];
        let row = &mut cols[q * ld..q * ld + oh * ow];
        for oy in 0..oh {
            let out = &mut row[oy * ow..(oy + 1) * ow];
            let iy = (oy * sh + i).wrapping_sub(ph);
            if iy >= h {
                out.fill(0.0);
                continue;
            }
            let src = &plane[iy * w..(iy + 1) * w];
            for (ox, o) in out.iter_mut().enumerate() {
                let ix = (ox * sw + j).wrapping_sub(pw);
                *o = if ix < w { src[ix] } else { 0.0 };
            }
        }
    }
}

/// The adjoint of [`im2row`]: adds each entry of `rows` (`[oh*ow, d*fh*fw]`) back onto the
/// input position it came from, tap after tap as [`col2im`] adds them, so that each input
/// value gets the same sum. `dx` is accumulated into, not overwritten.
#[inline(always)]
fn row2im(
    rows: &[f32],
    dx: &mut [f32],
    [d, h, w]: [usize; 3],
    [fh, fw]: [usize; 2],
    [sh, sw]: [usize; 2],
    [ph, pw]: [usize; 2],
) {
    let (oh, ow) = (window_len(h, fh, sh, ph), window_len(w, fw, sw, pw));
    let taps = d * fh * fw;
    debug_assert!(dx.len() >= d * h * w && rows.len() >= taps * oh * ow);
    for t in 0..taps {
        let (c, i, j) = (t / (fh * fw), t / fw % fh, t % fw);
        let plane = &mut dx[c * h * w..(c + 1) * h * w];
        for oy in 0..oh {
            let iy = (oy * sh + i).wrapping_sub(ph);
            if iy >= h {
                continue;
            }
            let dst = &mut plane[iy * w..(iy + 1) * w];
            for ox in 0..ow {
                let ix = (ox * sw + j).wrapping_sub(pw);
                if ix < w {
                    dst[ix] += rows[(oy * ow + ox) * taps + t];
                }
            }
        }
    }
}

/// [`im2col`] transposed: one `[d*fh*fw]` row per output position, so that the weight
/// gradient `dz · rows` reads both operands along contiguous rows.
#[inline(always)]
pub fn im2row(
    x: &[f32],
    rows: &mut [f32],
    [d, h, w]: [usize; 3],
    [fh, fw]: [usize; 2],
    [sh, sw]: [usize; 2],
    [ph, pw]: [usize; 2],
) {
    let (oh, ow) = (window_len(h, fh, sh, ph), window_len(w, fw, sw, pw));
    let r_len = d * fh * fw;
    debug_assert!(x.len() >= d * h * w && rows.len() >= r_len * oh * ow);
    for oy in 0..oh {
        for ox in 0..ow {
            let row = &mut rows[(oy * ow + ox) * r_len..(oy * ow + ox + 1) * r_len];
            let mut r = 0;
            for c in 0..d {
                let plane = &x[c * h * w..(c + 1) * h * w];
                for i in 0..fh {
                    let iy = (oy * sh + i).wrapping_sub(ph);
                    let out = &mut row[r..r + fw];
                    r += fw;
                    if iy >= h {
                        out.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy * w..(iy + 1) * w];
                    let x0 = (ox * sw).wrapping_sub(pw);
                    if x0 < w && x0 + fw <= w {
                        out.copy_from_slice(&src[x0..x0 + fw]);
                    } else {
                        for (j, o) in out.iter_mut().enumerate() {
                            let ix = (ox * sw + j).wrapping_sub(pw);
                            *o = if ix < w { src[ix] } else { 0.0 };
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds each entry of `cols` back onto the input position it came
/// from. `dx` is accumulated into, not overwritten.
#[inline(always)]
pub fn col2im(cols: &[f32], dx: &mut [f32], dims: [usize; 3], f: [usize; 2], stride: [usize; 2], pad: [usize; 2]) {
    let [oh, ow] = out_dims(dims, f, stride, pad);
    col2im_strided(cols, oh * ow, dx, dims, f, stride, pad);
}

/// [`col2im`] from the first `oh*ow` columns of a matrix whose rows are `ld` apart.
#[inline(always)]
fn col2im_strided(
    cols: &[f32],
    ld: usize,
    dx: &mut [f32],
    [d, h, w]: [usize; 3],
    [fh, fw]: [usize; 2],
    [sh, sw]: [usize; 2],
    [ph, pw]: [usize; 2],
) {
    let (oh, ow) = (window_len(h, fh, sh, ph), window_len(w, fw, sw, pw));
    debug_assert!(dx.len() >= d * h * w && cols.len() >= (d * fh * fw - 1) * ld + oh * ow);
    let mut at = 0;
    for c in 0..d {
        let plane = &mut dx[c * h * w..(c + 1) * h * w];
        for i in 0..fh {
            for j in 0..fw {
                let row = &cols[at..at + oh * ow];
                at += ld;
                for oy in 0..oh {
                    let iy = (oy * sh + i).wrapping_sub(ph);
                    if iy >= h {
                        continue;
                    }
                    let dst = &mut plane[iy * w..(iy + 1) * w];
                    for (ox, &g) in row[oy * ow..(oy + 1) * ow].iter().enumerate() {
                        let ix = (ox * sw + j).wrapping_sub(pw);
                        if ix < w {
                            dst[ix] += g;
                        }
                    }
                }
            }
        }
    }
}

impl<
        const D: usize,
        const H: usize,
        const W: usize,
        const K: usize,
        const FH: usize,
        const FW: usize,
        const SH: usize,
        const SW: usize,
        const PH: usize,
        const PW: usize,
        const BIAS: bool,
        const G: usize,
    > Layer for Conv2d<D, H, W, K, FH, FW, SH, SW, PH, PW, BIAS, G>
{
    const IN: usize = Self::GEOMETRY.inputs();
    const OUT: usize = Self::GEOMETRY.outputs();
    const PARAMS: usize = Self::GEOMETRY.params();
    const SCRATCH: usize = Self::GEOMETRY.scratch();
    const STATE: usize = 0;
    const FLOPS: u64 = 2 * (Self::GEOMETRY.weights() * Self::GEOMETRY.n()) as u64;

    fn init(&self, p: &mut [f32], _: &mut [f32], rng: &mut crate::init::Rng) {
        // A filter reads one group's channels: PyTorch's fan-in is `D/G·FH·FW`.
        crate::init::pytorch_default(p, Self::GEOMETRY.r(), rng);
    }

    fn forward(
        &self,
        n: usize,
        x: &[f32],
        y: &mut [f32],
        p: &[f32],
        _: &mut [f32],
        scratch: &mut [f32],
        _: &mut [u32],
        _: Mode,
    ) {
        conv_forward::<Self>(self.act, n, x, y, p, scratch);
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
        partial: &mut [f32],
        _: &[u32],
    ) {
        conv_backward::<Self>(self.act, n, (x, y, dy, dx), (p, dp), scratch, partial);
    }
}

impl<
        const D: usize,
        const H: usize,
        const W: usize,
        const K: usize,
        const FH: usize,
        const FW: usize,
        const SH: usize,
        const SW: usize,
        const PH: usize,
        const PW: usize,
        const BIAS: bool,
        const G: usize,
    > Dims for Conv2d<D, H, W, K, FH, FW, SH, SW, PH, PW, BIAS, G>
{
    const GEOMETRY: Geometry = Geometry::new([D, H, W], K, [FH, FW], [SH, SW], [PH, PW], BIAS, G);
}

/// A convolution's dimensions, as one constant that the kernels below fold into their loops.
trait Dims {
    const GEOMETRY: Geometry;
}

/// A convolution's dimensions and the way it is computed.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    /// Input channels of one group.
    d: usize,
    h: usize,
    w: usize,
    /// Filters of one group.
    k: usize,
    groups: usize,
    f: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
    bias: bool,
    oh: usize,
    ow: usize,
    /// Stride 1 and padding below the filter: the GEMMs read shifted views of a padded copy
    /// of the input ([`Mat::taps`]) instead of an im2col matrix 9 times its size (for 3x3).
    shifted: bool,
}

impl Geometry {
    /// `d` input channels and `k` filters in all, in `groups` groups.
    #[allow(clippy::too_many_arguments)]
    const fn new(
        [d, h, w]: [usize; 3],
        k: usize,
        [fh, fw]: [usize; 2],
        stride: [usize; 2],
        [ph, pw]: [usize; 2],
        bias: bool,
        groups: usize,
    ) -> Self {
        assert!(
            groups > 0 && d.is_multiple_of(groups) && k.is_multiple_of(groups),
            "the groups must divide the channels and filters"
        );
        let (d, k) = (d / groups, k / groups);
        let (oh, ow) = (window_len(h, fh, stride[0], ph), window_len(w, fw, stride[1], pw));
        // Shifted views compute `fw - 1` throw-away columns per output row: worth it while
        // they add at most a seventh.
        let shifted = stride[0] == 1 && stride[1] == 1 && ph < fh && pw < fw && ow >= 7 * (fw - 1);
        Geometry { d, h, w, k, groups, f: [fh, fw], stride, pad: [ph, pw], bias, oh, ow, shifted }
    }

    /// Filter taps per output value (of one group), and output positions per channel.
    const fn r(&self) -> usize {
        self.d * self.f[0] * self.f[1]
    }

    const fn n(&self) -> usize {
        self.oh * self.ow
    }

    /// Values per input and per output sample, all groups.
    const fn inputs(&self) -> usize {
        self.groups * self.group_inputs()
    }

    const fn outputs(&self) -> usize {
        self.groups * self.group_outputs()
    }

    /// Values per input and per output sample of one group.
    const fn group_inputs(&self) -> usize {
        self.d * self.h * self.w
    }

    const fn group_outputs(&self) -> usize {
        self.k * self.n()
    }

    /// Weights of all groups, and of one.
    const fn weights(&self) -> usize {
        self.groups * self.group_weights()
    }

    const fn group_weights(&self) -> usize {
        self.k * self.r()
    }

    const fn params(&self) -> usize {
        self.weights() + if self.bias { self.groups * self.k } else { 0 }
    }

    /// The weight gradient as `dWᵀ` (one column per filter) from the unfolded input (shifted
    /// views or im2col's matrix), rather than `dW` from im2row's: worth it when there are enough
    /// filters to fill a register tile's width.
    const fn transposed_dw(&self) -> bool {
        self.k >= 16
    }

    /// Rows and width of the padded input, and its length with the `fw - 1` values that the
    /// last tap's throw-away columns read past the end.
    const fn padded(&self) -> [usize; 3] {
        let (hp, wp) = (self.h + 2 * self.pad[0], self.w + 2 * self.pad[1]);
        [hp, wp, self.d * hp * wp + self.f[1] - 1]
    }

    /// Output positions over the padded width (`oh` rows of `wp`, `ow` of each kept).
    const fn np(&self) -> usize {
        self.oh * self.padded()[1]
    }

    /// The output gradient padded so that the input gradient is a shifted-view GEMM with the
    /// flipped filters: rows, width and length (plus slack as in [`Geometry::padded`]); input
    /// gradient positions over that width.
    const fn grad_padded(&self) -> [usize; 4] {
        let (hq, wq) = (self.h + self.f[0] - 1, self.w + self.f[1] - 1);
        [hq, wq, self.k * hq * wq + self.f[1] - 1, self.h * wq]
    }

    /// Samples per product on the im2col path: enough that a product is about 128 columns
    /// wide (and the weight gradient's inner dimension as long), at most 16. Small outputs (a
    /// 3x3 map has 9 positions) would otherwise make products too narrow for a register tile and
    /// weight gradients that load and store all of `dW` for 9 multiply-adds per value. 1 with
    /// shifted views, whose outputs are wide already.
    const fn batch(&self) -> usize {
        if self.shifted {
            return 1;
        }
        let b = 128usize.div_ceil(self.n());
        if b > 16 {
            16
        } else {
            b
        }
    }

    /// Whether the backward pass transposes the output gradient in place and sums the weight
    /// gradient over the whole batch at once: one group, no shifted views, enough filters for
    /// `dWᵀ` and at least 65,536 weights (AlexNet's convolutions, whose outputs are small and
    /// weights many). Its input gradient is then `dcolsᵀ = dzᵀ W`, both operands read along
    /// their rows, and its weight gradient is summed per block of `dWᵀ`'s rows, each block
    /// staying in cache through the batch, with no per-chunk partial sums of all the weights to
    /// add. Smaller layers (LeNet-5's second) train faster with the per-chunk sums.
    const fn whole_batch_dw(&self) -> bool {
        !self.shifted && self.groups == 1 && self.transposed_dw() && self.weights() >= 1 << 16
    }

    /// Rows of `dWᵀ` per block of the whole-batch weight gradient: 64, or more where that
    /// would make over 64 blocks.
    const fn dw_rows(&self) -> usize {
        let rows = self.r().div_ceil(64).div_ceil(8) * 8;
        if rows > 64 {
            rows
        } else {
            64
        }
    }

    /// Columns of the products of [`Geometry::batch`] samples.
    const fn batch_n(&self) -> usize {
        self.batch() * self.n()
    }

    /// The output gradient of a batch of samples side by side (`[K, batch * N]`), where the
    /// batch holds more than one sample; nothing otherwise.
    const fn gathered(&self) -> usize {
        if self.batch() > 1 {
            self.k * self.batch_n()
        } else {
            0
        }
    }

    /// Scratch per chunk, which the groups use one after the other. On the im2col path: the
    /// forward's im2col matrix and product of a batch of samples, or one after the other the
    /// two gradients' (the weight gradient's part, then the im2col matrix and gathered output
    /// gradient of the input gradient). With shifted views, the larger of the forward (padded
    /// input, wide output) and backward (the weight gradient's part, then flipped filters,
    /// padded output gradient, wide input gradient) needs.
    const fn scratch(&self) -> usize {
        let cols = self.r() * self.batch_n() + self.gathered();
        if !self.shifted {
            return if cols > self.dw_scratch() { cols } else { self.dw_scratch() };
        }
        let forward = self.padded()[2] + self.k * self.np();
        let [_, _, dyp, nq] = self.grad_padded();
        let backward = self.dw_scratch() + self.group_weights() + dyp + self.d * nq;
        if forward > backward {
            forward
        } else {
            backward
        }
    }

    /// The weight gradient's part of the backward scratch: the unfolded input (padded input or
    /// im2col's matrix of a batch) and transposed output gradient; with fewer than 16
    /// filters, the padded input and the output gradient over the padded width, or im2row's
    /// matrix of a batch and its gathered output gradient.
    const fn dw_scratch(&self) -> usize {
        let unfolded = if self.shifted { self.padded()[2] } else { self.r() * self.batch_n() };
        if self.transposed_dw() {
            unfolded + self.wide_n() * self.k
        } else if self.shifted {
            unfolded + self.k * self.np()
        } else {
            unfolded + self.gathered()
        }
    }

    /// Output positions per channel as the GEMMs compute them: over the padded width with
    /// shifted views, else the real ones of a batch of samples side by side.
    const fn wide_n(&self) -> usize {
        if self.shifted {
            self.np()
        } else {
            self.batch_n()
        }
    }

    /// The dimensions of one group's input, filters, strides and padding.
    fn dims(&self) -> ([usize; 3], [usize; 2], [usize; 2], [usize; 2]) {
        ([self.d, self.h, self.w], self.f, self.stride, self.pad)
    }
}

/// Part `gi` of `len` values of each sample of `samples` (samples of `stride` values): group
/// `gi`'s slice of a batch.
#[inline(always)]
fn group_of(samples: &[f32], stride: usize, len: usize, gi: usize) -> impl Iterator<Item = &[f32]> {
    samples.chunks_exact(stride).map(move |s| &s[gi * len..(gi + 1) * len])
}

/// [`group_of`] for writing.
#[inline(always)]
fn group_of_mut(samples: &mut [f32], stride: usize, len: usize, gi: usize) -> impl Iterator<Item = &mut [f32]> {
    samples.chunks_exact_mut(stride).map(move |s| &mut s[gi * len..(gi + 1) * len])
}

/// Copies the `[c, h, w]` volume `x` into the interior of `xp`, `[c, hp, wp]`, starting at row
/// `top` and column `left`; the border of `xp` is left as it is (zero).
#[inline(always)]
fn pad_into(x: &[f32], xp: &mut [f32], [c, h, w]: [usize; 3], [top, left]: [usize; 2], [hp, wp]: [usize; 2]) {
    for (plane, out) in x[..c * h * w].chunks_exact(h * w).zip(xp.chunks_mut(hp * wp)) {
        for (row, out) in plane.chunks_exact(w).zip(out[top * wp..].chunks_mut(wp)) {
            out[left..left + w].copy_from_slice(row);
        }
    }
}

fn conv_forward<S: Dims>(act: Act, n: usize, x: &[f32], y: &mut [f32], p: &[f32], scratch: &mut [f32]) {
    let g = &S::GEOMETRY;
    let (r, nn, (inp, out)) = (g.r(), g.n(), (g.inputs(), g.outputs()));
    let (gin, gout, gw) = (g.group_inputs(), g.group_outputs(), g.group_weights());
    let (w, b) = p[..g.params()].split_at(g.weights());
    let (len, count) = (chunk_len(n), chunk_count(n));
    let size = g.scratch();
    let ys = ChunksMut::new(&mut y[..n * out], len * out);
    let scratches = ChunksMut::new(&mut scratch[..count * size], size);
    let x = &x[..n * inp];
    for_each_chunk(count, &|c| {
        let g = &S::GEOMETRY;
        let (y, x, scratch) = (ys.take(c), chunk(x, len * inp, c), scratches.take(c));
        let bias_of = |k: usize| if g.bias { b[k] } else { 0.0 };
        if g.shifted {
            let [hp, wp, xp_len] = g.padded();
            let np = g.np();
            let (xp, wide) = scratch.split_at_mut(xp_len);
            let wide = &mut wide[..g.k * np];
            // Every group pads into the same interior: the border stays zero.
            xp.fill(0.0);
            for (y, x) in y.chunks_exact_mut(out).zip(x.chunks_exact(inp)) {
                for (gi, (y, x)) in y.chunks_exact_mut(gout).zip(x.chunks_exact(gin)).enumerate() {
                    pad_into(x, xp, [g.d, g.h, g.w], g.pad, [hp, wp]);
                    // shape: [K, R] x [R, OH*WP] -> [K, OH*WP]
                    let taps = Mat::taps(xp, [g.d, hp, wp], g.f, np);
                    gemm(1.0, Mat::new(&w[gi * gw..(gi + 1) * gw], g.k, r), taps, 0.0, MatMut::new(wide, g.k, np));
                    for (k, (y, wide)) in y.chunks_exact_mut(nn).zip(wide.chunks_exact(np)).enumerate() {
                        let bias = bias_of(gi * g.k + k);
                        for (y, wide) in y.chunks_exact_mut(g.ow).zip(wide.chunks_exact(wp)) {
                            act.map_zip(y, wide, |_, v| v + bias);
                        }
                    }
                }
            }
            return;
        }
        // Up to `batch` samples side by side in each product.
        let (dims, f, st, pad) = g.dims();
        let (cols, rest) = scratch.split_at_mut(r * g.batch_n());
        let wide = &mut rest[..g.gathered()];
        for (ys, xs) in y.chunks_mut(g.batch() * out).zip(x.chunks(g.batch() * inp)) {
            let cn = xs.len() / inp * nn;
            for gi in 0..g.groups {
                for (s, x) in group_of(xs, inp, gin, gi).enumerate() {
                    im2col_strided(x, &mut cols[s * nn..], cn, dims, f, st, pad);
                }
                // shape: [K, R] x [R, samples * N] -> [K, samples * N]
                let w = Mat::new(&w[gi * gw..(gi + 1) * gw], g.k, r);
                if cn == nn {
                    let y = &mut ys[gi * gout..(gi + 1) * gout];
                    gemm(1.0, w, Mat::new(cols, r, nn), 0.0, MatMut::new(y, g.k, nn));
                    for (k, row) in y.chunks_exact_mut(nn).enumerate() {
                        let bias = bias_of(gi * g.k + k);
                        act.map_in_place(row, |v| v + bias);
                    }
                    continue;
                }
                gemm(1.0, w, Mat::new(cols, r, cn), 0.0, MatMut::new(wide, g.k, cn));
                for (s, y) in group_of_mut(ys, out, gout, gi).enumerate() {
                    for (k, y) in y.chunks_exact_mut(nn).enumerate() {
                        let (bias, wide) = (bias_of(gi * g.k + k), &wide[k * cn + s * nn..k * cn + (s + 1) * nn]);
                        act.map_zip(y, wide, |_, v| v + bias);
                    }
                }
            }
        }
    });
}

/// The output gradients of group `gi` of the samples `dz` (`out` values each, `gout` per
/// group, `nn` per channel) side by side in `dzb`, `[K, samples * nn]`.
#[inline(always)]
fn gather(dz: &[f32], [out, gout, nn]: [usize; 3], gi: usize, dzb: &mut [f32]) {
    let cn = dz.len() / out * nn;
    for (s, dz) in group_of(dz, out, gout, gi).enumerate() {
        for (k, dz) in dz.chunks_exact(nn).enumerate() {
            dzb[k * cn + s * nn..k * cn + (s + 1) * nn].copy_from_slice(dz);
        }
    }
}

/// The activations `x`, `y` and their gradients `dy` (folded in place into the gradient
/// before the activation) and `dx`; the parameters and their gradient.
type Activations<'a> = (&'a [f32], &'a [f32], &'a mut [f32], Option<&'a mut [f32]>);

fn conv_backward<S: Dims>(
    act: Act,
    n: usize,
    (x, y, dy, dx): Activations<'_>,
    (p, dp): (&[f32], &mut [f32]),
    scratch: &mut [f32],
    partial: &mut [f32],
) {
    let g = &S::GEOMETRY;
    if g.whole_batch_dw() {
        conv_backward_whole::<S>(act, n, (x, y, dy, dx), (p, dp), scratch, partial);
        return;
    }
    let (nn, (inp, out), params) = (g.n(), (g.inputs(), g.outputs()), g.params());
    let w = &p[..g.weights()];
    let len = chunk_len(n);
    let count = chunk_count(n);
    let size = g.scratch();
    let dys = ChunksMut::new(&mut dy[..n * out], len * out);
    let scratches = ChunksMut::new(&mut scratch[..count * size], size);
    let parts = ChunksMut::new(&mut partial[..count * params], params);
    let dxs = dx.map(|dx| ChunksMut::new(&mut dx[..n * inp], len * inp));
    let (x, y) = (&x[..n * inp], &y[..n * out]);
    for_each_chunk(count, &|c| {
        let g = &S::GEOMETRY;
        let (dy, y, x) = (dys.take(c), chunk(y, len * out, c), chunk(x, len * inp, c));
        let (scratch, part, dx) = (scratches.take(c), parts.take(c), dxs.as_ref().map(|d| d.take(c)));
        let (dw, db) = part.split_at_mut(g.weights());
        db.fill(0.0);
        if !g.transposed_dw() {
            dw.fill(0.0);
        }
        for (dz, y) in dy.chunks_exact_mut(out).zip(y.chunks_exact(out)) {
            // dz = dy * act'(y), folded in place.
            act.backward_in_place(y, dz);
            for (g, row) in db.iter_mut().zip(dz.chunks_exact(nn)) {
                *g += lane_sum(row);
            }
        }
        // With shifted views the two gradients use separate parts of the scratch (the
        // input gradient keeps its flipped filters for the whole chunk), else both use all
        // of it, one after the other.
        let split = if g.shifted { g.dw_scratch() } else { 0 };
        let (dw_scratch, dx_scratch) = scratch.split_at_mut(split);
        weight_gradient(g, dy, x, dw, if g.shifted { dw_scratch } else { &mut dx_scratch[..] });
        if let Some(dx) = dx {
            input_gradient(g, w, dy, dx, dx_scratch);
        }
    });
    reduce_partials(n, &partial[..count * params], &mut dp[..params]);
    if g.transposed_dw() {
        untranspose(g, &mut dp[..g.weights()], &mut partial[..g.weights()]);
    }
}

/// [`conv_backward`] where [`Geometry::whole_batch_dw`]: per chunk, the output gradient folded
/// through the activation, summed for the bias, transposed in place to `dzᵀ` (`[N, K]` per
/// sample) and taken back to the input; then the weight gradient over the whole batch.
fn conv_backward_whole<S: Dims>(
    act: Act,
    n: usize,
    (x, y, dy, dx): Activations<'_>,
    (p, dp): (&[f32], &mut [f32]),
    scratch: &mut [f32],
    partial: &mut [f32],
) {
    let g = &S::GEOMETRY;
    let (r, nn, k, (inp, out)) = (g.r(), g.n(), g.k, (g.inputs(), g.outputs()));
    let (weights, params) = (g.weights(), g.params());
    let biases = params - weights;
    let (len, count, size) = (chunk_len(n), chunk_count(n), g.scratch());
    let w = &p[..weights];
    {
        let dzs = ChunksMut::new(&mut dy[..n * out], len * out);
        let scratches = ChunksMut::new(&mut scratch[..count * size], size);
        let dbs = ChunksMut::new(&mut partial[..count * biases], biases);
        let dxs = dx.map(|dx| ChunksMut::new(&mut dx[..n * inp], len * inp));
        let y = &y[..n * out];
        for_each_chunk(count, &|c| {
            let g = &S::GEOMETRY;
            let (dz, y, dx) = (dzs.take(c), chunk(y, len * out, c), dxs.as_ref().map(|d| d.take(c)));
            let (scratch, db) = (scratches.take(c), dbs.take(c));
            db.fill(0.0);
            let (tmp, rest) = scratch.split_at_mut(out);
            for (dz, y) in dz.chunks_exact_mut(out).zip(y.chunks_exact(out)) {
                act.backward_in_place(y, dz);
                for (g, row) in db.iter_mut().zip(dz.chunks_exact(nn)) {
                    *g += lane_sum(row);
                }
                tmp.copy_from_slice(dz);
                transpose_into(tmp, k, dz, |q| q);
            }
            let Some(dx) = dx else { return };
            let (dims, f, st, pad) = g.dims();
            let rows = &mut rest[..g.batch_n() * r];
            for (dzt, dx) in dz.chunks(g.batch() * out).zip(dx.chunks_mut(g.batch() * inp)) {
                // dcolsᵀ [samples * N, R] = dzᵀ [samples * N, K] x W [K, R]
                let cn = dzt.len() / out * nn;
                gemm(1.0, Mat::new(dzt, cn, k), Mat::new(w, k, r), 0.0, MatMut::new(rows, cn, r));
                for (dx, rows) in dx.chunks_exact_mut(inp).zip(rows.chunks_exact(nn * r)) {
                    dx.fill(0.0);
                    row2im(rows, dx, dims, f, st, pad);
                }
            }
        });
    }
    reduce_partials(n, &partial[..count * biases], &mut dp[weights..params]);
    whole_batch_weight_gradient(g, n, &dy[..n * out], &x[..n * inp], &mut dp[..weights], scratch);
    untranspose(g, &mut dp[..weights], &mut partial[..weights]);
}

/// Writes the `rows x N` matrix `src` transposed into `dst`: column `q` of `src` becomes row
/// `row(q)` of `dst`, whose rows are `rows` values long. In blocks of 16 columns, so that the
/// 16 rows of `dst` being written stay in the first-level cache while every row of `src` passes.
#[inline(always)]
fn transpose_into(src: &[f32], rows: usize, dst: &mut [f32], row: impl Fn(usize) -> usize) {
    let n = src.len() / rows.max(1);
    let mut q0 = 0;
    while q0 < n {
        let q1 = (q0 + 16).min(n);
        let starts: [usize; 16] = core::array::from_fn(|i| if q0 + i < q1 { row(q0 + i) * rows } else { 0 });
        for (r, line) in src.chunks_exact(n).enumerate() {
            for (i, &v) in line[q0..q1].iter().enumerate() {
                dst[starts[i] + r] = v;
            }
        }
        q0 = q1;
    }
}

/// `dwt` = `dWᵀ` (`[R, K]`) from the transposed output gradients `dzt` of the whole batch and
/// its inputs `x`: per block of [`Geometry::dw_rows`] rows, over groups of
/// [`Geometry::batch`] samples in order, so that each value is summed the same way on any
/// number of threads.
fn whole_batch_weight_gradient(g: &Geometry, n: usize, dzt: &[f32], x: &[f32], dwt: &mut [f32], scratch: &mut [f32]) {
    let (r, nn, k, (inp, out)) = (g.r(), g.n(), g.k, (g.inputs(), g.outputs()));
    let (b, rows) = (g.batch(), g.dw_rows());
    let blocks = r.div_ceil(rows);
    let slots = chunk_count(n).min(blocks);
    let size = g.scratch();
    let scratches = ChunksMut::new(&mut scratch[..slots * size], size);
    let parts = ChunksMut::new(dwt, rows * k);
    let (dims, f, st, pad) = g.dims();
    for_each_chunk(slots, &|c| {
        let scratch = scratches.take(c);
        // Runs of blocks whose lengths differ by one at most, the longer ones spread out, so
        // that the halves of the slots, which rayon hands to two threads, hold as many blocks.
        for block in c * blocks / slots..(c + 1) * blocks / slots {
            let dwt = parts.take(block);
            let (r0, rb) = (block * rows, dwt.len() / k);
            for (gi, (dzt, xs)) in dzt.chunks(b * out).zip(x.chunks(b * inp)).enumerate() {
                let cn = xs.len() / inp * nn;
                let cols = &mut scratch[..rb * cn];
                for (s, x) in xs.chunks_exact(inp).enumerate() {
                    im2col_rows(x, &mut cols[s * nn..], cn, r0..r0 + rb, dims, f, st, pad);
                }
                // dWᵀ's rows [rb, K] += im2col's rows [rb, samples * N] x dzᵀ [samples * N, K]
                let beta = if gi == 0 { 0.0 } else { 1.0 };
                gemm(1.0, Mat::new(cols, rb, cn), Mat::new(dzt, cn, k), beta, MatMut::new(dwt, rb, k));
            }
        }
    });
}

/// Turns the weight gradient `dw`, summed as `dWᵀ` (`[R, K]` per group), into `dW` (`[K, R]`),
/// through `tmp` (as long): once per pass, after the chunks' sums are added, rather than once
/// per chunk.
fn untranspose(g: &Geometry, dw: &mut [f32], tmp: &mut [f32]) {
    let (r, k, gw) = (g.r(), g.k, g.group_weights());
    tmp.copy_from_slice(dw);
    // Blocks of filters, each task writing whole rows of `dW` from rows of `dWᵀ` read in order.
    let rows = k.div_ceil(super::MAX_CHUNKS).max(8);
    let blocks = k.div_ceil(rows);
    for (dw, t) in dw.chunks_exact_mut(gw).zip(tmp.chunks_exact(gw)) {
        let parts = ChunksMut::new(dw, rows * r);
        for_each_chunk(blocks, &|b| {
            let dw = parts.take(b);
            let k0 = b * rows;
            for (tap, row) in t.chunks_exact(k).enumerate() {
                for (kk, &v) in row[k0..k0 + dw.len() / r].iter().enumerate() {
                    dw[kk * r + tap] = v;
                }
            }
        });
    }
}

/// `dw` = the chunk's output gradients `dz` against its inputs `x`, group after group: `dW`
/// (`[K, R]`, zero on entry) added to, or with enough filters `dWᵀ` (`[R, K]`) written.
#[inline(always)]
fn weight_gradient(g: &Geometry, dz: &[f32], x: &[f32], dw: &mut [f32], scratch: &mut [f32]) {
    let (r, (inp, out)) = (g.r(), (g.inputs(), g.outputs()));
    let (gin, gout, gw) = (g.group_inputs(), g.group_outputs(), g.group_weights());
    if !g.shifted {
        weight_gradient_unfolded(g, dz, x, dw, scratch);
        return;
    }
    if g.transposed_dw() {
        // dWᵀ [R, K] = the padded input's taps [R, N'] x dzᵀ [N', K], N' running over the
        // padded width, where dzᵀ is zero in the throw-away columns so that they add nothing.
        let [hp, wp, xp_len] = g.padded();
        let (wide, width) = (g.wide_n(), wp);
        let (unfolded, rest) = scratch.split_at_mut(xp_len);
        let dzt = &mut rest[..wide * g.k];
        // The padding and the throw-away columns, which the loops below leave alone.
        unfolded.fill(0.0);
        dzt.fill(0.0);
        for (gi, dw) in dw.chunks_exact_mut(gw).enumerate() {
            for (s, (dz, x)) in group_of(dz, out, gout, gi).zip(group_of(x, inp, gin, gi)).enumerate() {
                transpose_into(dz, g.k, dzt, |q| q / g.ow * width + q % g.ow);
                pad_into(x, unfolded, [g.d, g.h, g.w], g.pad, [hp, wp]);
                let a = Mat::taps(unfolded, [g.d, hp, wp], g.f, wide);
                let beta = if s == 0 { 0.0 } else { 1.0 };
                gemm(1.0, a, Mat::new(dzt, wide, g.k), beta, MatMut::new(dw, r, g.k));
            }
        }
        return;
    }
    // dW [K, R] += dz [K, OH*WP] (zero in the throw-away columns) x the taps of the padded
    // input, transposed: dot products of the output gradient's rows with the taps.
    let [hp, wp, xp_len] = g.padded();
    let np = g.np();
    let (xp, rest) = scratch.split_at_mut(xp_len);
    let dzw = &mut rest[..g.k * np];
    xp.fill(0.0);
    dzw.fill(0.0);
    for (gi, dw) in dw.chunks_exact_mut(gw).enumerate() {
        for (dz, x) in group_of(dz, out, gout, gi).zip(group_of(x, inp, gin, gi)) {
            pad_into(x, xp, [g.d, g.h, g.w], g.pad, [hp, wp]);
            for (row, wide) in dz.chunks_exact(g.ow).zip(dzw.chunks_exact_mut(wp)) {
                wide[..g.ow].copy_from_slice(row);
            }
            let taps = Mat::taps(xp, [g.d, hp, wp], g.f, np).t();
            gemm(1.0, Mat::new(dzw, g.k, np), taps, 1.0, MatMut::new(dw, g.k, r));
        }
    }
}

/// [`weight_gradient`] on the im2col path, over batches of samples side by side: each product's
/// inner dimension runs over every position of up to [`Geometry::batch`] samples.
#[inline(always)]
fn weight_gradient_unfolded(g: &Geometry, dz: &[f32], x: &[f32], dw: &mut [f32], scratch: &mut [f32]) {
    let (r, nn, (inp, out)) = (g.r(), g.n(), (g.inputs(), g.outputs()));
    let (gin, gout, gw) = (g.group_inputs(), g.group_outputs(), g.group_weights());
    let (dims, f, st, pad) = g.dims();
    let (b, bn) = (g.batch(), g.batch_n());
    let (unfolded, rest) = scratch.split_at_mut(r * bn);
    if g.transposed_dw() {
        // dWᵀ [R, K] = im2col's matrix [R, samples * N] x dzᵀ [samples * N, K].
        let dzt = &mut rest[..bn * g.k];
        for (gi, dw) in dw.chunks_exact_mut(gw).enumerate() {
            for (bi, (dzs, xs)) in dz.chunks(b * out).zip(x.chunks(b * inp)).enumerate() {
                let cn = xs.len() / inp * nn;
                for (s, (dz, x)) in group_of(dzs, out, gout, gi).zip(group_of(xs, inp, gin, gi)).enumerate() {
                    transpose_into(dz, g.k, dzt, |q| s * nn + q);
                    im2col_strided(x, &mut unfolded[s * nn..], cn, dims, f, st, pad);
                }
                let beta = if bi == 0 { 0.0 } else { 1.0 };
                gemm(1.0, Mat::new(unfolded, r, cn), Mat::new(dzt, cn, g.k), beta, MatMut::new(dw, r, g.k));
            }
        }
        return;
    }
    // dW [K, R] += dz [K, samples * N] x im2row's matrices of the samples, one under the other.
    let dzb = &mut rest[..g.gathered()];
    for (gi, dw) in dw.chunks_exact_mut(gw).enumerate() {
        for (dzs, xs) in dz.chunks(b * out).zip(x.chunks(b * inp)) {
            let cn = xs.len() / inp * nn;
            for (s, x) in group_of(xs, inp, gin, gi).enumerate() {
                im2row(x, &mut unfolded[s * nn * r..], dims, f, st, pad);
            }
            let dz = if cn == nn {
                &dzs[gi * gout..(gi + 1) * gout]
            } else {
                gather(dzs, [out, gout, nn], gi, dzb);
                &dzb[..g.k * cn]
            };
            gemm(1.0, Mat::new(dz, g.k, cn), Mat::new(unfolded, cn, r), 1.0, MatMut::new(dw, g.k, r));
        }
    }
}

/// `dx` = the chunk's output gradients `dz` through the filters `w`, written (not added),
/// group after group.
#[inline(always)]
fn input_gradient(g: &Geometry, w: &[f32], dz: &[f32], dx: &mut [f32], scratch: &mut [f32]) {
    let (r, nn, (inp, out)) = (g.r(), g.n(), (g.inputs(), g.outputs()));
    let (gin, gout, gw) = (g.group_inputs(), g.group_outputs(), g.group_weights());
    if g.shifted {
        // dx [D, H*WQ] = flipped filters [D, K*FH*FW] x taps of dz padded by (F - 1 - P).
        let [fh, fw] = g.f;
        let [hq, wq, dyp_len, nq] = g.grad_padded();
        let (flipped, rest) = scratch.split_at_mut(gw);
        let (dyp, rest) = rest.split_at_mut(dyp_len);
        let wide = &mut rest[..g.d * nq];
        dyp.fill(0.0);
        let corner = [fh - 1 - g.pad[0], fw - 1 - g.pad[1]];
        for (gi, w) in w.chunks_exact(gw).enumerate() {
            for c in 0..g.d {
                for k in 0..g.k {
                    for i in 0..fh {
                        for j in 0..fw {
                            let from = ((k * g.d + c) * fh + fh - 1 - i) * fw + fw - 1 - j;
                            flipped[((c * g.k + k) * fh + i) * fw + j] = w[from];
                        }
                    }
                }
            }
            for (dz, dx) in group_of(dz, out, gout, gi).zip(group_of_mut(dx, inp, gin, gi)) {
                pad_into(dz, dyp, [g.k, g.oh, g.ow], corner, [hq, wq]);
                let taps = Mat::taps(dyp, [g.k, hq, wq], g.f, nq);
                gemm(1.0, Mat::new(flipped, g.d, g.k * fh * fw), taps, 0.0, MatMut::new(wide, g.d, nq));
                for (dx, wide) in dx.chunks_exact_mut(g.w).zip(wide.chunks_exact(wq)) {
                    dx.copy_from_slice(&wide[..g.w]);
                }
            }
        }
        return;
    }
    let (dims, f, st, pad) = g.dims();
    let b = g.batch();
    let (cols, rest) = scratch.split_at_mut(r * g.batch_n());
    let dzb = &mut rest[..g.gathered()];
    for (gi, w) in w.chunks_exact(gw).enumerate() {
        for (dzs, dxs) in dz.chunks(b * out).zip(dx.chunks_mut(b * inp)) {
            // dcols [R, samples * N] = W^T [R, K] x dz [K, samples * N], then fold back onto
            // each sample's input.
            let cn = dzs.len() / out * nn;
            let dz = if cn == nn {
                &dzs[gi * gout..(gi + 1) * gout]
            } else {
                gather(dzs, [out, gout, nn], gi, dzb);
                &dzb[..g.k * cn]
            };
            gemm(1.0, Mat::new(w, g.k, r).t(), Mat::new(dz, g.k, cn), 0.0, MatMut::new(cols, r, cn));
            for (s, dx) in group_of_mut(dxs, inp, gin, gi).enumerate() {
                dx.fill(0.0);
                col2im_strided(&cols[s * nn..], cn, dx, dims, f, st, pad);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{assert_close, forward, layer_gradient_errors, random_vec};
    use crate::kernels::{chunk_count, sizes_of};

    /// The blocked transpose puts every value where the plain double loop does, at widths
    /// around its block of 16 and with rows of `dst` spread out, and writes nothing else.
    #[test]
    fn transpose_into_moves_each_value_once() {
        for (rows, n) in [(1, 1), (3, 16), (5, 17), (32, 33), (7, 100)] {
            let src = random_vec(rows * n, 70);
            let place = |q: usize| q / 5 * 7 + q % 5;
            let len = (place(n - 1) + 1) * rows;
            let mut fast = vec![f32::NAN; len];
            transpose_into(&src, rows, &mut fast, place);
            let mut want = vec![f32::NAN; len];
            for r in 0..rows {
                for q in 0..n {
                    want[place(q) * rows + r] = src[r * n + q];
                }
            }
            let same = fast.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{rows}x{n}");
        }
    }

    /// Direct convolution straight from the definition, for comparison.
    fn reference<
        const D: usize,
        const H: usize,
        const W: usize,
        const K: usize,
        const FH: usize,
        const FW: usize,
        const SH: usize,
        const SW: usize,
        const PH: usize,
        const PW: usize,
    >(
        x: &[f32],
        p: &[f32],
    ) -> Vec<f32> {
        type C<
            const D: usize,
            const H: usize,
            const W: usize,
            const K: usize,
            const FH: usize,
            const FW: usize,
            const SH: usize,
            const SW: usize,
            const PH: usize,
            const PW: usize,
        > = Conv2d<D, H, W, K, FH, FW, SH, SW, PH, PW>;
        let (oh, ow) = (C::<D, H, W, K, FH, FW, SH, SW, PH, PW>::OH, C::<D, H, W, K, FH, FW, SH, SW, PH, PW>::OW);
        let mut y = vec![0.0; K * oh * ow];
        for k in 0..K {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = p[K * D * FH * FW + k] as f64;
                    for c in 0..D {
                        for i in 0..FH {
                            for j in 0..FW {
                                let (iy, ix) =
                                    ((oy * SH + i) as isize - PH as isize, (ox * SW + j) as isize - PW as isize);
                                if iy >= 0 && ix >= 0 && (iy as usize) < H && (ix as usize) < W {
                                    s += x[(c * H + iy as usize) * W + ix as usize] as f64
                                        * p[((k * D + c) * FH + i) * FW + j] as f64;
                                }
                            }
                        }
                    }
                    y[(k * oh + oy) * ow + ox] = s as f32;
                }
            }
        }
        y
    }

    #[test]
    fn forward_matches_direct_convolution() {
        // Odd sizes, stride and padding on both axes, rectangular filter.
        type L = Conv2d<3, 7, 9, 4, 3, 2, 2, 3, 1, 2>;
        let n = 5;
        let x = random_vec(n * L::IN, 1);
        let p = random_vec(L::PARAMS, 2);
        let y = forward(&L { act: Act::Identity }, n, &x, &p).0;
        for s in 0..n {
            let want = reference::<3, 7, 9, 4, 3, 2, 2, 3, 1, 2>(&x[s * L::IN..(s + 1) * L::IN], &p);
            assert_close(&y[s * L::OUT..(s + 1) * L::OUT], &want, 1e-5, &format!("sample {s}"));
        }
    }

    #[test]
    fn relu_is_fused_into_the_output() {
        type L = Conv2d<2, 5, 5, 3, 3, 3, 1, 1, 1, 1>;
        let x = random_vec(L::IN, 3);
        let p = random_vec(L::PARAMS, 4);
        let lin = forward(&L { act: Act::Identity }, 1, &x, &p).0;
        let relu = forward(&L { act: Act::Relu }, 1, &x, &p).0;
        assert!(lin.iter().any(|&v| v < 0.0));
        let want: Vec<f32> = lin.iter().map(|v| v.max(0.0)).collect();
        assert_eq!(relu, want);
    }

    #[test]
    fn padding_wider_than_the_input() {
        // A 1x1 input padded by 3 under a 7x7 filter: every window but the middle one is padding.
        let x = [2.0];
        let mut cols = vec![f32::NAN; 49];
        im2col(&x, &mut cols, [1, 1, 1], [7, 7], [1, 1], [3, 3]);
        let want: Vec<f32> = (0..49).map(|i| if i == 24 { 2.0 } else { 0.0 }).collect();
        assert_eq!(cols, want);
    }

    #[test]
    fn im2row_is_im2col_transposed() {
        let (dims, f, st, pad) = ([3, 7, 6], [3, 2], [2, 1], [1, 1]);
        let (oh, ow) = ((7 + 2 - 3) / 2 + 1, (6 + 2 - 2) + 1);
        let (r, n) = (3 * 3 * 2, oh * ow);
        let x = random_vec(3 * 7 * 6, 9);
        let (mut cols, mut rows) = (vec![0.0; r * n], vec![f32::NAN; r * n]);
        im2col(&x, &mut cols, dims, f, st, pad);
        im2row(&x, &mut rows, dims, f, st, pad);
        for i in 0..r {
            for j in 0..n {
                assert_eq!(rows[j * r + i], cols[i * n + j], "tap {i}, position {j}");
            }
        }
    }

    #[test]
    fn row2im_adds_as_col2im_does() {
        // The same matrix, transposed, folds back to the same bits.
        let (dims, f, st, pad) = ([3, 6, 7], [3, 2], [2, 1], [1, 1]);
        let [oh, ow] = out_dims(dims, f, st, pad);
        let (r, n) = (3 * 3 * 2, oh * ow);
        let cols = random_vec(r * n, 11);
        let rows: Vec<f32> = (0..n * r).map(|i| cols[(i % r) * n + i / r]).collect();
        let (mut a, mut b) = (random_vec(3 * 6 * 7, 12), vec![0.0; 3 * 6 * 7]);
        b.copy_from_slice(&a);
        col2im(&cols, &mut a, dims, f, st, pad);
        row2im(&rows, &mut b, dims, f, st, pad);
        assert_eq!(a, b);
        // And im2col's rows taken a block at a time are its rows.
        let x = random_vec(3 * 6 * 7, 13);
        let mut all = vec![0.0; r * n];
        im2col(&x, &mut all, dims, f, st, pad);
        let mut some = vec![f32::NAN; 5 * n];
        im2col_rows(&x, &mut some, n, 7..12, dims, f, st, pad);
        assert_eq!(some, all[7 * n..12 * n]);
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // <im2col(x), c> == <x, col2im(c)> for any x, c.
        let (dims, f, s, pad) = ([2, 6, 5], [3, 2], [2, 1], [1, 0]);
        let (oh, ow) = ((6 + 2 - 3) / 2 + 1, (5 - 2) + 1);
        let x = random_vec(2 * 6 * 5, 5);
        let c = random_vec(2 * 3 * 2 * oh * ow, 6);
        let mut cols = vec![0.0; c.len()];
        im2col(&x, &mut cols, dims, f, s, pad);
        let mut back = vec![0.0; x.len()];
        col2im(&c, &mut back, dims, f, s, pad);
        let lhs: f64 = cols.iter().zip(&c).map(|(a, b)| (a * b) as f64).sum();
        let rhs: f64 = x.iter().zip(&back).map(|(a, b)| (a * b) as f64).sum();
        assert!((lhs - rhs).abs() < 1e-4, "{lhs} vs {rhs}");
    }

    /// The convolution `C` with shifted views or im2col, whichever `SHIFTED` says.
    struct Forced<C, const SHIFTED: bool>(core::marker::PhantomData<C>);

    impl<C: Dims, const SHIFTED: bool> Dims for Forced<C, SHIFTED> {
        const GEOMETRY: Geometry = Geometry { shifted: SHIFTED, ..C::GEOMETRY };
    }

    /// Output, weight gradient and input gradient of `S` on a batch of `n`.
    fn run<S: Dims>(n: usize, seed: u64) -> [Vec<f32>; 3] {
        let g = &S::GEOMETRY;
        let (inp, out) = (g.inputs(), g.outputs());
        let (x, p) = (random_vec(n * inp, seed), random_vec(g.params(), seed + 1));
        let mut scratch = vec![f32::NAN; chunk_count(n) * g.scratch()];
        let mut y = vec![f32::NAN; n * out];
        conv_forward::<S>(Act::Tanh, n, &x, &mut y, &p, &mut scratch);
        let mut dy = random_vec(n * out, seed + 2);
        let (mut dx, mut dp) = (vec![f32::NAN; n * inp], vec![f32::NAN; g.params()]);
        let mut partial = vec![f32::NAN; chunk_count(n) * g.params()];
        conv_backward::<S>(Act::Tanh, n, (&x, &y, &mut dy, Some(&mut dx)), (&p, &mut dp), &mut scratch, &mut partial);
        [y, dp, dx]
    }

    /// Both ways on the convolution `C`, compared.
    fn both_ways<C: Dims>(what: &str) {
        let n = 6;
        let (fast, slow) = (run::<Forced<C, true>>(n, 1), run::<Forced<C, false>>(n, 1));
        for (part, (a, b)) in ["output", "parameter gradient", "input gradient"].iter().zip(fast.iter().zip(&slow)) {
            assert_close(a, b, 1e-5, &format!("{what}: {part}"));
        }
    }

    #[test]
    fn shifted_views_give_the_im2col_results() {
        // Both weight-gradient forms, no padding, uneven padding, rectangular filters, 1x1,
        // one input channel, with and without bias; shifted views whether or not they would
        // be chosen for these sizes.
        both_ways::<Conv2d<3, 9, 8, 16, 3, 3, 1, 1, 1, 1>>("3x3, 16 filters");
        both_ways::<Conv2d<2, 7, 9, 5, 3, 2, 1, 1, 0, 1, false>>("3x2, pad 0/1");
        both_ways::<Conv2d<1, 12, 10, 17, 5, 3, 1, 1, 2, 0>>("5x3, pad 2/0, 17 filters");
        both_ways::<Conv2d<4, 5, 6, 20, 1, 1, 1, 1, 0, 0, false>>("1x1");
        both_ways::<Conv2d<2, 6, 14, 3, 2, 3, 1, 1, 1, 2>>("2x3, pad 1/2");
    }

    /// `C` on a batch of `n` samples, whose chunks put several samples side by side in each
    /// product, against `C` on one sample at a time: the same outputs and input gradients (each
    /// value summed in the same order), and the weight gradient within rounding of the sum of
    /// the samples' ones.
    fn batched_as_one_by_one<C: Dims>(what: &str, n: usize) {
        let g = &C::GEOMETRY;
        let (inp, out) = (g.inputs(), g.outputs());
        let [y, dp, dx] = run::<C>(n, 3);
        let x = random_vec(n * inp, 3);
        let p = random_vec(g.params(), 4);
        let dy = random_vec(n * out, 5);
        let mut sum = vec![0.0f64; g.params()];
        for s in 0..n {
            let mut scratch = vec![f32::NAN; g.scratch()];
            let mut y1 = vec![f32::NAN; out];
            conv_forward::<C>(Act::Tanh, 1, &x[s * inp..(s + 1) * inp], &mut y1, &p, &mut scratch);
            assert_eq!(y1, y[s * out..(s + 1) * out], "{what}: output of sample {s}");
            let mut dy1 = dy[s * out..(s + 1) * out].to_vec();
            let (mut dx1, mut dp1, mut partial) =
                (vec![f32::NAN; inp], vec![f32::NAN; g.params()], vec![f32::NAN; g.params()]);
            let acts = (&x[s * inp..(s + 1) * inp], &y1[..], &mut dy1[..], Some(&mut dx1[..]));
            conv_backward::<C>(Act::Tanh, 1, acts, (&p, &mut dp1), &mut scratch, &mut partial);
            assert_eq!(dx1, dx[s * inp..(s + 1) * inp], "{what}: input gradient of sample {s}");
            sum.iter_mut().zip(&dp1).for_each(|(t, v)| *t += f64::from(*v));
        }
        let sum: Vec<f32> = sum.iter().map(|&v| v as f32).collect();
        assert_close(&dp, &sum, 1e-5, &format!("{what}: weight gradient"));
    }

    #[test]
    fn batches_of_samples_give_the_per_sample_results() {
        // Batches of 37 and 64: chunks of 3 and 4 samples, the last chunk of 37 holding one.
        // Small outputs (several samples per product), both weight-gradient forms, groups,
        // strides, padding and rectangular filters.
        for n in [37, 64] {
            batched_as_one_by_one::<Conv2d<6, 3, 3, 16, 3, 3, 1, 1, 1, 1>>("3x3 map, 16 filters", n);
            batched_as_one_by_one::<Conv2d<4, 5, 7, 5, 3, 2, 2, 1, 1, 0, false>>("strided, 5 filters", n);
            batched_as_one_by_one::<Conv2d<6, 4, 4, 18, 3, 3, 1, 1, 1, 1, true, 3>>("3 groups", n);
            batched_as_one_by_one::<Conv2d<3, 9, 9, 20, 5, 5, 2, 2, 1, 1>>("5x5 stride 2", n);
            batched_as_one_by_one::<Conv2d<8, 2, 2, 4, 1, 1, 1, 1, 0, 0>>("1x1 on 2x2", n);
        }
        assert!(Conv2d::<6, 3, 3, 16, 3, 3, 1, 1, 1, 1>::GEOMETRY.batch() > 1, "the first case batches");
        // Summed over the whole batch: AlexNet-like (3x3 maps, 256 filters), and over 64 blocks
        // of dWᵀ's rows at 64 rows each (larger blocks).
        type Alex = Conv2d<48, 3, 3, 256, 3, 3, 1, 1, 1, 1>;
        type Wide = Conv2d<520, 2, 2, 16, 3, 3, 1, 1, 1, 1>;
        assert!(Alex::GEOMETRY.whole_batch_dw() && Wide::GEOMETRY.whole_batch_dw());
        assert!(Alex::GEOMETRY.dw_rows() == 64 && Wide::GEOMETRY.dw_rows() > 64);
        assert!(!Conv2d::<6, 3, 3, 16, 3, 3, 1, 1, 1, 1>::GEOMETRY.whole_batch_dw());
        batched_as_one_by_one::<Alex>("3x3 map, 256 filters", 37);
        batched_as_one_by_one::<Wide>("4,680 taps", 37);
    }

    #[test]
    fn shifted_views_match_direct_convolution() {
        type L = Conv2d<3, 8, 9, 16, 3, 2, 1, 1, 1, 1>;
        assert!(L::GEOMETRY.shifted && L::GEOMETRY.transposed_dw());
        let n = 3;
        let x = random_vec(n * L::IN, 5);
        let p = random_vec(L::PARAMS, 6);
        let y = forward(&L { act: Act::Identity }, n, &x, &p).0;
        for s in 0..n {
            let want = reference::<3, 8, 9, 16, 3, 2, 1, 1, 1, 1>(&x[s * L::IN..(s + 1) * L::IN], &p);
            assert_close(&y[s * L::OUT..(s + 1) * L::OUT], &want, 1e-5, &format!("sample {s}"));
        }
    }

    fn check_gradients<L: Layer>(layer: L, n: usize, seed: u64) {
        let (ex, ep) = layer_gradient_errors(&layer, n, seed);
        println!("conv: max relative error dx {ex:e}, dparams {ep:e}");
        assert!(ex < 1e-2 && ep < 1e-2, "dx {ex}, dparams {ep}");
    }

    #[test]
    fn gradients_match_finite_differences() {
        check_gradients(Conv2d::<2, 6, 6, 3, 3, 3, 1, 1, 0, 0> { act: Act::Identity }, 2, 10);
        check_gradients(Conv2d::<2, 7, 8, 3, 3, 2, 2, 3, 1, 2> { act: Act::Identity }, 3, 20);
        check_gradients(Conv2d::<1, 8, 8, 2, 5, 5, 1, 1, 2, 2> { act: Act::Relu }, 2, 30);
        // More samples than chunks, so several samples share a chunk.
        check_gradients(Conv2d::<1, 5, 5, 2, 3, 3, 2, 2, 1, 1> { act: Act::Relu }, 37, 40);
        check_gradients(Conv2d::<2, 6, 5, 3, 3, 3, 2, 1, 1, 1, false> { act: Act::Tanh }, 3, 50);
        // im2col with the weight gradient as dWᵀ (16 filters), stride 2 and 3.
        check_gradients(Conv2d::<2, 7, 8, 16, 3, 2, 2, 3, 1, 2> { act: Act::Identity }, 5, 55);
        // Shifted views, with the weight gradient from shifted views (16 filters) and not.
        check_gradients(Conv2d::<2, 5, 8, 16, 3, 2, 1, 1, 1, 1> { act: Act::Tanh }, 5, 60);
        check_gradients(Conv2d::<3, 6, 9, 4, 2, 2, 1, 1, 0, 1> { act: Act::Relu }, 3, 70);
    }

    #[test]
    fn without_bias_is_with_a_zero_bias() {
        type Biased = Conv2d<2, 5, 6, 3, 3, 2, 1, 2, 1, 0>;
        type Unbiased = Conv2d<2, 5, 6, 3, 3, 2, 1, 2, 1, 0, false>;
        assert_eq!(Unbiased::PARAMS + 3, Biased::PARAMS);
        let (x, mut p) = (random_vec(2 * Biased::IN, 8), random_vec(Biased::PARAMS, 9));
        p[Unbiased::PARAMS..].fill(0.0);
        let act = Act::Sigmoid;
        let want = forward(&Biased { act }, 2, &x, &p).0;
        assert_eq!(forward(&Unbiased { act }, 2, &x, &p[..Unbiased::PARAMS]).0, want);
    }

    /// Grouped convolution straight from the definition, in f64, on one sample: filter `k`
    /// of group `k / (k_all / groups)` reads that group's input channels.
    #[allow(clippy::too_many_arguments)]
    fn grouped_reference(
        x: &[f32],
        p: &[f32],
        [d, h, w]: [usize; 3],
        k_all: usize,
        [fh, fw]: [usize; 2],
        [sh, sw]: [usize; 2],
        [ph, pw]: [usize; 2],
        groups: usize,
        bias: bool,
    ) -> Vec<f32> {
        let (oh, ow) = ((h + 2 * ph - fh) / sh + 1, (w + 2 * pw - fw) / sw + 1);
        let (dg, kg) = (d / groups, k_all / groups);
        let mut y = vec![0.0; k_all * oh * ow];
        for k in 0..k_all {
            let first = k / kg * dg;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = if bias { p[k_all * dg * fh * fw + k] as f64 } else { 0.0 };
                    for c in 0..dg {
                        for i in 0..fh {
                            for j in 0..fw {
                                let (iy, ix) =
                                    ((oy * sh + i) as isize - ph as isize, (ox * sw + j) as isize - pw as isize);
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    s += x[((first + c) * h + iy as usize) * w + ix as usize] as f64
                                        * p[((k * dg + c) * fh + i) * fw + j] as f64;
                                }
                            }
                        }
                    }
                    y[(k * oh + oy) * ow + ox] = s as f32;
                }
            }
        }
        y
    }

    /// Checks the grouped convolution `layer` against [`grouped_reference`] on `n` samples.
    fn check_grouped<L: Layer + Dims>(layer: L, n: usize, seed: u64) {
        let g = L::GEOMETRY;
        let (x, p) = (random_vec(n * L::IN, seed), random_vec(L::PARAMS, seed + 1));
        let y = forward(&layer, n, &x, &p).0;
        for s in 0..n {
            let (dims, k) = ([g.d * g.groups, g.h, g.w], g.k * g.groups);
            let x = &x[s * L::IN..(s + 1) * L::IN];
            let want = grouped_reference(x, &p, dims, k, g.f, g.stride, g.pad, g.groups, g.bias);
            let what = format!("{} groups, {dims:?} into {k}, sample {s}", g.groups);
            assert_close(&y[s * L::OUT..(s + 1) * L::OUT], &want, 1e-5, &what);
        }
    }

    #[test]
    fn grouped_forward_matches_direct_convolution() {
        // Two groups, by im2col (stride 2, rectangular padding) and by shifted views.
        check_grouped(Conv2d::<4, 6, 7, 6, 3, 3, 2, 1, 1, 0, true, 2> { act: Act::Identity }, 3, 1);
        check_grouped(Conv2d::<4, 5, 16, 6, 3, 3, 1, 1, 1, 1, true, 2> { act: Act::Identity }, 3, 2);
        // Depthwise, both ways; one input channel into two filters per group; 1x1 groups.
        check_grouped(Conv2d::<3, 7, 8, 3, 3, 3, 2, 2, 1, 1, true, 3> { act: Act::Identity }, 2, 3);
        check_grouped(Conv2d::<3, 6, 16, 3, 3, 3, 1, 1, 1, 1, false, 3> { act: Act::Identity }, 2, 4);
        check_grouped(Conv2d::<3, 5, 6, 6, 3, 2, 2, 1, 1, 0, true, 3> { act: Act::Identity }, 2, 5);
        check_grouped(Conv2d::<6, 5, 5, 4, 1, 1, 1, 1, 0, 0, false, 2> { act: Act::Identity }, 2, 6);
        // 32 filters in 2 groups of 16: the weight gradient as dWᵀ.
        check_grouped(Conv2d::<4, 5, 6, 32, 3, 3, 2, 2, 1, 1, true, 2> { act: Act::Identity }, 2, 7);
    }

    /// Output, parameter gradient and input gradient of `layer` on `n` samples `x` with
    /// parameters `p` and output gradient `dy`.
    fn pass<L: Layer>(layer: &L, n: usize, x: &[f32], p: &[f32], dy: &[f32]) -> [Vec<f32>; 3] {
        let (y, state) = forward(layer, n, x, p);
        let count = chunk_count(n);
        let (mut dx, mut dp) = (vec![f32::NAN; n * L::IN], vec![f32::NAN; L::PARAMS]);
        let (mut scratch, mut partial) = (vec![f32::NAN; count * L::SCRATCH], vec![f32::NAN; count * L::PARTIAL]);
        let mut dy = dy.to_vec();
        layer.backward(n, x, &y, &mut dy, Some(&mut dx), p, &mut dp, &mut scratch, &mut partial, &state);
        [y, dp, dx]
    }

    /// `v`'s samples of `len` values cut in two halves, each returned whole.
    fn halves(v: &[f32], len: usize) -> [Vec<f32>; 2] {
        let half = |i: usize| v.chunks_exact(len).flat_map(|s| &s[i * len / 2..(i + 1) * len / 2]).copied().collect();
        [half(0), half(1)]
    }

    /// The 2-group convolution `grouped` against `half`, the convolution of one group, run on
    /// each half of the channels: outputs and gradients with the same bits.
    /// `ways` says whether they take shifted views and compute `dWᵀ`.
    fn two_groups_are_two_convolutions<L: Layer + Dims, M: Layer + Dims>(
        grouped: L,
        half: M,
        ways: [bool; 2],
        what: &str,
    ) {
        let n = 5;
        assert_eq!([L::GEOMETRY.shifted, L::GEOMETRY.transposed_dw()], ways, "{what}");
        assert_eq!((L::GEOMETRY.groups, L::IN, L::OUT), (2, 2 * M::IN, 2 * M::OUT), "{what}");
        assert_eq!((L::PARAMS, L::SCRATCH, L::FLOPS), (2 * M::PARAMS, M::SCRATCH, 2 * M::FLOPS), "{what}");
        let (x, p, dy) = (random_vec(n * L::IN, 1), random_vec(L::PARAMS, 2), random_vec(n * L::OUT, 3));
        // Group i: weights [i·Wh, (i+1)·Wh), biases [2·Wh + i·Kh, 2·Wh + (i+1)·Kh).
        let (wh, kh) = (M::GEOMETRY.weights(), M::PARAMS - M::GEOMETRY.weights());
        let params = |i: usize| [&p[i * wh..(i + 1) * wh], &p[2 * wh + i * kh..2 * wh + (i + 1) * kh]].concat();
        let [xa, xb] = halves(&x, L::IN);
        let [dya, dyb] = halves(&dy, L::OUT);
        let [ya, dpa, dxa] = pass(&half, n, &xa, &params(0), &dya);
        let [yb, dpb, dxb] = pass(&half, n, &xb, &params(1), &dyb);
        let [y, dp, dx] = pass(&grouped, n, &x, &p, &dy);
        let join = |a: &[f32], b: &[f32], len: usize| -> Vec<u32> {
            a.chunks_exact(len)
                .zip(b.chunks_exact(len))
                .flat_map(|(a, b)| a.iter().chain(b))
                .map(|v| v.to_bits())
                .collect()
        };
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&y), join(&ya, &yb, M::OUT), "{what}: output");
        assert_eq!(bits(&dx), join(&dxa, &dxb, M::IN), "{what}: input gradient");
        let dp_want = [&dpa[..wh], &dpb[..wh], &dpa[wh..], &dpb[wh..]].concat();
        if M::GEOMETRY.whole_batch_dw() {
            // The ungrouped half sums its weight gradient over the whole batch at once, the
            // grouped convolution chunk by chunk: the same values, rounded in another order.
            assert_close(&dp, &dp_want, 1e-5, &format!("{what}: parameter gradient"));
        } else {
            assert_eq!(bits(&dp), bits(&dp_want), "{what}: parameter gradient");
        }
    }

    #[test]
    fn two_groups_are_two_convolutions_on_the_channel_halves() {
        let act = Act::Tanh;
        two_groups_are_two_convolutions(
            Conv2d::<4, 7, 8, 6, 3, 3, 2, 2, 1, 1, true, 2> { act },
            Conv2d::<2, 7, 8, 3, 3, 3, 2, 2, 1, 1> { act },
            [false, false],
            "im2col, stride 2",
        );
        two_groups_are_two_convolutions(
            Conv2d::<6, 5, 16, 4, 3, 3, 1, 1, 1, 1, false, 2> { act },
            Conv2d::<3, 5, 16, 2, 3, 3, 1, 1, 1, 1, false> { act },
            [true, false],
            "shifted views, no bias",
        );
        two_groups_are_two_convolutions(
            Conv2d::<4, 6, 9, 32, 3, 2, 1, 2, 1, 1, true, 2> { act },
            Conv2d::<2, 6, 9, 16, 3, 2, 1, 2, 1, 1> { act },
            [false, true],
            "im2col, dWᵀ",
        );
        two_groups_are_two_convolutions(
            Conv2d::<2, 5, 16, 32, 3, 3, 1, 1, 1, 1, true, 2> { act },
            Conv2d::<1, 5, 16, 16, 3, 3, 1, 1, 1, 1> { act },
            [true, true],
            "shifted views, dWᵀ",
        );
    }

    #[test]
    fn one_group_is_the_ungrouped_convolution() {
        // The same type, hence the same code.
        let conv: Conv2d<3, 6, 6, 4, 3, 3, 1, 1, 1, 1> =
            Conv2d::<3, 6, 6, 4, 3, 3, 1, 1, 1, 1, true, 1> { act: Act::Relu };
        assert_eq!(sizes_of(&conv).params, 4 * 3 * 9 + 4);
    }

    #[test]
    fn grouped_sizes() {
        // Depthwise 3x3 over 8 channels, stride 2, padding 1: 8 filters of one channel each.
        type L = Conv2d<8, 9, 9, 8, 3, 3, 2, 2, 1, 1, true, 8>;
        assert_eq!((L::IN, L::OUT, L::PARAMS, L::STATE, L::BUFFERS), (8 * 81, 8 * 25, 8 * 9 + 8, 0, 0));
        assert_eq!((L::PARTIAL, L::FLOPS), (L::PARAMS, 2 * 8 * 9 * 25));
        // The scratch is one group's: each group reuses it.
        assert_eq!(L::SCRATCH, Conv2d::<1, 9, 9, 1, 3, 3, 2, 2, 1, 1>::SCRATCH);
        // PyTorch's initialisation bound follows the fan-in of one group, 1/sqrt(9).
        let mut p = vec![0.0; L::PARAMS];
        L { act: Act::Identity }.init(&mut p, &mut [], &mut crate::init::rng(3));
        let largest = p.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(largest < 1.0 / 3.0 && largest > 1.0 / (8.0 * 9.0f32).sqrt(), "largest {largest}");
    }

    #[test]
    fn grouped_shifted_views_give_the_im2col_results() {
        both_ways::<Conv2d<4, 6, 9, 32, 3, 3, 1, 1, 1, 1, true, 2>>("3x3, 2 groups of 16 filters");
        both_ways::<Conv2d<6, 7, 8, 4, 3, 2, 1, 1, 1, 0, false, 2>>("3x2, 2 groups of 2 filters");
        both_ways::<Conv2d<5, 6, 7, 5, 3, 3, 1, 1, 1, 1, true, 5>>("depthwise 3x3");
    }

    #[test]
    fn grouped_gradients_match_finite_differences() {
        // Two groups: im2col with stride and padding, shifted views, dWᵀ, no bias.
        check_gradients(Conv2d::<4, 7, 6, 6, 3, 3, 2, 2, 1, 1, true, 2> { act: Act::Identity }, 3, 80);
        check_gradients(Conv2d::<4, 5, 16, 4, 3, 3, 1, 1, 1, 1, true, 2> { act: Act::Tanh }, 2, 81);
        check_gradients(Conv2d::<4, 6, 5, 32, 3, 2, 2, 1, 1, 1, true, 2> { act: Act::Identity }, 2, 82);
        check_gradients(Conv2d::<6, 5, 6, 3, 3, 3, 1, 2, 0, 1, false, 3> { act: Act::Relu }, 3, 83);
        // Depthwise: stride 2 and padding 1 by im2col, stride 1 by shifted views, and with
        // more samples than chunks.
        check_gradients(Conv2d::<3, 7, 8, 3, 3, 3, 2, 2, 1, 1, true, 3> { act: Act::Identity }, 3, 84);
        check_gradients(Conv2d::<3, 5, 16, 3, 3, 3, 1, 1, 1, 1, true, 3> { act: Act::Tanh }, 2, 85);
        check_gradients(Conv2d::<2, 5, 5, 2, 3, 3, 2, 2, 1, 1, true, 2> { act: Act::Identity }, 37, 86);
    }
}
