//! Training and inference throughput of the README's LeNet-5, on 1 and 2 threads.
//!
//! `cargo bench --bench train_step`; criterion reports time per batch and samples per second.

use std::hint::black_box;

use cnn::{cnn, Model, Sgd};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

cnn! {
    struct LeNet5 <
        input(28x28x1)
        conv(5x5, 6, pad=2) relu pool(2)
        conv(5x5, 16) relu pool(2)
        fc(120) relu fc(84) relu fc(10) softmax
    >
}

const BATCH: usize = 64;

fn data() -> (Vec<f32>, Vec<usize>) {
    let x = (0..BATCH * 784).map(|i| ((i * 7919) % 255) as f32 / 255.0).collect();
    let y = (0..BATCH).map(|i| i % 10).collect();
    (x, y)
}

fn lenet5(c: &mut Criterion) {
    let (x, y) = data();
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let mut group = c.benchmark_group(format!("lenet5/{threads}-thread"));
        group.throughput(Throughput::Elements(BATCH as u64));
        let mut model = LeNet5::new();
        let mut opt = Sgd::new(0.01, 0.9).unwrap();
        group.bench_function("train-step-batch64", |b| {
            pool.install(|| b.iter(|| black_box(model.train_step(&mut opt, &x, &y).unwrap())))
        });
        let mut out = vec![0; BATCH];
        group.bench_function("inference-batch64", |b| {
            pool.install(|| b.iter(|| model.predict_into(black_box(&x), &mut out).unwrap()))
        });
        group.throughput(Throughput::Elements(1));
        let one: [f32; 784] = x[..784].try_into().unwrap();
        group.bench_function("inference-batch1", |b| {
            pool.install(|| b.iter(|| black_box(model.classify(black_box(&one)))))
        });
        group.finish();
    }
}

criterion_group!(benches, lenet5);
criterion_main!(benches);
