//! nalgebra's own products of owned, contiguous matrices as an oracle for this crate's GEMM.

use nalgebra::DMatrix;

use crate::kernels::testutil::{assert_close, random_vec};
use crate::kernels::{gemm, Mat, MatMut};

/// `alpha * a * b + beta * c` for row-major `a` (`m × k`), `b` (`k × n`) and `c`, by nalgebra.
fn oracle(alpha: f32, a: &[f32], b: &[f32], beta: f32, c: &[f32], (m, n, k): (usize, usize, usize)) -> Vec<f32> {
    let (a, b) = (DMatrix::from_row_slice(m, k, a), DMatrix::from_row_slice(k, n, b));
    let c = DMatrix::from_row_slice(m, n, c);
    let product = a * b * alpha + c * beta;
    // Back to row-major.
    product.transpose().as_slice().to_vec()
}

#[test]
fn the_gemm_agrees_with_nalgebra_on_every_shape_and_transpose() {
    let shapes = [(1, 1, 1), (2, 3, 4), (5, 5, 5), (6, 16, 25), (7, 33, 9), (12, 32, 64), (13, 70, 150), (64, 10, 120)];
    for (m, n, k) in shapes {
        let (a, b, c) = (random_vec(m * k, 1), random_vec(k * n, 2), random_vec(m * n, 3));
        let want = oracle(0.75, &a, &b, -0.5, &c, (m, n, k));
        // The same matrices stored transposed, read through transposed views.
        let at = DMatrix::from_row_slice(m, k, &a).as_slice().to_vec();
        let bt = DMatrix::from_row_slice(k, n, &b).as_slice().to_vec();
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let av = if ta { Mat::new(&at, k, m).t() } else { Mat::new(&a, m, k) };
            let bv = if tb { Mat::new(&bt, n, k).t() } else { Mat::new(&b, k, n) };
            let mut got = c.clone();
            gemm(0.75, av, bv, -0.5, MatMut::new(&mut got, m, n));
            assert_close(&got, &want, 1e-5, &format!("{m}x{n}x{k} transposed {ta},{tb}"));
        }
    }
}
