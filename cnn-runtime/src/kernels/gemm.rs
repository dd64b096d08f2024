//! Matrix product on strided row-major views, without allocation per call.
//!
//! Neither nalgebra's `gemm` nor `matrixmultiply::sgemm` (the engine behind it) fits here:
//! nalgebra's path for small matrices (any side of 5 or less) indexes out of bounds on views
//! whose rows are not contiguous, and `matrixmultiply` allocates its packing buffer on every
//! call, hundreds of times per training step. This GEMM picks one of two loop orders by the
//! operands' layout, so that the innermost loop always runs over contiguous memory and
//! vectorises, and it is compiled three times: for AVX-512 (12x32 register tiles), for AVX2 with
//! FMA (6x16), chosen at run time by what the processor has ([`isa`]), and for the baseline
//! instruction set. Large products (see [`packs`]) copy panels of both operands into a buffer
//! that each thread is given once ([`reserve_buffers`]).
//!
//! Every output element is summed in an order fixed by the shapes alone, so results do not
//! depend on threads or on how a batch is split.

use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

#[cfg(not(feature = "std"))]
use crate::math::Float;
use crate::prelude::*;

/// A read-only matrix over a slice: element `(i, j)` is `data[start(i) + j * cs]`, where row
/// `i` starts at `i * rs` for an ordinary matrix and at the offset of filter tap `i` for the
/// shifted views of [`Mat::taps`] (and the columns likewise for their transpose).
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
    layout: Layout,
}

/// Where a [`Mat`]'s rows and columns start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// Row `i` at `i * rs`, column `j` at `j * cs`.
    Strided,
    /// The rows are filter taps ([`Mat::taps`]), `rs` apart per channel.
    TapRows(Taps),
    /// The transpose of that: the columns are the taps, `cs` apart per channel.
    TapCols(Taps),
}

/// How [`Mat::taps`] places its taps: tap `i = (c * fh + y) * fw + x` starts at
/// `c * stride + y * line + x`, with `group = fh * fw` taps per channel and `fw` per filter line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Taps {
    group: usize,
    fw: usize,
    line: usize,
}

impl Taps {
    /// Where tap `i` starts, the channels `stride` apart.
    #[inline(always)]
    fn start(self, stride: usize, i: usize) -> usize {
        (i / self.group) * stride + (i % self.group / self.fw) * self.line + i % self.fw
    }
}

impl<'a> Mat<'a> {
    /// A `rows x cols` row-major matrix over the first `rows * cols` values of `data`.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert!(data.len() >= rows * cols, "matrix {rows}x{cols} over {} values", data.len());
        Mat { data: &data[..rows * cols], rows, cols, rs: cols, cs: 1, layout: Layout::Strided }
    }

    /// The im2col matrix of a convolution with stride 1, as shifted views of a padded volume
    /// `data` (`[d, h, w]`, each plane `h * w`) instead of a copy: row `(c * fh + y) * fw + x`
    /// (one filter tap) is the `cols` values from `data[c * h * w + y * w + x]` on. Column
    /// `oy * w + ox` is then output position `(oy, ox)` of a `w`-wide row, whose last `fw - 1`
    /// columns straddle two image rows and are to be ignored.
    ///
    /// # Panics
    /// When the last row runs past `data`.
    pub fn taps(data: &'a [f32], [d, h, w]: [usize; 3], [fh, fw]: [usize; 2], cols: usize) -> Self {
        let rows = d * fh * fw;
        let taps = Taps { group: fh * fw, fw, line: w };
        let m = Mat { data, rows, cols, rs: h * w, cs: 1, layout: Layout::TapRows(taps) };
        let end = if rows == 0 { 0 } else { m.start(rows - 1) + cols };
        assert!(end <= data.len(), "{rows} taps of {cols} values over {} values", data.len());
        m
    }

    /// Where row `i` starts in `data`.
    #[inline(always)]
    fn start(&self, i: usize) -> usize {
        match self.layout {
            Layout::TapRows(taps) => taps.start(self.rs, i),
            _ => i * self.rs,
        }
    }

    /// Where column `j` starts in `data`.
    #[inline(always)]
    fn col_start(&self, j: usize) -> usize {
        match self.layout {
            Layout::TapCols(taps) => taps.start(self.cs, j),
            _ => j * self.cs,
        }
    }

    /// The transpose, as a view of the same data. A [`Mat::taps`] view's transpose cannot be
    /// the left-hand side of a product.
    pub fn t(self) -> Self {
        let layout = match self.layout {
            Layout::Strided => Layout::Strided,
            Layout::TapRows(taps) => Layout::TapCols(taps),
            Layout::TapCols(taps) => Layout::TapRows(taps),
        };
        Mat { rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs, layout, ..self }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The rows `range` of an ordinary matrix (or transposed view), as a view of the same data.
    ///
    /// # Panics
    /// When `range` runs past the last row, or for the shifted views of [`Mat::taps`].
    pub fn rows_in(self, range: core::ops::Range<usize>) -> Self {
        assert!(
            self.layout == Layout::Strided && range.start <= range.end && range.end <= self.rows,
            "rows {range:?} of {}",
            self.rows
        );
        let data = if range.is_empty() { &self.data[..0] } else { &self.data[range.start * self.rs..] };
        Mat { data, rows: range.len(), ..self }
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// A mutable row-major matrix over a slice.
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
}

impl<'a> MatMut<'a> {
    /// A `rows x cols` row-major matrix over the first `rows * cols` values of `data`.
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        assert!(data.len() >= rows * cols, "matrix {rows}x{cols} over {} values", data.len());
        MatMut { data: &mut data[..rows * cols], rows, cols }
    }
}

/// `c = alpha * a * b + beta * c`. With `beta == 0` the old contents of `c` are not read.
///
/// # Panics
/// When the shapes do not fit; kernels call it with shapes fixed at compile time.
pub fn gemm(alpha: f32, a: Mat<'_>, b: Mat<'_>, beta: f32, c: MatMut<'_>) {
    assert_eq!(a.cols, b.rows, "gemm: inner dimensions differ");
    assert_eq!((a.rows, b.cols), (c.rows, c.cols), "gemm: output shape differs");
    #[cfg(target_arch = "x86_64")]
    {
        match isa() {
            Isa::Avx512 => {
                // SAFETY: the processor supports the features the function is compiled for.
                unsafe { gemm_avx512(alpha, a, b, beta, c) };
                return;
            }
            Isa::Avx2 => {
                // SAFETY: as above.
                unsafe { gemm_avx2_fma(alpha, a, b, beta, c) };
                return;
            }
            Isa::Portable => {}
        }
    }
    gemm_impl::<false, 4, 16>(alpha, a, b, beta, c);
}

/// The instruction sets the GEMM is compiled for, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512 (F and VL) with FMA: 12x32 register tiles.
    Avx512,
    /// AVX2 with FMA: 6x16 register tiles.
    Avx2,
    /// Whatever the target has without run-time detection.
    Portable,
}

/// The instruction set [`gemm`] uses: the best this processor has, unless the environment
/// variable `CNN_GEMM` (`avx2` or `portable`) or [`force_isa`] asks for a lower one. Every path
/// sums each output element in the same order, so AVX2 and AVX-512 give the same bits.
#[inline]
pub fn isa() -> Isa {
    match CHOSEN.load(Ordering::Relaxed) {
        1 => Isa::Avx512,
        2 => Isa::Avx2,
        3 => Isa::Portable,
        _ => choose(),
    }
}

