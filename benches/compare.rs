//! The workloads of `benches/pytorch/bench.py`, measured the same way (median samples per
//! second over timed blocks after a warm-up), printed one JSON object per line for
//! `benches/pytorch/compare.py` to put side by side with PyTorch's.
//!
//! `cargo bench --bench compare` (add `-- --quick` for shorter blocks; set `CNN_THREADS=1,2,4`
//! for other thread counts).

mod workloads;

use std::hint::black_box;
use std::time::{Duration, Instant};

use cnn::__private::kernels::{gemm, isa, Mat, MatMut};
use cnn::{Model, Network, Sgd};
use rayon::prelude::*;
use workloads::{data, CifarNet, LeNet5};

/// Median rate (`work` units per second) of `f` over `blocks` blocks of about `block` each,
/// after one block of warm-up.
fn median_rate(work: f64, block: Duration, blocks: usize, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut reps = 0u64;
    while start.elapsed() < block {
        f();
        reps += 1;
    }
    let per_block = reps.max(1);
    let mut rates: Vec<f64> = (0..blocks)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_block {
                f();
            }
            work * per_block as f64 / t.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(|a, b| a.total_cmp(b));
    rates[rates.len() / 2]
}

fn report(workload: &str, threads: usize, value: f64, unit: &str) {
    println!("{{\"side\": \"cnn\", \"workload\": \"{workload}\", \"threads\": {threads}, \"value\": {value:.1}, \"unit\": \"{unit}\"}}");
}

fn train<M: Model + Default>(block: Duration, blocks: usize) -> f64 {
    let (x, y) = data::<M>(64);
    let mut model = M::default();
    let mut opt = Sgd::new(0.01, 0.9).unwrap();
    median_rate(64.0, block, blocks, || {
        black_box(model.train_step(&mut opt, &x, &y).unwrap());
    })
}

fn infer<M: Model + Default>(n: usize, block: Duration, blocks: usize) -> f64 {
    let (x, _) = data::<M>(n);
    let mut model = M::default();
    let mut out = vec![0; n];
    median_rate(n as f64, block, blocks, || model.predict_into(black_box(&x), &mut out).unwrap())
}

/// GFLOP/s of the runtime's GEMM on `size`³ products, one per thread at a time (for 2048, the
/// rows of one product split across the threads).
fn gemm_rate(size: usize, block: Duration, blocks: usize) -> f64 {
    let threads = rayon::current_num_threads();
    let count = if size >= 1024 { 1 } else { threads };
    let a: Vec<f32> = (0..size * size).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..size * size).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut c = vec![0.0f32; count * size * size];
    let rows = if count == 1 { size.div_ceil(threads) } else { size };
    median_rate(2.0 * (count * size * size * size) as f64 / 1e9, block, blocks, || {
        c.par_chunks_mut(rows * size).enumerate().for_each(|(i, c)| {
            let m = c.len() / size;
            let a = if count == 1 { &a[i * rows * size..i * rows * size + m * size] } else { &a[..] };
            gemm(1.0, Mat::new(a, m, size), Mat::new(&b, size, size), 0.0, MatMut::new(c, m, size));
        });
    })
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (block, blocks) = if quick { (Duration::from_millis(200), 5) } else { (Duration::from_millis(500), 11) };
    eprintln!("GEMM instruction set: {:?}", isa());
    // `CNN_THREADS=1,2,4,8` measures other thread counts (the PyTorch harness uses 1 and 2).
    let counts: Vec<usize> = std::env::var("CNN_THREADS")
        .ok()
        .map(|v| v.split(',').filter_map(|t| t.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2]);
    let pools: Vec<_> =
        counts.iter().map(|&t| (t, rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap())).collect();
    for (threads, pool) in &pools {
        let threads = *threads;
        pool.install(|| {
            report("lenet5_train_b64", threads, train::<LeNet5>(block, blocks), "samples/s");
            report("lenet5_infer_b64", threads, infer::<LeNet5>(64, block, blocks), "samples/s");
            let per_second = infer::<LeNet5>(1, block, blocks);
            report("lenet5_infer_b1", threads, 1e6 / per_second, "us/sample");
            report("cifar_train_b64", threads, train::<CifarNet>(block, blocks), "samples/s");
        });
    }
    // The matrix-product ceilings last (as in bench.py): seconds of dense products can lower
    // the clock the workloads after them run at.
    for (threads, pool) in &pools {
        let threads = *threads;
        pool.install(|| {
            report("gemm_2048", threads, gemm_rate(2048, block.max(Duration::from_secs(1)), blocks.min(5)), "GFLOP/s");
            report("gemm_256", threads, gemm_rate(256, block, blocks), "GFLOP/s");
        });
    }
    // How much of the GEMM ceiling each net reaches while training (3 forward passes' work:
    // forward, input gradients, weight gradients).
    eprintln!(
        "FLOPs per training sample: LeNet5 {:.2} M, CifarNet {:.1} M",
        3.0 * LeNet5::FLOPS_PER_SAMPLE as f64 / 1e6,
        3.0 * CifarNet::FLOPS_PER_SAMPLE as f64 / 1e6
    );
}
