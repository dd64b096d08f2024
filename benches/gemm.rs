//! The runtime's allocation-free GEMM against `matrixmultiply::sgemm` (the engine behind
//! nalgebra's GEMM, which allocates a packing buffer per call), at the shapes LeNet-5's
//! training step multiplies, side by side in one run.
//!
//! `cargo bench --bench gemm`; criterion reports GFLOP/s as elements (2·m·n·k) per second.

use std::hint::black_box;

use cnn::__private::kernels::{gemm, Mat, MatMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// (name, m, n, k, A transposed, B transposed)
const SHAPES: [(&str, usize, usize, usize, bool, bool); 7] = [
    ("conv1-forward", 6, 784, 25, false, false),
    ("conv2-forward", 16, 100, 150, false, false),
    ("conv2-weight-grad", 16, 150, 100, false, true),
    ("conv2-input-grad", 150, 100, 16, true, false),
    ("fc1-forward", 4, 120, 400, false, true),
    ("fc1-weight-grad", 120, 400, 4, true, false),
    ("square-256", 256, 256, 256, false, false),
];

fn products(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm");
    for (name, m, n, k, ta, tb) in SHAPES {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut out = vec![0.0f32; m * n];
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        group.bench_function(BenchmarkId::new("cnn", name), |bench| {
            bench.iter(|| {
                let av = if ta { Mat::new(&a, k, m).t() } else { Mat::new(&a, m, k) };
                let bv = if tb { Mat::new(&b, n, k).t() } else { Mat::new(&b, k, n) };
                gemm(1.0, black_box(av), black_box(bv), 0.0, MatMut::new(&mut out, m, n));
            })
        });
        let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
        let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
        group.bench_function(BenchmarkId::new("matrixmultiply", name), |bench| {
            bench.iter(|| {
                // SAFETY: a, b and out hold m·k, k·n and m·n values laid out by these strides.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        1.0,
                        black_box(a.as_ptr()),
                        rsa,
                        csa,
                        black_box(b.as_ptr()),
                        rsb,
                        csb,
                        0.0,
                        out.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, products);
criterion_main!(benches);