/// The first call of [`isa`]: detects the processor and reads `CNN_GEMM`.
#[cold]
fn choose() -> Isa {
    let best = detect();
    #[cfg(feature = "std")]
    let wanted = match std::env::var("CNN_GEMM").as_deref() {
        Ok("portable") => Isa::Portable,
        Ok("avx2") if best == Isa::Avx512 => Isa::Avx2,
        _ => best,
    };
    #[cfg(not(feature = "std"))]
    let wanted = best;
    store(wanted);
    wanted
}

/// Makes [`gemm`] use `isa` from now on, or the best available when `isa` is not; returns the
/// one in use. For benchmarks that compare instruction sets side by side.
pub fn force_isa(isa: Isa) -> Isa {
    let best = detect();
    let chosen = match (isa, best) {
        (Isa::Portable, _) => Isa::Portable,
        (Isa::Avx2, Isa::Avx512 | Isa::Avx2) => Isa::Avx2,
        (Isa::Avx512, Isa::Avx512) => Isa::Avx512,
        _ => best,
    };
    store(chosen);
    chosen
}

static CHOSEN: AtomicU8 = AtomicU8::new(0);

fn store(isa: Isa) {
    let code = match isa {
        Isa::Avx512 => 1,
        Isa::Avx2 => 2,
        Isa::Portable => 3,
    };
    CHOSEN.store(code, Ordering::Relaxed);
}

#[cfg(all(target_arch = "x86_64", feature = "std"))]
fn detect() -> Isa {
    let fma = std::arch::is_x86_feature_detected!("fma");
    if fma && std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vl") {
        return Isa::Avx512;
    }
    if fma && std::arch::is_x86_feature_detected!("avx2") {
        return Isa::Avx2;
    }
    Isa::Portable
}

