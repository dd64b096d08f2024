//! Matrix product on strided row-major views, without allocation.
//!
//! Neither nalgebra's `gemm` nor `matrixmultiply::sgemm` (the engine behind it) fits here:
//! nalgebra's path for small matrices (any side of 5 or less) indexes out of bounds on views
//! whose rows are not contiguous, and `matrixmultiply` allocates its packing buffer on every
//! call, hundreds of times per training step. This GEMM needs no buffer: it picks one of two
//! loop orders by the operands' layout, so that the innermost loop always runs over contiguous
//! memory and vectorises, and it is compiled twice, once for AVX2 with FMA (chosen at run time
//! when the processor has them) and once for the baseline instruction set.
//!
//! Every output element is summed in an order fixed by the shapes alone, so results do not
//! depend on threads or on how a batch is split.

/// A read-only matrix over a slice: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    /// A `rows x cols` row-major matrix over the first `rows * cols` values of `data`.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert!(data.len() >= rows * cols, "matrix {rows}x{cols} over {} values", data.len());
        Mat { data: &data[..rows * cols], rows, cols, rs: cols, cs: 1 }
    }

    /// The transpose, as a view of the same data.
    pub fn t(self) -> Self {
        Mat { rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs, ..self }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
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
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the processor supports the features the function is compiled for.
            unsafe { gemm_avx2_fma(alpha, a, b, beta, c) };
            return;
        }
    }
    gemm_impl::<false, 16>(alpha, a, b, beta, c);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gemm_avx2_fma(alpha: f32, a: Mat<'_>, b: Mat<'_>, beta: f32, c: MatMut<'_>) {
    gemm_impl::<true, 16>(alpha, a, b, beta, c);
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
fn gemm_impl<const FMA: bool, const NR: usize>(alpha: f32, a: Mat<'_>, b: Mat<'_>, beta: f32, c: MatMut<'_>) {
    let (m, n, k) = (c.rows, c.cols, a.cols);
    if m == 0 || n == 0 {
        return;
    }
    if beta == 0.0 {
        c.data.fill(0.0);
    } else if beta != 1.0 {
        c.data.iter_mut().for_each(|v| *v *= beta);
    }
    if k == 0 {
        return;
    }
    if b.cs == 1 {
        rows_of_b::<FMA, NR>(alpha, a, b, c.data, n);
    } else if a.cs == 1 && b.rs == 1 {
        dots::<FMA>(alpha, a, b, c.data, n);
    } else {
        for i in 0..m {
            for p in 0..k {
                let s = alpha * a.data[i * a.rs + p * a.cs];
                for (j, out) in c.data[i * n..(i + 1) * n].iter_mut().enumerate() {
                    *out = madd::<FMA>(s, b.data[p * b.rs + j * b.cs], *out);
                }
            }
        }
    }
}

/// `B` has contiguous rows: `C` is computed in tiles of `MR x NR` kept in registers while `p`
/// runs over the inner dimension, each step broadcasting `MR` values of `A` against one row
/// segment of `B`.
#[inline(always)]
fn rows_of_b<const FMA: bool, const NR: usize>(alpha: f32, a: Mat<'_>, b: Mat<'_>, c: &mut [f32], n: usize) {
    let m = a.rows;
    for i0 in (0..m).step_by(MR) {
        let mr = MR.min(m - i0);
        for j0 in (0..n).step_by(NR) {
            let nr = NR.min(n - j0);
            if mr == MR && nr == NR {
                let acc = full_tile::<FMA, NR>(alpha, a, b, i0, j0);
                for (r, acc) in acc.iter().enumerate() {
                    let row = &mut c[(i0 + r) * n + j0..(i0 + r) * n + j0 + NR];
                    for (o, v) in row.iter_mut().zip(acc) {
                        *o += v;
                    }
                }
            } else {
                edge_tile::<FMA, NR>(alpha, a, b, c, n, (i0, mr), (j0, nr));
            }
        }
    }
}

/// Rows of a register tile; its columns, `NR`, fill two vector registers.
const MR: usize = 4;

/// One full `MR x NR` tile of `alpha * A * B`, accumulated in registers.
#[inline(always)]
fn full_tile<const FMA: bool, const NR: usize>(
    alpha: f32,
    a: Mat<'_>,
    b: Mat<'_>,
    i0: usize,
    j0: usize,
) -> [[f32; NR]; MR] {
    let mut acc = [[0.0f32; NR]; MR];
    for p in 0..a.cols {
        let start = p * b.rs + j0;
        let bv: &[f32; NR] = b.data[start..start + NR].try_into().expect("NR values");
        for (r, acc) in acc.iter_mut().enumerate() {
            let s = alpha * a.data[(i0 + r) * a.rs + p * a.cs];
            for (acc, &bv) in acc.iter_mut().zip(bv) {
                *acc = madd::<FMA>(s, bv, *acc);
            }
        }
    }
    acc
}

/// A partial tile at the bottom or right edge of `C`, summed in the same order as a full one.
#[inline(always)]
fn edge_tile<const FMA: bool, const NR: usize>(
    alpha: f32,
    a: Mat<'_>,
    b: Mat<'_>,
    c: &mut [f32],
    n: usize,
    (i0, mr): (usize, usize),
    (j0, nr): (usize, usize),
) {
    for r in 0..mr {
        let mut acc = [0.0f32; NR];
        for p in 0..a.cols {
            let s = alpha * a.data[(i0 + r) * a.rs + p * a.cs];
            let start = p * b.rs + j0;
            for (acc, &bv) in acc[..nr].iter_mut().zip(&b.data[start..start + nr]) {
                *acc = madd::<FMA>(s, bv, *acc);
            }
        }
        let row = &mut c[(i0 + r) * n + j0..(i0 + r) * n + j0 + nr];
        for (o, v) in row.iter_mut().zip(&acc) {
            *o += v;
        }
    }
}

/// `A` has contiguous rows and `B` contiguous columns: each element of `C` is a dot product,
/// computed in blocks of 2 rows by 4 columns so that each load feeds several products.
#[inline(always)]
fn dots<const FMA: bool>(alpha: f32, a: Mat<'_>, b: Mat<'_>, c: &mut [f32], n: usize) {
    let (m, k) = (a.rows, a.cols);
    let row = |i: usize| &a.data[i * a.rs..i * a.rs + k];
    let col = |j: usize| &b.data[j * b.cs..j * b.cs + k];
    let mut i = 0;
    while i < m {
        let rows = if i + 2 <= m { [row(i), row(i + 1)] } else { [row(i), row(i)] };
        let mut j = 0;
        while j < n {
            let cols = if j + 4 <= n { [col(j), col(j + 1), col(j + 2), col(j + 3)] } else { [col(j); 4] };
            let d = dot_block::<FMA>(rows, cols);
            for (r, d) in d.iter().enumerate().take(if i + 2 <= m { 2 } else { 1 }) {
                let width = if j + 4 <= n { 4 } else { 1 };
                for (o, d) in c[(i + r) * n + j..(i + r) * n + j + width].iter_mut().zip(d) {
                    *o = madd::<FMA>(alpha, *d, *o);
                }
            }
            j += if j + 4 <= n { 4 } else { 1 };
        }
        i += 2;
    }
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
