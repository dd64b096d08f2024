//! The workloads of `benches/pytorch/bench.py`, measured the same way (median rate over timed
//! blocks after a warm-up), printed one JSON object per line for `benches/pytorch/compare.py` to
//! put side by side with PyTorch's: LeNet-5 training and inference, the CIFAR-style net's
//! training, a training step of every net of the zoo (`examples/zoo/models.rs`, but the
//! perceptron), ResNet-18 at 224x224 (batch 8), and the matrix-product ceilings.
//!
//! ```text
//! cargo bench --bench compare [-- [--quick] [--only W1,W2] [--threads 1,2] [--models PATH]]
//! ```
//!
//! - `--quick`: 5 blocks of 0.2 s instead of 11 of 0.5 s;
//! - `--only`: only the named workloads (`--list` prints them);
//! - `--threads`: the thread counts (default: `CNN_THREADS`, else `1,2`);
//! - `--models PATH`: writes the measured models to PATH as JSON (workload, `PYTORCH` text, input
//!   shape, classes, parameters, FLOPs per training sample), for `bench.py` to build PyTorch's
//!   side from, and exits without measuring.

mod workloads;

/// The zoo's networks, compiled from the example's own file so the two cannot differ.
#[allow(dead_code)]
#[path = "../examples/zoo/models.rs"]
mod zoo;

use std::hint::black_box;
use std::process::exit;
use std::time::{Duration, Instant};

use cnn::__private::kernels::{gemm, isa, Mat, MatMut};
use cnn::{Model, Network, Sgd, Shape};
use rayon::prelude::*;
use workloads::{data, CifarNet, LeNet5, ResNet18};
use zoo::{AlexNet32, GoogLeNetMini, Mlp, ResNet8, ZFNet32};

/// Whether two strings are equal, at compile time.
const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

// The zoo's LeNet5 is the README's, whose training `lenet5_train_b64` measures: measuring it
// twice would tell nothing more.
const _: () = assert!(same(<zoo::LeNet5 as Network>::DSL, <LeNet5 as Network>::DSL));

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

/// Samples per second of training steps at batch `B` (SGD, learning rate 0.01, momentum 0.9).
fn train<M: Model + Default, const B: usize>(block: Duration, blocks: usize) -> f64 {
    let (x, y) = data::<M>(B);
    let mut model = M::default();
    let mut opt = Sgd::new(0.01, 0.9).unwrap();
    median_rate(B as f64, block, blocks, || {
        black_box(model.train_step(&mut opt, &x, &y).unwrap());
    })
}

/// Samples per second of predictions (classes) of batches of `n`.
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

/// What `--models` writes of the model a workload measures.
struct Net {
    /// The Rust type.
    name: &'static str,
    /// `train` or `infer`.
    task: &'static str,
    batch: usize,
    pytorch: &'static str,
    input: Shape,
    classes: usize,
    params: usize,
    /// Forward pass, input gradients and weight gradients: three forward passes' work.
    train_flops: u64,
}

fn net<M: Model>(task: &'static str, batch: usize) -> Net {
    let name = std::any::type_name::<M>().rsplit("::").next().unwrap_or_default();
    Net {
        name,
        task,
        batch,
        pytorch: M::PYTORCH,
        input: M::INPUT,
        classes: M::classes(),
        params: M::PARAM_COUNT,
        train_flops: 3 * M::FLOPS_PER_SAMPLE,
    }
}

/// One measured quantity: a rate over blocks of about `block`, `blocks` of them.
struct Workload {
    name: &'static str,
    unit: &'static str,
    net: Option<Net>,
    /// Measured after every network, as seconds of dense products can lower the clock of what
    /// runs after them.
    ceiling: bool,
    run: fn(Duration, usize) -> f64,
}

fn training<M: Model + Default>(name: &'static str) -> Workload {
    Workload { name, unit: "samples/s", net: Some(net::<M>("train", 64)), ceiling: false, run: train::<M, 64> }
}

fn workloads() -> Vec<Workload> {
    vec![
        training::<LeNet5>("lenet5_train_b64"),
        Workload {
            name: "lenet5_infer_b64",
            unit: "samples/s",
            net: Some(net::<LeNet5>("infer", 64)),
            ceiling: false,
            run: |block, blocks| infer::<LeNet5>(64, block, blocks),
        },
        Workload {
            name: "lenet5_infer_b1",
            unit: "us/sample",
            net: Some(net::<LeNet5>("infer", 1)),
            ceiling: false,
            run: |block, blocks| 1e6 / infer::<LeNet5>(1, block, blocks),
        },
        training::<CifarNet>("cifar_train_b64"),
        training::<Mlp>("mlp_train_b64"),
        training::<AlexNet32>("alexnet32_train_b64"),
        training::<ResNet8>("resnet8_train_b64"),
        training::<ZFNet32>("zfnet32_train_b64"),
        training::<GoogLeNetMini>("googlenet_train_b64"),
        Workload {
            name: "resnet18_train_b8",
            unit: "samples/s",
            net: Some(net::<ResNet18>("train", 8)),
            ceiling: false,
            // About a second per step: at least three per block.
            run: |block, blocks| train::<ResNet18, 8>(block.max(Duration::from_secs(3)), blocks.min(5)),
        },
        Workload {
            name: "gemm_2048",
            unit: "GFLOP/s",
            net: None,
            ceiling: true,
            run: |block, blocks| gemm_rate(2048, block.max(Duration::from_secs(1)), blocks.min(5)),
        },
        Workload {
            name: "gemm_256",
            unit: "GFLOP/s",
            net: None,
            ceiling: true,
            run: |block, blocks| gemm_rate(256, block, blocks),
        },
    ]
}

