//! What the divergence guard of a training step costs: LeNet-5 at batch 64 on one thread,
//! `train_step` (checked and undoable) against the same pass and update without the checks,
//! in interleaved blocks, and the checks on their own.
//!
//! `cargo bench --bench guard`; prints one line per measure and the median ratio.

mod workloads;

use std::hint::black_box;
use std::time::Instant;

use cnn::__private::{backward_unchecked, Compiled};
use cnn::optim::first_non_finite;
use cnn::{Model, Network, Optimizer, Sgd, Targets};
use workloads::{data, LeNet5};

const BATCH: usize = 64;
const STEPS: usize = 100;
const BLOCKS: usize = 15;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Seconds per step over `STEPS` steps of `step`.
fn time(mut step: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..STEPS {
        step();
    }
    start.elapsed().as_secs_f64() / STEPS as f64
}

fn main() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    pool.install(|| {
        let (x, y) = data::<LeNet5>(BATCH);
        let mut model = LeNet5::with_seed(1);
        let mut opt = Sgd::new(0.01, 0.9).unwrap();
        let segments = model.segments().to_vec();
        // Warm-up: workspace, momentum buffer, caches.
        for _ in 0..50 {
            model.train_step(&mut opt, &x, &y).unwrap();
        }
        let (mut guarded, mut bare, mut checks) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..BLOCKS {
            guarded.push(time(|| {
                black_box(model.train_step(&mut opt, &x, &y).unwrap());
            }));
            bare.push(time(|| {
                black_box(backward_unchecked(&mut model, BATCH, &x, &|_| Targets::Labels(&y)));
                let state = model.state_mut();
                opt.step(&mut state.params, &state.grads, &segments).unwrap();
            }));
            checks.push(time(|| {
                black_box(first_non_finite(model.grads()));
                black_box(first_non_finite(model.buffers()));
                black_box(opt.check_step(model.params(), model.grads(), &segments));
            }));
        }
        let parts = [
            (
                "gradient scan",
                median(
                    (0..BLOCKS)
                        .map(|_| {
                            time(|| {
                                black_box(first_non_finite(black_box(model.grads())));
                            })
                        })
                        .collect(),
                ),
            ),
            (
                "optimizer step",
                median(
                    (0..BLOCKS)
                        .map(|_| {
                            time(|| {
                                let state = model.state_mut();
                                opt.step(&mut state.params, &state.grads, &segments).unwrap();
                            })
                        })
                        .collect(),
                ),
            ),
            (
                "optimizer dry run",
                median(
                    (0..BLOCKS)
                        .map(|_| {
                            time(|| {
                                black_box(opt.check_step(black_box(model.params()), model.grads(), &segments));
                            })
                        })
                        .collect(),
                ),
            ),
        ];
        for (name, t) in parts {
            println!("  {name:<31} {:8.1} µs", t * 1e6);
        }
        let (g, b, c) = (median(guarded), median(bare), median(checks));
        println!("LeNet-5, batch {BATCH}, 1 thread, median of {BLOCKS} blocks of {STEPS} steps:");
        println!("  train_step (guarded)            {:8.1} µs", g * 1e6);
        println!("  pass + update without checks    {:8.1} µs", b * 1e6);
        println!("  the checks alone                {:8.1} µs  ({:.2} % of a step)", c * 1e6, 100.0 * c / b);
        println!("  guarded / unchecked             {:8.3}", g / b);
    });
}
