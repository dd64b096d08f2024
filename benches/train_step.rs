//! Training and inference throughput of two of the networks PyTorch is compared with
//! (`benches/compare.rs`, `benches/pytorch/`): the README's LeNet-5 and a CIFAR-style network,
//! on 1 and 2 threads, with the GEMM on each instruction set this processor has, side by side.
//!
//! `cargo bench --bench train_step`; criterion reports time per batch and samples per second.
//! `cargo bench --bench train_step -- lenet5/1-thread` runs a part.

mod workloads;

use std::hint::black_box;
use std::time::Duration;

use cnn::__private::kernels::{force_isa, Isa};
use cnn::{Model, Sgd};
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use workloads::{data, CifarNet, LeNet5};

const BATCH: usize = 64;

/// The instruction sets to compare: the best one, and AVX2 below AVX-512.
fn isas() -> Vec<(&'static str, Isa)> {
    let best = force_isa(Isa::Avx512);
    let mut out = vec![(if best == Isa::Avx512 { "avx512" } else { "best" }, best)];
    if best == Isa::Avx512 {
        out.push(("avx2", Isa::Avx2));
    }
    out
}

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

fn train_and_infer<M: Model + Default>(group: &mut Group<'_>, pool: &rayon::ThreadPool, name: &str, batch1: bool) {
    let (x, y) = data::<M>(BATCH);
    let mut model = M::default();
    let mut opt = Sgd::new(0.01, 0.9).unwrap();
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(format!("{name}/train-step-batch64"), |b| {
        pool.install(|| b.iter(|| black_box(model.train_step(&mut opt, &x, &y).unwrap())))
    });
    let mut out = vec![0; BATCH];
    group.bench_function(format!("{name}/inference-batch64"), |b| {
        pool.install(|| b.iter(|| model.predict_into(black_box(&x), &mut out).unwrap()))
    });
    if batch1 {
        group.throughput(Throughput::Elements(1));
        let mut one = [0];
        group.bench_function(format!("{name}/inference-batch1"), |b| {
            pool.install(|| b.iter(|| model.predict_into(black_box(&x[..M::INPUT_LEN]), &mut one).unwrap()))
        });
    }
}

fn workloads(c: &mut Criterion) {
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        for (isa_name, isa) in isas() {
            force_isa(isa);
            let mut group = c.benchmark_group(format!("lenet5/{threads}-thread"));
            group.measurement_time(Duration::from_secs(3)).sample_size(20);
            train_and_infer::<LeNet5>(&mut group, &pool, isa_name, true);
            group.finish();
            let mut group = c.benchmark_group(format!("cifar/{threads}-thread"));
            group.measurement_time(Duration::from_secs(5)).sample_size(10);
            train_and_infer::<CifarNet>(&mut group, &pool, isa_name, false);
            group.finish();
        }
        force_isa(Isa::Avx512);
    }
}

criterion_group!(benches, workloads);
criterion_main!(benches);
