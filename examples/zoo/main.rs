//! The course's networks, from the perceptron to a ResNet: prints each one's layer table and
//! trains it briefly, each with another optimizer and learning-rate schedule.
//!
//! ```text
//! cargo run --release --example zoo [-- perceptron|mlp|lenet5|alexnet32|zfnet32|resnet8|googlenet]
//! ```
//!
//! The digits come from `data/mnist`; the 32x32 colour networks learn a synthetic task (the
//! orientation of coloured stripes under noise), so nothing has to be downloaded.

mod models;

use std::error::Error;
use std::path::Path;
use std::time::Instant;

use cnn::data::{epoch_order, load_mnist};
use cnn::schedule::{Constant, Cosine, Exponential, StepDecay, WarmUp};
use cnn::{Adam, Model, Network, Optimizer, Schedule, Sgd};
use models::{AlexNet32, GoogLeNetMini, LeNet5, Mlp, Perceptron, ResNet8, ZFNet32};

/// A small xorshift generator for the synthetic data.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// `n` points of two overlapping-free clouds in the plane, labelled by the side of a line.
fn clouds(n: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
    let mut rng = Rng(seed | 1);
    let mut x = Vec::with_capacity(2 * n);
    let mut y = Vec::with_capacity(n);
    while y.len() < n {
        let (a, b) = (4.0 * rng.unit() - 2.0, 4.0 * rng.unit() - 2.0);
        let side = a + 0.5 * b - 0.3;
        if side.abs() > 0.2 {
            x.extend([a, b]);
            y.push(usize::from(side > 0.0));
        }
    }
    (x, y)
}

/// `n` 32x32 colour images of stripes, horizontal, vertical, diagonal or anti-diagonal (the
/// class), in a random colour and phase, under noise.
fn stripes(n: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
    const SIDE: usize = 32;
    let mut rng = Rng(seed | 1);
    let mut x = vec![0.0; n * 3 * SIDE * SIDE];
    let mut y = Vec::with_capacity(n);
    for img in x.chunks_exact_mut(3 * SIDE * SIDE) {
        let class = (rng.unit() * 4.0) as usize % 4;
        y.push(class);
        let colour = [rng.unit(), rng.unit(), rng.unit()];
        let (phase, period) = ((rng.unit() * 8.0) as usize, 4 + (rng.unit() * 4.0) as usize);
        for (c, plane) in img.chunks_exact_mut(SIDE * SIDE).enumerate() {
            for (i, v) in plane.iter_mut().enumerate() {
                let (r, col) = (i / SIDE, i % SIDE);
                let t = match class {
                    0 => r,
                    1 => col,
                    2 => r + col,
                    _ => r + SIDE - col,
                };
                let on = (t + phase) % period < period / 2;
                *v = if on { colour[c] } else { 0.0 } + 0.5 * (rng.unit() - 0.5);
            }
        }
    }
    (x, y)
}