/// Without `std`, which detects them: the processor's features as `cpufeatures` reads them
/// (the same instructions, `cpuid` and `xgetbv`, that `std` uses).
#[cfg(all(target_arch = "x86_64", not(feature = "std")))]
fn detect() -> Isa {
    cpufeatures::new!(avx512, "avx512f", "avx512vl", "fma");
    cpufeatures::new!(avx2, "avx2", "fma");
    if avx512::get() {
        Isa::Avx512
    } else if avx2::get() {
        Isa::Avx2
    } else {
        Isa::Portable
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Isa {
    Isa::Portable
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn gemm_avx512(alpha: f32, a: Mat<'_>, b: Mat<'_>, beta: f32, c: MatMut<'_>) {
    if b.cs != 1 && a.cs == 1 && b.rs == 1 {
        // Dot products run twice as fast compiled for AVX2 (measured at LeNet's shapes).
        // SAFETY: AVX-512 processors have AVX2 and FMA.
        unsafe { gemm_avx2_fma(alpha, a, b, beta, c) };
        return;
    }
    gemm_impl::<true, 12, 32>(alpha, a, b, beta, c);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gemm_avx2_fma(alpha: f32, a: Mat<'_>, b: Mat<'_>, beta: f32, c: MatMut<'_>) {
    gemm_impl::<true, 6, 16>(alpha, a, b, beta, c);
}

/// `a * b + c`, fused when the caller was compiled with FMA.
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

#[inline(always)]
fn gemm_impl<const FMA: bool, const MR: usize, const NR: usize>(
    alpha: f32,
    a: Mat<'_>,
    b: Mat<'_>,
    beta: f32,
    c: MatMut<'_>,
) {
    let (m, n, k) = (c.rows, c.cols, a.cols);
    if m == 0 || n == 0 {
        return;
    }
    assert!(!matches!(a.layout, Layout::TapCols(_)), "gemm: a transposed shifted view on the left");
    if beta != 0.0 && beta != 1.0 {
        c.data.iter_mut().for_each(|v| *v *= beta);
    }
    if b.cs == 1 && k > 0 && !matches!(b.layout, Layout::TapCols(_)) {
        // With `beta` 0 the first block over the inner dimension writes `C` rather than adds.
        if a.layout == Layout::Strided && b.layout == Layout::Strided {
            rows_of_b::<FMA, MR, NR, false>(alpha, a, b, c.data, n, beta == 0.0);
        } else {
            rows_of_b::<FMA, MR, NR, true>(alpha, a, b, c.data, n, beta == 0.0);
        }
        return;
    }
    if beta == 0.0 {
        c.data.fill(0.0);
    }
    if k == 0 {
        return;
    }
    if a.cs == 1 && b.rs == 1 {
        dots::<FMA>(alpha, a, b, c.data, n);
    } else {
        for i in 0..m {
            for p in 0..k {
                let s = alpha * a.data[a.start(i) + p * a.cs];
                for (j, out) in c.data[i * n..(i + 1) * n].iter_mut().enumerate() {
                    *out = madd::<FMA>(s, b.data[p * b.rs + b.col_start(j)], *out);
                }
            }
        }
    }
}

/// `B` has contiguous rows: `C` is computed in register tiles of up to `MR x NR`, each kept in
/// registers while `p` runs over the inner dimension, each step broadcasting values of `A`
/// against one row segment of `B`. Rows left over take smaller tiles (8 and 6 with AVX-512,
/// then 4, 2, 1 rows), columns left over a masked tile (AVX-512) or narrower ones (16, 8, 4,
/// 1); every element is summed over `p` in order.
#[inline(always)]
fn rows_of_b<const FMA: bool, const MR: usize, const NR: usize, const GATHER: bool>(
    alpha: f32,
    a: Mat<'_>,
    b: Mat<'_>,
    c: &mut [f32],
    n: usize,
    overwrite: bool,
) {
    let (m, k) = (a.rows, a.cols);
    let mut p0 = 0;
    while p0 < k {
        if overwrite && p0 == 0 {
            rows_block::<FMA, MR, NR, true, GATHER>(alpha, a, b, c, (m, n), (0, KC.min(k)));
        } else {
            rows_block::<FMA, MR, NR, false, GATHER>(alpha, a, b, c, (m, n), (p0, (p0 + KC).min(k)));
        }
        p0 = (p0 + KC).min(k);
    }
}

/// One block `ps` of the inner dimension for every row of `C`, written (`STORE`) or added.
#[inline(always)]
fn rows_block<const FMA: bool, const MR: usize, const NR: usize, const STORE: bool, const GATHER: bool>(
    alpha: f32,
    a: Mat<'_>,
    b: Mat<'_>,
    c: &mut [f32],
    (m, n): (usize, usize),
    ps: (usize, usize),
) {
    // Blocks of the inner dimension keep a tile's panel of `B` in the first-level cache.
    // Where each row of `B` in the block starts, and the last of them.
    let mut starts = [0usize; KC];
    let starts = &mut starts[..ps.1 - ps.0];
    let last = if GATHER {
        for (q, s) in starts.iter_mut().enumerate() {
            *s = b.start(ps.0 + q);
        }
        starts.iter().copied().max().unwrap_or(0)
    } else {
        b.start(ps.1 - 1)
    };
    let b_rows = Rows { starts, last, first: ps.0 };
    let mut j = 0;
    if packs::<GATHER>(m, n, b.rs) {
        j = packed_columns::<FMA, MR, NR, STORE>(alpha, a, b, c, (m, n), ps);
    }
    // Blocks of columns keep the block's panel of `B` in the second-level cache while every
    // row of `C` passes over it. They change which tiles compute an element, never the order
    // of its sum, so their width may follow the machine.
    let width = panel_width(ps.1 - ps.0);
    while j < n {
        let cols = (j, (j + width).min(n));
        row_blocks::<FMA, MR, NR, STORE, GATHER>(alpha, a, b, &b_rows, c, n, m, cols);
        j = cols.1;
    }
}

/// Whether [`rows_block`] copies panels of `B` into a contiguous buffer ([`packed_columns`]).
/// Rows of an ordinary `B` a page or more apart put a tile's column of `B` on the same few sets
/// of the first-level cache; the copy pays where 32 rows of `C` or more reuse it. Measured on
/// the 2048³ product it raises the rate by a third; on 256³, where `B`'s rows are 1 KiB apart,
/// it lowers it by a tenth. The taps of a convolution ([`Mat::taps`]) are copied when they are
/// 1024 columns wide or more and 64 filters or more read them: ResNet-18's training step at
/// 224x224 takes a tenth less time, and a CIFAR-sized net's 32 filters would lose a tenth.
fn packs<const GATHER: bool>(m: usize, n: usize, b_row_stride: usize) -> bool {
    if GATHER {
        m >= 64 && n >= 1024
    } else {
        m >= 32 && b_row_stride >= 1024
    }
}

/// The whole `NR`-wide tile columns of one inner block `ps`, a panel of them at a time (as
/// wide as [`panel_width`] allows) copied into a contiguous buffer, and each block of rows of
/// `A` likewise, so that a register tile with no address arithmetic but two pointers runs over
/// them; returns the first column left (0 on the portable and generic paths, which do not
/// copy). Each element is summed over the block in order, as by [`tile`]: the same bits.
#[inline(always)]
fn packed_columns<const FMA: bool, const MR: usize, const NR: usize, const STORE: bool>(
    alpha: f32,
    a: Mat<'_>,
    b: Mat<'_>,
    c: &mut [f32],
    (m, n): (usize, usize),
    ps: (usize, usize),
) -> usize {
    #[cfg(target_arch = "x86_64")]
    if FMA && MR == 12 && NR == 32 {
        // SAFETY: only the AVX-512 GEMM has 12x32 tiles.
        return packed_panels::<12, 32>(alpha, a, b, c, (m, n), ps, |kc, a, b, c, n, rows| unsafe {
            avx512::packed_12x32::<STORE>(kc, a, b, c, n, rows)
        });
    }
    #[cfg(target_arch = "x86_64")]
    if FMA && MR == 6 && NR == 16 {
        // SAFETY: only the AVX2 GEMM (with FMA) has 6x16 tiles.
        return packed_panels::<6, 16>(alpha, a, b, c, (m, n), ps, |kc, a, b, c, n, rows| unsafe {
            avx2::packed_6x16::<STORE>(kc, a, b, c, n, rows)
        });
    }
    let _ = (alpha, a, b, c, m, n, ps);
    0
}

/// [`packed_columns`] with `R x W` tiles.
#[inline(always)]
fn packed_panels<const R: usize, const W: usize>(
    alpha: f32,
    a: Mat<'_>,
    b: Mat<'_>,
    c: &mut [f32],
    (m, n): (usize, usize),
    ps: (usize, usize),
    tile: impl Fn(usize, &[f32], &[f32], &mut [f32], usize, usize),
) -> usize {
    let kc = ps.1 - ps.0;
    let tiles = (panel_width(kc) / W).max(1);
    // The buffer is taken out of its cell for the product (moved, not copied), so that this
    // code stays inlined into the caller compiled for the instruction set.
    let mut buffer = take_panel();
    let mut a_block = [[0.0f32; R]; KC];
    let a_block = &mut a_block[..kc];
    let mut j = 0;
    while j + W <= n {
        let count = ((n - j) / W).min(tiles);
        let panel = &mut buffer[..count * kc * W];
        for (t, packed) in panel.chunks_exact_mut(kc * W).enumerate() {
            for (q, row) in packed.chunks_exact_mut(W).enumerate() {
                let at = b.start(ps.0 + q) + j + t * W;
                row.copy_from_slice(&b.data[at..at + W]);
            }
        }
        let mut i0 = 0;
        while i0 < m {
            let rows = (m - i0).min(R);
            pack_rows(alpha, a, i0, rows, ps, a_block);
            let a_block = a_block.as_flattened();
            for (t, packed) in panel.chunks_exact(kc * W).enumerate() {
                tile(kc, a_block, packed, &mut c[i0 * n + j + t * W..], n, rows);
            }
            i0 += rows;
        }
        j += count * W;
    }
    #[cfg(feature = "std")]
    PANEL.set(buffer);
    j
}

/// Copies rows `i0..i0 + rows` of `A`, columns `ps`, times `alpha`, into `out` column after
/// column (`out[q][x]` is element `(i0 + x, ps.0 + q)`); rows past `rows` are zeros.
#[inline(always)]
fn pack_rows<const R: usize>(alpha: f32, a: Mat<'_>, i0: usize, rows: usize, ps: (usize, usize), out: &mut [[f32; R]]) {
    let kc = ps.1 - ps.0;
    if a.cs != 1 {
        for (q, col) in out.iter_mut().enumerate() {
            for (x, v) in col.iter_mut().enumerate() {
                *v = if x < rows { alpha * a.data[a.start(i0 + x) + (ps.0 + q) * a.cs] } else { 0.0 };
            }
        }
        return;
    }
    let empty: &[f32] = &[];
    let mut src = [empty; R];
    for (x, src) in src.iter_mut().enumerate().take(rows) {
        let start = a.start(i0 + x) + ps.0;
        *src = &a.data[start..start + kc];
    }
    for (q, col) in out.iter_mut().enumerate() {
        for (x, v) in col.iter_mut().enumerate() {
            *v = if x < rows { src[x][q] } else { 0.0 };
        }
    }
    if alpha != 1.0 {
        out.iter_mut().flatten().for_each(|v| *v *= alpha);
    }
}

/// This thread's buffer for [`packed_panels`], taken out of its cell, allocated first if the
/// thread has none: the most any panel takes, [`panel_width`] over [`KC`] rows (at least 32
/// columns), obtained zeroed from the system and touched only by products that use it.
/// Without `std`, a new buffer every time.
fn take_panel() -> Vec<f32> {
    let len = panel_width(KC).max(32) * KC;
    #[cfg(feature = "std")]
    let buffer = PANEL.take();
    #[cfg(not(feature = "std"))]
    let buffer = Vec::new();
    if buffer.len() < len {
        vec![0.0; len]
    } else {
        buffer
    }
}

/// Allocates this thread's buffer for large products, if it has none yet; the first training
/// step calls it on every thread of the pool, so that no later step allocates.
pub fn reserve_buffers() {
    #[cfg(feature = "std")]
    PANEL.set(take_panel());
}

#[cfg(feature = "std")]
thread_local! {
    /// Each thread's buffer for [`packed_columns`], allocated on its first large product.
    static PANEL: core::cell::Cell<Vec<f32>> = const { core::cell::Cell::new(Vec::new()) };
}

/// Every row of `C` in the columns `cols`, in blocks of `MR` rows, then of 8 and 6 (with
/// AVX-512), 4, 2 and 1.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn row_blocks<const FMA: bool, const MR: usize, const NR: usize, const STORE: bool, const GATHER: bool>(
    alpha: f32,
    a: Mat<'_>,
    b: Mat<'_>,
    b_rows: &Rows<'_>,
    c: &mut [f32],
    n: usize,
    m: usize,
    cols: (usize, usize),
) {
    // The AVX-512 tiles end a row with one masked tile rather than narrower ones.
    let masked = FMA && MR == 12 && NR == 32;
    let mut i0 = 0;
    while i0 < m {
        let left = m - i0;
        i0 += if left >= MR {
            row_block::<FMA, MR, NR, STORE, GATHER>(alpha, a, b, b_rows, c, n, i0, cols, masked);
            MR
        } else if left >= 8 && MR > 8 {
            row_block::<FMA, 8, NR, STORE, GATHER>(alpha, a, b, b_rows, c, n, i0, cols, masked);
            8
        } else if left >= 6 && MR > 6 {
            row_block::<FMA, 6, NR, STORE, GATHER>(alpha, a, b, b_rows, c, n, i0, cols, masked);
            6
        } else if left >= 4 && MR > 4 {
            row_block::<FMA, 4, NR, STORE, GATHER>(alpha, a, b, b_rows, c, n, i0, cols, masked);
            4
        } else if left >= 2 && MR > 2 {
            row_block::<FMA, 2, NR, STORE, GATHER>(alpha, a, b, b_rows, c, n, i0, cols, masked);
            2
        } else {
            row_block::<FMA, 1, NR, STORE, GATHER>(alpha, a, b, b_rows, c, n, i0, cols, masked);
            1
        };
    }
}

/// Columns of `C` per block, for a panel of `B` of `rows` rows (or columns of `B` of `rows`
/// values): half the second-level cache (read once from the operating system, 1 MiB where it
/// does not say), in multiples of 64 when that is at least 64.
fn panel_width(rows: usize) -> usize {
    static L2: AtomicUsize = AtomicUsize::new(0);
    let mut l2 = L2.load(Ordering::Relaxed);
    if l2 == 0 {
        l2 = second_level_cache().unwrap_or(1 << 20);
        L2.store(l2, Ordering::Relaxed);
    }
    let width = l2 / 2 / (4 * rows.max(1));
    if width >= 64 {
        width / 64 * 64
    } else {
        width.max(1)
    }
}

/// Without `std`, unknown.
#[cfg(not(feature = "std"))]
fn second_level_cache() -> Option<usize> {
    None
}

/// The size of this processor's second-level data cache, in bytes, as Linux reports it.
#[cfg(feature = "std")]
fn second_level_cache() -> Option<usize> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cache/index2/size").ok()?;
    let text = text.trim();
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let scale = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        _ => return None,
    };
    digits.parse::<usize>().ok()?.checked_mul(scale).filter(|&b| b >= 64 << 10)
}

/// Inner-dimension block of [`rows_of_b`].
const KC: usize = 256;

/// The rows `first..first + starts.len()` of `B` that one inner block reads: where each
/// starts (filled in for shifted views only), and the largest start.
struct Rows<'s> {
    starts: &'s [usize],
    last: usize,
    first: usize,
}

