//! Matrix product on strided row-major views.
//!
//! The product runs on `matrixmultiply::sgemm`, the engine behind nalgebra's own `gemm` for
//! large `f32` matrices. It is called directly because nalgebra's path for small matrices
//! (any side of 5 or less) indexes out of bounds on views whose rows are not contiguous, which
//! every transposed or row-major operand here is.

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
        assert!(
            data.len() >= rows * cols,
            "matrix {rows}x{cols} over {} values",
            data.len()
        );
        Mat {
            data: &data[..rows * cols],
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose, as a view of the same data.
    pub fn t(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
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
        assert!(
            data.len() >= rows * cols,
            "matrix {rows}x{cols} over {} values",
            data.len()
        );
        MatMut {
            data: &mut data[..rows * cols],
            rows,
            cols,
        }
    }
}

/// `c = alpha * a * b + beta * c`. With `beta == 0` the old contents of `c` are not read.
///
/// # Panics
/// When the shapes do not fit; kernels call it with shapes fixed at compile time.
pub fn gemm(alpha: f32, a: Mat<'_>, b: Mat<'_>, beta: f32, c: MatMut<'_>) {
    assert_eq!(a.cols, b.rows, "gemm: inner dimensions differ");
    assert_eq!(
        (a.rows, b.cols),
        (c.rows, c.cols),
        "gemm: output shape differs"
    );
    if c.rows == 0 || c.cols == 0 {
        return;
    }
    if a.cols == 0 {
        scale(c.data, beta);
        return;
    }
    // SAFETY: every view was built over a slice holding all of its elements (checked in `new`,
    // kept by `t`), the shapes agree (asserted above), and `c` is borrowed mutably, so no
    // operand aliases it.
    unsafe {
        matrixmultiply::sgemm(
            c.rows,
            a.cols,
            c.cols,
            alpha,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c.data.as_mut_ptr(),
            c.cols as isize,
            1,
        );
    }
}

fn scale(c: &mut [f32], beta: f32) {
    if beta == 0.0 {
        c.fill(0.0);
    } else {
        c.iter_mut().for_each(|v| *v *= beta);
    }
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
        for &(m, n, k) in &[(1, 1, 1), (3, 5, 7), (17, 9, 33), (63, 65, 67), (2, 130, 3)] {
            let a = random_vec(m * k, 1);
            let b = random_vec(k * n, 2);
            let at = random_vec(k * m, 3);
            let bt = random_vec(n * k, 4);
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let av = if ta {
                    Mat::new(&at, k, m).t()
                } else {
                    Mat::new(&a, m, k)
                };
                let bv = if tb {
                    Mat::new(&bt, n, k).t()
                } else {
                    Mat::new(&b, k, n)
                };
                let mut c = vec![f32::NAN; m * n];
                gemm(1.0, av, bv, 0.0, MatMut::new(&mut c, m, n));
                assert_close(
                    &c,
                    &reference(av, bv),
                    1e-5,
                    &format!("{m}x{n}x{k} t={ta},{tb}"),
                );
            }
        }
    }

    #[test]
    fn accumulates_with_beta_one() {
        let (m, n, k) = (7, 6, 5);
        let a = random_vec(m * k, 5);
        let b = random_vec(k * n, 6);
        let mut c = vec![1.0; m * n];
        gemm(
            2.0,
            Mat::new(&a, m, k),
            Mat::new(&b, k, n),
            1.0,
            MatMut::new(&mut c, m, n),
        );
        let want: Vec<f32> = reference(Mat::new(&a, m, k), Mat::new(&b, k, n))
            .iter()
            .map(|v| 2.0 * v + 1.0)
            .collect();
        assert_close(&c, &want, 1e-5, "beta = 1");
    }
}
