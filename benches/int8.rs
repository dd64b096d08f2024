//! Int8 inference against the float path: the committed LeNet-5 (`models/lenet5.safetensors`)
//! on the test digits, `Quantized::forward` against `Model::forward`, at batch 64 and batch 1,
//! on one thread and on all of rayon's, in interleaved blocks; the int8 kernels (AVX2 and
//! portable) side by side.
//!
//! `cargo bench --bench int8`; prints the median time of each and the ratios.

#[path = "../tests/common/committed.rs"]
mod committed;

use std::hint::black_box;
use std::time::Instant;

use cnn::quant::{quantize, Kernel, Quantized};
use cnn::{cnn, Model};

cnn! { struct Digits = "models/lenet5.safetensors" }

const BLOCKS: usize = 15;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Seconds per call over `calls` calls of `f`.
fn time(calls: usize, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..calls {
        f();
    }
    start.elapsed().as_secs_f64() / calls as f64
}

/// Median seconds per forward pass of `batch` samples: float, int8 on the best kernel, int8 on
/// the portable kernel.
fn measure(model: &mut Digits, int8: &mut Quantized, portable: &mut Quantized, x: &[f32], batch: usize) -> [f64; 3] {
    let calls = (2048 / batch).max(64);
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    for b in 0..BLOCKS {
        let x = &x[(b % 8) * batch * 784..][..batch * 784];
        times[0].push(time(calls, || {
            black_box(model.forward(x).unwrap());
        }));
        times[1].push(time(calls, || {
            black_box(int8.forward(x).unwrap());
        }));
        times[2].push(time(calls, || {
            black_box(portable.forward(x).unwrap());
        }));
    }
    times.map(median)
}

fn main() {
    let mut model = Digits::new();
    let meta = committed::load(&mut model);
    let (train, test) = committed::digits(&meta);
    let mut int8 = quantize(&model, &train.images[..500 * 784]).unwrap();
    let mut portable = int8.clone();
    portable.set_kernel(Kernel::Portable).unwrap();
    println!("int8 kernel: {:?}; float GEMM: {:?}", int8.kernel(), cnn::__private::kernels::isa());
    let threads = rayon::current_num_threads();
    for (label, pool) in [("1 thread", 1), ("all threads", threads)] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(pool).build().unwrap();
        pool.install(|| {
            for batch in [64, 1] {
                for _ in 0..20 {
                    model.forward(&test.images[..batch * 784]).unwrap();
                    int8.forward(&test.images[..batch * 784]).unwrap();
                    portable.forward(&test.images[..batch * 784]).unwrap();
                }
                let [float, best, plain] = measure(&mut model, &mut int8, &mut portable, &test.images, batch);
                println!(
                    "{label:<11} batch {batch:>2}: float {:>8.1} µs, int8 {:>8.1} µs ({:.2}x float), int8 portable {:>8.1} µs ({:.2}x float)",
                    float * 1e6,
                    best * 1e6,
                    float / best,
                    plain * 1e6,
                    float / plain
                );
            }
        });
    }
}