/// Rows `i0..i0 + R` of `C` in the columns `cols`: tiles of `R x NR`, then (`masked`) one
/// masked tile for the columns left, or tiles of 16, 8 and 4 columns, then single columns.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn row_block<const FMA: bool, const R: usize, const NR: usize, const STORE: bool, const GATHER: bool>(
    alpha: f32,
    a: Mat<'_>,
    b: Mat<'_>,
    b_rows: &Rows<'_>,
    c: &mut [f32],
    n: usize,
    i0: usize,
    (j0, end): (usize, usize),
    masked: bool,
) {
    // Where the tile's rows of `A` start, and the last value the block reads from them.
    let a_rows: [usize; R] = core::array::from_fn(|r| a.start(i0 + r));
    let a_last = a_rows.iter().max().copied().unwrap_or(0) + (b_rows.first + b_rows.starts.len() - 1) * a.cs;
    assert!(a_last < a.data.len(), "gemm: A tile out of bounds");
    let mut j0 = j0;
    while j0 + NR <= end {
        tile::<FMA, R, NR, STORE, GATHER>(alpha, a, &a_rows, b, b_rows, c, n, i0, j0);
        j0 += NR;
    }
    #[cfg(target_arch = "x86_64")]
    if masked && j0 < end {
        assert!(b_rows.last + end <= b.data.len(), "gemm: B tile out of bounds");
        // SAFETY: `masked` is only set on the AVX-512 path; `A` and `B` are in bounds.
        unsafe {
            if end - j0 > 16 {
                avx512::tile_masked::<R, 2, STORE, GATHER>(alpha, a, &a_rows, b, b_rows, c, n, i0, (j0, end));
            } else {
                avx512::tile_masked::<R, 1, STORE, GATHER>(alpha, a, &a_rows, b, b_rows, c, n, i0, (j0, end));
            }
        }
        return;
    }
    let _ = masked;
    if NR > 16 && j0 + 16 <= end {
        tile::<FMA, R, 16, STORE, GATHER>(alpha, a, &a_rows, b, b_rows, c, n, i0, j0);
        j0 += 16;
    }
    while j0 + 8 <= end {
        tile::<FMA, R, 8, STORE, GATHER>(alpha, a, &a_rows, b, b_rows, c, n, i0, j0);
        j0 += 8;
    }
    if j0 + 4 <= end {
        tile::<FMA, R, 4, STORE, GATHER>(alpha, a, &a_rows, b, b_rows, c, n, i0, j0);
        j0 += 4;
    }
    while j0 < end {
        tile::<FMA, R, 1, STORE, GATHER>(alpha, a, &a_rows, b, b_rows, c, n, i0, j0);
        j0 += 1;
    }
}