/// `s` as a JSON string.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The models of `workloads` as a JSON document: `{"models": [...]}`, one object per workload.
fn models_json(workloads: &[&Workload]) -> String {
    let entries: Vec<String> = workloads
        .iter()
        .filter_map(|w| {
            let net = w.net.as_ref()?;
            let input = if net.input.flat {
                format!("[{}]", net.input.len())
            } else {
                format!("[{}, {}, {}]", net.input.d, net.input.h, net.input.w)
            };
            Some(format!(
                "    {{\"workload\": {}, \"model\": {}, \"task\": {}, \"batch\": {}, \"unit\": {}, \"input\": {input}, \
                 \"classes\": {}, \"params\": {}, \"train_flops_per_sample\": {}, \"pytorch\": {}}}",
                json_string(w.name),
                json_string(net.name),
                json_string(net.task),
                net.batch,
                json_string(w.unit),
                net.classes,
                net.params,
                net.train_flops,
                json_string(net.pytorch),
            ))
        })
        .collect();
    format!("{{\"models\": [\n{}\n]}}\n", entries.join(",\n"))
}

fn fail(message: &str) -> ! {
    eprintln!("compare: {message}");
    exit(2)
}

fn counts(list: &str) -> Vec<usize> {
    let counts: Vec<usize> = list
        .split(',')
        .map(|t| t.trim().parse().ok().filter(|&n| n > 0).unwrap_or_else(|| fail(&format!("bad thread count {t:?}"))))
        .collect();
    if counts.is_empty() {
        fail("no thread count");
    }
    counts
}

fn main() {
    let mut quick = false;
    let mut models = None;
    let mut only: Option<Vec<String>> = None;
    let mut threads = None;
    let mut list = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| fail(&format!("{arg} needs a value")));
        match arg.as_str() {
            "--quick" => quick = true,
            "--list" => list = true,
            "--models" => models = Some(value()),
            "--only" => only = Some(value().split(',').map(|s| s.trim().to_string()).collect()),
            "--threads" => threads = Some(counts(&value())),
            // What `cargo bench` passes to every bench.
            "--bench" => {}
            _ => {
                fail(&format!("unknown argument {arg:?} (--quick, --only W1,W2, --threads 1,2, --models PATH, --list)"))
            }
        }
    }
    let all = workloads();
    if list {
        for w in &all {
            println!("{}", w.name);
        }
        return;
    }
    if let Some(only) = &only {
        if let Some(unknown) = only.iter().find(|name| !all.iter().any(|w| w.name == name.as_str())) {
            fail(&format!("unknown workload {unknown:?} (--list names them)"));
        }
    }
    let chosen: Vec<&Workload> =
        all.iter().filter(|w| only.as_ref().is_none_or(|only| only.iter().any(|n| n == w.name))).collect();
    if let Some(path) = models {
        std::fs::write(&path, models_json(&chosen)).unwrap_or_else(|e| fail(&format!("writing {path}: {e}")));
        eprintln!("compare: wrote {} models to {path}", chosen.iter().filter(|w| w.net.is_some()).count());
        return;
    }
    let (block, blocks) = if quick { (Duration::from_millis(200), 5) } else { (Duration::from_millis(500), 11) };
    eprintln!("GEMM instruction set: {:?}", isa());
    // `--threads`, or `CNN_THREADS=1,2,4,8`, measures other thread counts (the PyTorch harness
    // takes the same list).
    let counts = threads.unwrap_or_else(|| std::env::var("CNN_THREADS").map_or_else(|_| vec![1, 2], |v| counts(&v)));
    let pools: Vec<_> =
        counts.iter().map(|&t| (t, rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap())).collect();
    // The networks first, on every thread count, then the matrix-product ceilings (as in
    // bench.py).
    for ceiling in [false, true] {
        for (threads, pool) in &pools {
            pool.install(|| {
                for w in chosen.iter().filter(|w| w.ceiling == ceiling) {
                    report(w.name, *threads, (w.run)(block, blocks), w.unit);
                }
            });
        }
    }
}