/// Trains `model` for `epochs` on `(x, y)` in batches of `batch`, the learning rate following
/// `schedule` step by step; prints the loss and the accuracy on `(tx, ty)` after each epoch.
#[allow(clippy::too_many_arguments)]
fn train<M: Model>(
    model: &mut M,
    opt: &mut dyn Optimizer,
    schedule: &dyn Schedule,
    data: (&[f32], &[usize]),
    test: (&[f32], &[usize]),
    epochs: usize,
    batch: usize,
) -> Result<(), Box<dyn Error>> {
    let (x, y) = data;
    let mut order = Vec::new();
    let (mut xb, mut yb) = (Vec::new(), Vec::new());
    let mut step = 0;
    for epoch in 0..epochs {
        let start = Instant::now();
        epoch_order(y.len(), 7, epoch as u64, &mut order)?;
        let mut total = 0.0;
        for chunk in order.chunks(batch) {
            xb.clear();
            yb.clear();
            for &i in chunk {
                xb.extend_from_slice(&x[i * M::INPUT_LEN..(i + 1) * M::INPUT_LEN]);
                yb.push(y[i]);
            }
            schedule.apply(opt, step)?;
            total += model.train_step(opt, &xb, &yb)? * chunk.len() as f32;
            step += 1;
        }
        let eval = model.evaluate(test.0, test.1, 256)?;
        println!(
            "  epoch {}: training loss {:.4}, test accuracy {:5.1} %, lr {:.5}, {:.1} s",
            epoch + 1,
            total / y.len() as f32,
            100.0 * eval.accuracy,
            opt.learning_rate(),
            start.elapsed().as_secs_f32()
        );
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let which = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let known = ["all", "perceptron", "mlp", "lenet5", "alexnet32", "zfnet32", "resnet8", "googlenet"];
    if !known.contains(&which.as_str()) {
        return Err(format!("unknown model `{which}`: choose one of {}", known.join(", ")).into());
    }
    let run = |name: &str| which == "all" || which == name;

    if run("perceptron") {
        println!("Perceptron: SGD, constant learning rate\n{}", Perceptron::SUMMARY);
        let (x, y) = clouds(512, 1);
        let (tx, ty) = clouds(256, 2);
        let mut model = Perceptron::with_seed(1);
        train(&mut model, &mut Sgd::new(0.5, 0.0)?, &Constant::new(0.5)?, (&x, &y), (&tx, &ty), 5, 16)?;
    }
    let digits = if run("mlp") || run("lenet5") { Some(load_mnist(Path::new("data/mnist"))?) } else { None };
    if let Some((train_set, test_set)) = &digits {
        let data = (&train_set.images[..], &train_set.labels[..]);
        let test = (&test_set.images[..], &test_set.labels[..]);
        if run("mlp") {
            println!("\nMlp: Adam, step decay\n{}", Mlp::SUMMARY);
            let mut model = Mlp::with_seed(1);
            let schedule = StepDecay::new(1e-3, 250, 0.5)?;
            train(&mut model, &mut Adam::new(1e-3)?, &schedule, data, test, 3, 64)?;
        }
        if run("lenet5") {
            println!("\nLeNet5: SGD with Nesterov momentum and L2 weight decay, cosine annealing\n{}", LeNet5::SUMMARY);
            let mut model = LeNet5::with_seed(1);
            let mut opt = Sgd::new(0.02, 0.9)?.with_nesterov(true)?.with_weight_decay(5e-4)?;
            let schedule = Cosine::new(0.02, 0.0, 3 * 8000 / 32)?;
            train(&mut model, &mut opt, &schedule, data, test, 3, 32)?;
        }
    }
    let colour = ["alexnet32", "zfnet32", "resnet8", "googlenet"].iter().any(|m| run(m));
    let colour = if colour { Some((stripes(1024, 3), stripes(256, 4))) } else { None };
    if let Some(((x, y), (tx, ty))) = &colour {
        if run("alexnet32") {
            println!(
                "\nAlexNet32: SGD with momentum and weight decay, linear warm-up then cosine\n{}",
                AlexNet32::SUMMARY
            );
            let mut model = AlexNet32::with_seed(1);
            // He's initialisation: without batch normalisation, PyTorch's default init leaves
            // this deep ReLU stack unable to learn.
            cnn::init::he_uniform(&mut model, 1);
            let schedule = WarmUp::new(16, Cosine::new(0.02, 0.0, 3 * 1024 / 32 - 16)?)?;
            let mut opt = Sgd::new(0.02, 0.9)?.with_weight_decay(5e-4)?;
            train(&mut model, &mut opt, &schedule, (x, y), (tx, ty), 3, 32)?;
        }
        if run("zfnet32") {
            println!("\nZFNet32: SGD with momentum and weight decay, linear warm-up then cosine\n{}", ZFNet32::SUMMARY);
            let mut model = ZFNet32::with_seed(1);
            // He's initialisation, as for AlexNet32.
            cnn::init::he_uniform(&mut model, 1);
            let schedule = WarmUp::new(16, Cosine::new(0.02, 0.0, 3 * 1024 / 32 - 16)?)?;
            let mut opt = Sgd::new(0.02, 0.9)?.with_weight_decay(5e-4)?;
            train(&mut model, &mut opt, &schedule, (x, y), (tx, ty), 3, 32)?;
        }
        if run("resnet8") {
            println!("\nResNet8: SGD with momentum, exponential decay\n{}", ResNet8::SUMMARY);
            let mut model = ResNet8::with_seed(1);
            let schedule = Exponential::new(0.05, 0.99)?;
            train(&mut model, &mut Sgd::new(0.05, 0.9)?, &schedule, (x, y), (tx, ty), 3, 32)?;
        }
        if run("googlenet") {
            println!("\nGoogLeNetMini: Adam, cosine annealing\n{}", GoogLeNetMini::SUMMARY);
            let mut model = GoogLeNetMini::with_seed(1);
            let schedule = Cosine::new(2e-3, 0.0, 3 * 1024 / 32)?;
            train(&mut model, &mut Adam::new(2e-3)?, &schedule, (x, y), (tx, ty), 3, 32)?;
        }
    }
    Ok(())
}