/// One `R x W` tile of `C += alpha * A * B` over the block `ps` of the inner dimension
/// (`C =` when `STORE`), accumulated in registers.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile<const FMA: bool, const R: usize, const W: usize, const STORE: bool, const GATHER: bool>(
    alpha: f32,
    a: Mat<'_>,
    a_rows: &[usize; R],
    b: Mat<'_>,
    b_rows: &Rows<'_>,
    c: &mut [f32],
    n: usize,
    i0: usize,
    j0: usize,
) {
    // Every index below is in bounds: the rows of `A` were checked up to the block's last `p`
    // by the caller, and `B`'s here, at its last-starting row.
    assert!(b_rows.last + j0 + W <= b.data.len(), "gemm: B tile out of bounds");
    #[cfg(target_arch = "x86_64")]
    if FMA && R == 12 && W == 32 {
        // SAFETY: only the AVX-512 GEMM has 32-wide tiles; bounds as below.
        unsafe { avx512::tile_12x32::<STORE, GATHER>(alpha, a, a_rows, b, b_rows, c, n, i0, j0) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if FMA && R == 8 && W == 32 {
        // SAFETY: only the AVX-512 GEMM has 8x32 tiles; the bounds are checked as for the
        // generic loop below.
        unsafe { avx512::tile_8x32::<STORE, GATHER>(alpha, a, a_rows, b, b_rows, c, n, i0, j0) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if FMA && R == 6 && W == 16 {
        // SAFETY: only the AVX2 GEMM (with FMA) has 16-wide tiles; bounds as above.
        unsafe { avx2::tile_6x16::<STORE, GATHER>(alpha, a, a_rows, b, b_rows, c, n, i0, j0) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if FMA && R == 4 && W == 16 {
        // SAFETY: only the AVX2 GEMM (with FMA) has 4x16 tiles; bounds as above.
        unsafe { avx2::tile_4x16::<STORE, GATHER>(alpha, a, a_rows, b, b_rows, c, n, i0, j0) };
        return;
    }
    let mut acc = [[0.0f32; W]; R];
    for q in 0..b_rows.starts.len() {
        let p = b_rows.first + q;
        // Ordinary rows are evenly spaced: no table to read.
        let b_start = if GATHER { b_rows.starts[q] } else { p * b.rs };
        // SAFETY: b_start + j0 + W <= b_rows.last + j0 + W <= b.data.len(), asserted above.
        let bv: &[f32; W] = unsafe { &*(b.data.as_ptr().add(b_start + j0) as *const [f32; W]) };
        for (r, acc) in acc.iter_mut().enumerate() {
            // Ordinary rows are evenly spaced, which keeps their addresses out of registers.
            let at = if GATHER { a_rows[r] + p * a.cs } else { (i0 + r) * a.rs + p * a.cs };
            // SAFETY: at < a.data.len(), asserted by the caller.
            let v = unsafe { *a.data.get_unchecked(at) };
            // alpha * v is v itself when alpha is 1, the usual case: the same bits, one
            // multiplication fewer in the innermost loop.
            let s = if alpha == 1.0 { v } else { alpha * v };
            for (acc, &bv) in acc.iter_mut().zip(bv) {
                *acc = madd::<FMA>(s, bv, *acc);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        let row = &mut c[(i0 + r) * n + j0..(i0 + r) * n + j0 + W];
        if STORE {
            row.copy_from_slice(acc);
        } else {
            for (o, v) in row.iter_mut().zip(acc) {
                *o += v;
            }
        }
    }
}

/// Where element `(i0 + r, p)` of `A` is, for row `r` of a tile that starts at row `i0`.
#[inline(always)]
fn a_at<const GATHER: bool>(a: &Mat<'_>, a_rows: &[usize], i0: usize, r: usize, p: usize) -> usize {
    if GATHER {
        a_rows[r] + p * a.cs
    } else {
        (i0 + r) * a.rs + p * a.cs
    }
}

/// Writes (`$overwrite`) or adds the two registers `$acc` to `$row`, a row segment of `C` of
/// `2·$lanes` values.
#[cfg(target_arch = "x86_64")]
macro_rules! write_row {
    ($overwrite:expr, $row:expr, $lanes:literal, $acc:expr, $load:ident, $add:ident, $store:ident) => {{
        let row: &mut [f32] = $row;
        debug_assert_eq!(row.len(), 2 * $lanes);
        let ([first, second], out) = ($acc, row.as_mut_ptr());
        // SAFETY: `row` holds the `2·$lanes` values written.
        unsafe {
            if $overwrite {
                $store(out, first);
                $store(out.add($lanes), second);
            } else {
                $store(out, $add($load(out), first));
                $store(out.add($lanes), $add($load(out.add($lanes)), second));
            }
        }
    }};
}

/// Defines `$name`, an `$rows x 2·$lanes` tile of [`tile`] written with one instruction set's
/// vector operations (two registers of `$lanes` values per row of `C`): the compiler's own
/// vectorisation of the generic tile reassembles `B`'s vectors with shuffles. Each element is
/// summed in the same order with the same fused multiply-adds, so the bits are the generic
/// tile's.
#[cfg(target_arch = "x86_64")]
macro_rules! vector_tile {
    (
        $(#[$doc:meta])* $vis:vis $name:ident, $feature:literal, $rows:literal, $lanes:literal,
        $zero:ident, $load:ident, $splat:ident, $fmadd:ident, $add:ident, $store:ident
    ) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The processor has the instruction set; the caller checked that the block's rows of
        /// `A` and `B` are in bounds.
        #[target_feature(enable = $feature)]
        #[allow(clippy::too_many_arguments)]
        $vis unsafe fn $name<const STORE: bool, const GATHER: bool>(
            alpha: f32,
            a: Mat<'_>,
            a_rows: &[usize],
            b: Mat<'_>,
            b_rows: &Rows<'_>,
            c: &mut [f32],
            n: usize,
            i0: usize,
            j0: usize,
        ) {
            use core::arch::x86_64::*;
            let (ap, bp) = (a.data.as_ptr(), b.data.as_ptr());
            let mut acc = [$zero(); 2 * $rows];
            for q in 0..b_rows.starts.len() {
                let p = b_rows.first + q;
                let b_start = if GATHER { b_rows.starts[q] } else { p * b.rs } + j0;
                // SAFETY: in bounds, as the caller checked.
                let (b0, b1) = unsafe { ($load(bp.add(b_start)), $load(bp.add(b_start + $lanes))) };
                for r in 0..$rows {
                    // SAFETY: as above.
                    let v = unsafe { *ap.add(a_at::<GATHER>(&a, a_rows, i0, r, p)) };
                    let s = $splat(if alpha == 1.0 { v } else { alpha * v });
                    acc[2 * r] = $fmadd(s, b0, acc[2 * r]);
                    acc[2 * r + 1] = $fmadd(s, b1, acc[2 * r + 1]);
                }
            }
            for r in 0..$rows {
                let row = &mut c[(i0 + r) * n + j0..(i0 + r) * n + j0 + 2 * $lanes];
                write_row!(STORE, row, $lanes, [acc[2 * r], acc[2 * r + 1]], $load, $add, $store);
            }
        }
    };
}

/// Defines `$name`, an `$rows x 2·$lanes` tile over packed operands for [`packed_panels`]:
/// `a` holds the block's `$rows` values of `A` per step of the inner dimension, `b` the
/// tile's `2·$lanes` values of `B`, both contiguous. The same fused multiply-adds in the same
/// order as [`tile`], so the same bits.
#[cfg(target_arch = "x86_64")]
macro_rules! packed_tile {
    (
        $(#[$doc:meta])* $vis:vis $name:ident, $feature:literal, $rows:literal, $lanes:literal,
        $zero:ident, $load:ident, $splat:ident, $fmadd:ident, $add:ident, $store:ident
    ) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The processor has the instruction set.
        #[target_feature(enable = $feature)]
        $vis unsafe fn $name<const STORE: bool>(
            kc: usize,
            a: &[f32],
            b: &[f32],
            c: &mut [f32],
            n: usize,
            rows: usize,
        ) {
            use core::arch::x86_64::*;
            assert!(a.len() >= kc * $rows && b.len() >= kc * 2 * $lanes, "gemm: packed panels too short");
            assert!((1..=$rows).contains(&rows) && c.len() >= (rows - 1) * n + 2 * $lanes, "gemm: C tile out of bounds");
            let (ap, bp) = (a.as_ptr(), b.as_ptr());
            let mut acc = [[$zero(); 2]; $rows];
            for q in 0..kc {
                // SAFETY: `q < kc`, and both panels hold `kc` steps, as asserted.
                let (b0, b1) = unsafe { ($load(bp.add(q * 2 * $lanes)), $load(bp.add(q * 2 * $lanes + $lanes))) };
                for (r, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: as above.
                    let s = $splat(unsafe { *ap.add(q * $rows + r) });
                    acc[0] = $fmadd(s, b0, acc[0]);
                    acc[1] = $fmadd(s, b1, acc[1]);
                }
            }
            for (r, acc) in acc.iter().enumerate().take(rows) {
                write_row!(STORE, &mut c[r * n..r * n + 2 * $lanes], $lanes, *acc, $load, $add, $store);
            }
        }
    };
}

/// The AVX-512 register tile.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{a_at, Mat, Rows};

    vector_tile!(
        /// The `8 x 32` tile of [`super::tile`]: two 16-lane registers per row of `C`.
        pub(super) tile_8x32, "avx512f", 8, 16,
        _mm512_setzero_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_storeu_ps
    );

    vector_tile!(
        /// The `12 x 32` tile of [`super::tile`]: 24 accumulators of the 32 registers.
        pub(super) tile_12x32, "avx512f", 12, 16,
        _mm512_setzero_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_storeu_ps
    );

    /// The last columns `j0..end` (at most `16 * H`) of rows `i0..i0 + R` in one tile of
    /// [`super::tile`], `H` registers wide, with masked loads and stores: the same fused
    /// multiply-adds in the same order as the narrower tiles, so the same bits.
    ///
    /// # Safety
    /// The processor has AVX-512; the caller checked that the block's rows of `A` and `B` are
    /// in bounds up to `end`.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn tile_masked<const R: usize, const H: usize, const STORE: bool, const GATHER: bool>(
        alpha: f32,
        a: Mat<'_>,
        a_rows: &[usize; R],
        b: Mat<'_>,
        b_rows: &Rows<'_>,
        c: &mut [f32],
        n: usize,
        i0: usize,
        (j0, end): (usize, usize),
    ) {
        use core::arch::x86_64::*;
        let width = end - j0;
        assert!(width <= 16 * H && H <= 2, "gemm: a masked tile of {width} columns");
        // Lanes `16 * h..` of the columns left, register `h` of a row.
        let masks: [__mmask16; H] =
            core::array::from_fn(|h| ((1u32 << width.saturating_sub(16 * h).min(16)) - 1) as __mmask16);
        let (ap, bp) = (a.data.as_ptr(), b.data.as_ptr());
        let mut acc = [[_mm512_setzero_ps(); H]; R];
        for q in 0..b_rows.starts.len() {
            let p = b_rows.first + q;
            let at = if GATHER { b_rows.starts[q] } else { p * b.rs } + j0;
            // SAFETY: the lanes loaded are in bounds, as the caller checked; the others are
            // masked off and not read.
            let bv: [__m512; H] =
                core::array::from_fn(|h| unsafe { _mm512_maskz_loadu_ps(masks[h], bp.wrapping_add(at + 16 * h)) });
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: in bounds, as the caller checked.
                let v = unsafe { *ap.add(a_at::<GATHER>(&a, a_rows, i0, r, p)) };
                let s = _mm512_set1_ps(if alpha == 1.0 { v } else { alpha * v });
                for (acc, &bv) in acc.iter_mut().zip(&bv) {
                    *acc = _mm512_fmadd_ps(s, bv, *acc);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            let out = c[(i0 + r) * n + j0..(i0 + r) * n + end].as_mut_ptr();
            for (h, (&acc, &mask)) in acc.iter().zip(&masks).enumerate() {
                let at = out.wrapping_add(16 * h);
                // SAFETY: the row holds `width` values; the lanes past them are masked off.
                unsafe {
                    if STORE {
                        _mm512_mask_storeu_ps(at, mask, acc);
                    } else {
                        _mm512_mask_storeu_ps(at, mask, _mm512_add_ps(_mm512_maskz_loadu_ps(mask, at), acc));
                    }
                }
            }
        }
    }

    packed_tile!(
        /// The `12 x 32` tile over packed panels: 24 accumulators of 16 lanes.
        pub(super) packed_12x32, "avx512f", 12, 16,
        _mm512_setzero_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_storeu_ps
    );
}

/// The AVX2 register tile.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{a_at, Mat, Rows};

    vector_tile!(
        /// The `4 x 16` tile of [`super::tile`]: two 8-lane registers per row of `C`.
        pub(super) tile_4x16, "avx2,fma", 4, 8,
        _mm256_setzero_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_storeu_ps
    );

    vector_tile!(
        /// The `6 x 16` tile of [`super::tile`]: 12 accumulators of the 16 registers.
        pub(super) tile_6x16, "avx2,fma", 6, 8,
        _mm256_setzero_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_storeu_ps
    );

    packed_tile!(
        /// The `6 x 16` tile over packed panels: 12 accumulators of 8 lanes.
        pub(super) packed_6x16, "avx2,fma", 6, 8,
        _mm256_setzero_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_storeu_ps
    );
}

/// `A` has contiguous rows and `B` contiguous columns: each element of `C` is a dot product,
/// computed in blocks of 2 rows by 4 columns so that each load feeds several products.
#[inline(always)]
fn dots<const FMA: bool>(alpha: f32, a: Mat<'_>, b: Mat<'_>, c: &mut [f32], n: usize) {
    let (m, k) = (a.rows, a.cols);
    let row = |i: usize| &a.data[a.start(i)..a.start(i) + k];
    let col = |j: usize| &b.data[b.col_start(j)..b.col_start(j) + k];
    // Blocks of columns of `B` sized to half the second-level cache, each read from there by
    // every row of `A` rather than streamed from memory once per pair of rows. Each element is
    // one dot product, whichever block computes it.
    let width = panel_width(k).max(4) / 4 * 4;
    let mut start = 0;
    while start < n {
        let end = (start + width).min(n);
        let mut i = 0;
        while i < m {
            let rows = if i + 2 <= m { [row(i), row(i + 1)] } else { [row(i), row(i)] };
            let mut j = start;
            while j < end {
                let four = j + 4 <= end;
                let cols = if four { [col(j), col(j + 1), col(j + 2), col(j + 3)] } else { [col(j); 4] };
                let d = dot_block_dispatch::<FMA>(rows, cols);
                for (r, d) in d.iter().enumerate().take(if i + 2 <= m { 2 } else { 1 }) {
                    let width = if four { 4 } else { 1 };
                    for (o, d) in c[(i + r) * n + j..(i + r) * n + j + width].iter_mut().zip(d) {
                        *o = madd::<FMA>(alpha, *d, *o);
                    }
                }
                j += if four { 4 } else { 1 };
            }
            i += 2;
        }
        start = end;
    }
}

/// [`dot_block`], with AVX2 intrinsics where the caller runs with FMA on x86-64 (the same
/// arithmetic in the same order, so the same bits).
#[inline(always)]
fn dot_block_dispatch<const FMA: bool>(xs: [&[f32]; 2], ys: [&[f32]; 4]) -> [[f32; 4]; 2] {
    #[cfg(target_arch = "x86_64")]
    if FMA {
        // SAFETY: `FMA` is only true on the paths compiled for (and run on) AVX2 with FMA.
        return unsafe { dot_block_avx2(xs, ys) };
    }
    dot_block::<FMA>(xs, ys)
}

/// [`dot_block`] in AVX2 registers: eight accumulators of eight lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_block_avx2(xs: [&[f32]; 2], ys: [&[f32]; 4]) -> [[f32; 4]; 2] {
    use core::arch::x86_64::*;
    let k = xs[0].len();
    assert!(xs[1].len() == k && ys.iter().all(|y| y.len() == k));
    let split = k - k % 8;
    let mut acc = [[_mm256_setzero_ps(); 4]; 2];
    let mut q = 0;
    while q < split {
        // SAFETY: q + 8 <= split <= k, the length of every row.
        unsafe {
            let x0 = _mm256_loadu_ps(xs[0].as_ptr().add(q));
            let x1 = _mm256_loadu_ps(xs[1].as_ptr().add(q));
            for c in 0..4 {
                let y = _mm256_loadu_ps(ys[c].as_ptr().add(q));
                acc[0][c] = _mm256_fmadd_ps(x0, y, acc[0][c]);
                acc[1][c] = _mm256_fmadd_ps(x1, y, acc[1][c]);
            }
        }
        q += 8;
    }
    let mut out = [[0.0; 4]; 2];
    for r in 0..2 {
        for c in 0..4 {
            // ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7)), as `dot_block` sums.
            let v = _mm_add_ps(_mm256_castps256_ps128(acc[r][c]), _mm256_extractf128_ps(acc[r][c], 1));
            let h = _mm_hadd_ps(v, v);
            let sum = _mm_cvtss_f32(h) + _mm_cvtss_f32(_mm_shuffle_ps(h, h, 1));
            let mut tail = 0.0f32;
            for p in split..k {
                tail = xs[r][p].mul_add(ys[c][p], tail);
            }
            out[r][c] = sum + tail;
        }
    }
    out
}

/// Dot products of two rows with four columns, each over eight lanes summed in a fixed order.
#[inline(always)]
fn dot_block<const FMA: bool>(xs: [&[f32]; 2], ys: [&[f32]; 4]) -> [[f32; 4]; 2] {
    const L: usize = 8;
    let k = xs[0].len();
    let split = k - k % L;
    let mut acc = [[[0.0f32; L]; 4]; 2];
    let mut q = 0;
    while q < split {
        let x0: &[f32; L] = xs[0][q..q + L].try_into().expect("L values");
        let x1: &[f32; L] = xs[1][q..q + L].try_into().expect("L values");
        for c in 0..4 {
            let y: &[f32; L] = ys[c][q..q + L].try_into().expect("L values");
            for l in 0..L {
                acc[0][c][l] = madd::<FMA>(x0[l], y[l], acc[0][c][l]);
                acc[1][c][l] = madd::<FMA>(x1[l], y[l], acc[1][c][l]);
            }
        }
        q += L;
    }
    let mut out = [[0.0; 4]; 2];
    for r in 0..2 {
        for c in 0..4 {
            let a = &acc[r][c];
            let mut tail = 0.0;
            for p in split..k {
                tail = madd::<FMA>(xs[r][p], ys[c][p], tail);
            }
            out[r][c] = ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7])) + tail;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{assert_close, random_vec};

    fn reference(a: Mat<'_>, b: Mat<'_>) -> Vec<f32> {
        let mut out = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                let mut s = 0.0f64;
                for k in 0..a.cols {
                    s += a.data[i * a.rs + k * a.cs] as f64 * b.data[k * b.rs + j * b.cs] as f64;
                }
                out[i * b.cols + j] = s as f32;
            }
        }
        out
    }

    #[test]
    fn matches_the_reference_at_odd_sizes_and_transposes() {
        for &(m, n, k) in
            &[(1, 1, 1), (3, 5, 7), (17, 9, 33), (63, 65, 67), (2, 130, 3), (4, 16, 8), (8, 32, 1), (5, 3, 0)]
        {
            let a = random_vec(m * k, 1);
            let b = random_vec(k * n, 2);
            let at = random_vec(k * m, 3);
            let bt = random_vec(n * k, 4);
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let av = if ta { Mat::new(&at, k, m).t() } else { Mat::new(&a, m, k) };
                let bv = if tb { Mat::new(&bt, n, k).t() } else { Mat::new(&b, k, n) };
                let mut c = vec![f32::NAN; m * n];
                gemm(1.0, av, bv, 0.0, MatMut::new(&mut c, m, n));
                assert_close(&c, &reference(av, bv), 1e-5, &format!("{m}x{n}x{k} t={ta},{tb}"));
            }
        }
    }

    /// Every instruction set this processor has gives the same bits as the best one, and the
    /// portable path agrees to rounding.
    #[test]
    fn every_path_agrees() {
        for &(m, n, k) in &[(6, 784, 25), (16, 100, 150), (150, 100, 16), (13, 37, 29), (9, 70, 1)] {
            let a = random_vec(m * k, 7);
            let b = random_vec(k * n, 8);
            let (av, bv) = (Mat::new(&a, m, k), Mat::new(&b, k, n));
            let mut best = vec![0.0; m * n];
            gemm(0.5, av, bv, 0.0, MatMut::new(&mut best, m, n));
            let mut portable = vec![0.0; m * n];
            gemm_impl::<false, 4, 16>(0.5, av, bv, 0.0, MatMut::new(&mut portable, m, n));
            assert_close(&portable, &best, 1e-5, "portable");
            #[cfg(target_arch = "x86_64")]
            if isa() == Isa::Avx512 {
                let mut avx2 = vec![0.0; m * n];
                // SAFETY: AVX-512 processors have AVX2 and FMA.
                unsafe { gemm_avx2_fma(0.5, av, bv, 0.0, MatMut::new(&mut avx2, m, n)) };
                assert_eq!(avx2, best, "{m}x{n}x{k}: AVX2 and AVX-512 differ");
            }
        }
    }

    /// The register tiles written with vector operations, and the blocks of columns, give the
    /// bits of the generic tiles over one block of columns: the same fused multiply-adds in the
    /// same order.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn written_out_tiles_and_column_blocks_give_the_generic_bits() {
        if isa() == Isa::Portable {
            return;
        }
        // Two inner blocks, rows left over for every smaller tile, columns past one block.
        // Rows of `B` 1024 or more apart with 32 rows or more copy panels: whole blocks of
        // rows and a partial one, columns left over, `A` transposed, `alpha` not 1. Columns
        // left over past the 32-wide tiles: 12, 13, 20 and 16 (one or two masked registers).
        let cases = [
            (23, 1100, 300, 1.0, 0.0, false),
            (9, 77, 257, 0.5, 1.0, false),
            (16, 2100, 40, 1.0, 1.0, false),
            (40, 1100, 300, 0.5, 1.0, false),
            (37, 1030, 260, 1.0, 0.0, true),
            (64, 2200, 20, 1.0, 1.0, false),
            (10, 48, 30, 1.0, 0.0, false),
        ];
        for (m, n, k, alpha, beta, transposed) in cases {
            let a = random_vec(m * k, 30);
            let b = random_vec(k * n, 31);
            let c0 = random_vec(m * n, 32);
            let av = if transposed { Mat::new(&a, k, m).t() } else { Mat::new(&a, m, k) };
            let bv = Mat::new(&b, k, n);
            let mut fast = c0.clone();
            gemm(alpha, av, bv, beta, MatMut::new(&mut fast, m, n));
            // Rows of 6 and 2 take the generic tiles (with FMA, as the fast paths).
            let mut generic = c0.clone();
            gemm_impl::<true, 6, 32>(alpha, av, bv, beta, MatMut::new(&mut generic, m, n));
            assert_eq!(fast, generic, "{m}x{n}x{k}: {:?} tiles", isa());
            let mut avx2 = c0.clone();
            // SAFETY: the processor has AVX2 and FMA (isa() is not portable).
            unsafe { gemm_avx2_fma(alpha, av, bv, beta, MatMut::new(&mut avx2, m, n)) };
            assert_eq!(avx2, generic, "{m}x{n}x{k}: AVX2 tiles");
        }
    }

    /// Dot products in blocks of columns (here 4 columns of 40,000 values) are each one dot
    /// product, as unblocked.
    #[test]
    fn blocks_of_dot_products_give_each_ones_bits() {
        let (m, n, k) = (3, 9, 40_000);
        let a = random_vec(m * k, 40);
        let b = random_vec(n * k, 41);
        let (av, bv) = (Mat::new(&a, m, k), Mat::new(&b, n, k).t());
        let mut c = vec![f32::NAN; m * n];
        gemm(1.0, av, bv, 0.0, MatMut::new(&mut c, m, n));
        let fma = isa() != Isa::Portable;
        for i in 0..m {
            for j in 0..n {
                let (x, y) = (&a[i * k..(i + 1) * k], &b[j * k..(j + 1) * k]);
                let d =
                    if fma { dot_block_dispatch::<true>([x, x], [y; 4]) } else { dot_block::<false>([x, x], [y; 4]) };
                assert_eq!(c[i * n + j].to_bits(), d[0][0].to_bits(), "({i}, {j})");
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn dot_products_in_registers_give_the_same_bits() {
        if isa() == Isa::Portable {
            return;
        }
        for k in [1, 7, 8, 25, 100, 403] {
            let v: Vec<Vec<f32>> = (0..6).map(|i| random_vec(k, 20 + i as u64)).collect();
            let (xs, ys) = ([&v[0][..], &v[1][..]], [&v[2][..], &v[3][..], &v[4][..], &v[5][..]]);
            // SAFETY: the processor has AVX2 and FMA (isa() is not portable).
            let fast = unsafe { dot_block_avx2(xs, ys) };
            assert_eq!(fast, dot_block::<true>(xs, ys), "k = {k}");
        }
    }

    /// The rows of `Mat::taps`, copied out into an ordinary matrix.
    fn unfold(v: &[f32], dims: [usize; 3], f: [usize; 2], cols: usize) -> Vec<f32> {
        let m = Mat::taps(v, dims, f, cols);
        (0..m.rows).flat_map(|i| v[m.start(i)..m.start(i) + cols].to_vec()).collect()
    }

    #[test]
    fn shifted_views_multiply_as_their_copies() {
        // (d, h, w, fh, fw, other side): odd sizes, more than one inner block (2 * 5 * 30 taps),
        // taps 1,088 wide read by 70 rows (copied into panels, as their copy is).
        for &(d, h, w, fh, fw, other) in
            &[(1, 5, 6, 3, 3, 7), (3, 4, 9, 2, 3, 33), (30, 6, 6, 5, 2, 9), (2, 3, 3, 1, 1, 17), (3, 34, 34, 3, 3, 70)]
        {
            let cols = (h - fh + 1) * w;
            let v = random_vec(d * h * w + fw - 1, 11);
            let r = d * fh * fw;
            let copy = unfold(&v, [d, h, w], [fh, fw], cols);
            let x = random_vec(other * r, 12);
            // As B: [other, r] x [r, cols].
            let mut fast = vec![f32::NAN; other * cols];
            gemm(
                1.0,
                Mat::new(&x, other, r),
                Mat::taps(&v, [d, h, w], [fh, fw], cols),
                0.0,
                MatMut::new(&mut fast, other, cols),
            );
            let mut want = vec![0.0; other * cols];
            gemm(1.0, Mat::new(&x, other, r), Mat::new(&copy, r, cols), 0.0, MatMut::new(&mut want, other, cols));
            assert_eq!(fast, want, "B from taps {d}x{h}x{w} / {fh}x{fw}");
            // As A: [r, cols] x [cols, other], accumulated.
            let y = random_vec(cols * other, 13);
            let mut fast = vec![1.0; r * other];
            gemm(
                0.5,
                Mat::taps(&v, [d, h, w], [fh, fw], cols),
                Mat::new(&y, cols, other),
                1.0,
                MatMut::new(&mut fast, r, other),
            );
            let mut want = vec![1.0; r * other];
            gemm(0.5, Mat::new(&copy, r, cols), Mat::new(&y, cols, other), 1.0, MatMut::new(&mut want, r, other));
            assert_close(&fast, &want, 1e-6, &format!("A from taps {d}x{h}x{w} / {fh}x{fw}"));
            // Transposed, as B: [other, cols] x [cols, r], dot products of rows with taps.
            let z = random_vec(other * cols, 16);
            let mut dots = vec![2.0; other * r];
            let taps_t = Mat::taps(&v, [d, h, w], [fh, fw], cols).t();
            gemm(1.0, Mat::new(&z, other, cols), taps_t, 1.0, MatMut::new(&mut dots, other, r));
            let mut want_dots = vec![2.0; other * r];
            let copy_t = Mat::new(&copy, r, cols).t();
            gemm(1.0, Mat::new(&z, other, cols), copy_t, 1.0, MatMut::new(&mut want_dots, other, r));
            assert_eq!(dots, want_dots, "B from transposed taps {d}x{h}x{w} / {fh}x{fw}");
            // Taps on both sides: [r, cols] x [cols, r].
            let taps = Mat::taps(&v, [d, h, w], [fh, fw], cols);
            let mut gram = vec![f32::NAN; r * r];
            gemm(1.0, taps, taps.t(), 0.0, MatMut::new(&mut gram, r, r));
            let mut want_gram = vec![0.0; r * r];
            gemm(1.0, Mat::new(&copy, r, cols), copy_t, 0.0, MatMut::new(&mut want_gram, r, r));
            assert_eq!(gram, want_gram, "taps times their transpose {d}x{h}x{w} / {fh}x{fw}");
            assert_close(
                &want,
                &reference(Mat::new(&copy, r, cols), Mat::new(&y, cols, other))
                    .iter()
                    .map(|v| 0.5 * v + 1.0)
                    .collect::<Vec<_>>(),
                1e-5,
                "reference",
            );
        }
    }

    #[test]
    #[should_panic(expected = "taps")]
    fn shifted_views_must_fit_their_data() {
        let v = vec![0.0; 3 * 4 * 4];
        // The last tap's row runs 2 values past the end without the fw - 1 values of slack.
        Mat::taps(&v, [3, 4, 4], [3, 3], 2 * 4);
    }

    #[test]
    fn row_ranges_of_a_transposed_view() {
        let (m, k) = (23, 6);
        let a = random_vec(k * m, 14);
        let b = random_vec(k * 5, 15);
        let full = Mat::new(&a, k, m).t();
        let mut whole = vec![0.0; m * 5];
        gemm(1.0, full, Mat::new(&b, k, 5), 0.0, MatMut::new(&mut whole, m, 5));
        for (r0, r1) in [(0, 16), (16, 23), (5, 6), (23, 23)] {
            let mut part = vec![0.0; (r1 - r0) * 5];
            gemm(1.0, full.rows_in(r0..r1), Mat::new(&b, k, 5), 0.0, MatMut::new(&mut part, r1 - r0, 5));
            assert_eq!(part, whole[r0 * 5..r1 * 5], "rows {r0}..{r1}");
        }
    }

    #[test]
    fn accumulates_with_beta_one() {
        let (m, n, k) = (7, 6, 5);
        let a = random_vec(m * k, 5);
        let b = random_vec(k * n, 6);
        let mut c = vec![1.0; m * n];
        gemm(2.0, Mat::new(&a, m, k), Mat::new(&b, k, n), 1.0, MatMut::new(&mut c, m, n));
        let want: Vec<f32> = reference(Mat::new(&a, m, k), Mat::new(&b, k, n)).iter().map(|v| 2.0 * v + 1.0).collect();
        assert_close(&c, &want, 1e-5, "beta = 1");
    }
}
