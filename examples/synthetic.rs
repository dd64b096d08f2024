//! Trains a small convolutional network on a synthetic image task and prints the loss falling.
//!
//! The task: 16x16 grey images, each with one faint line over strong noise; the class is the line's
//! orientation (horizontal, vertical, diagonal, anti-diagonal). No data to download.
//!
//! ```text
//! cargo run --release --example synthetic [-- EPOCHS]
//! ```

use std::time::Instant;

use cnn::{cnn, Model, Network, Optimizer, Sgd};

cnn! {
    /// A LeNet-style network for 16x16 grey images and 4 classes.
    pub struct LineNet <
        input(16x16x1)
        conv(5x5, 8, pad=2) relu pool(2)
        conv(3x3, 16, pad=1) relu pool(2)
        fc(32) relu fc(4) softmax
    >
}

const SIDE: usize = 16;
const CLASSES: [&str; 4] = ["horizontal", "vertical", "diagonal", "anti-diagonal"];

/// `n` images with a line at a random place, over uniform noise, and their classes.
fn lines(n: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut x = vec![0.0; n * SIDE * SIDE];
    let mut y = Vec::with_capacity(n);
    for img in x.chunks_exact_mut(SIDE * SIDE) {
        let class = (next() * 4.0) as usize % 4;
        y.push(class);
        img.iter_mut().for_each(|v| *v = 0.9 * next());
        let at = 2 + (next() * (SIDE - 4) as f32) as usize;
        for i in 0..SIDE {
            let (r, c) = match class {
                0 => (at, i),
                1 => (i, at),
                2 => (i, i),
                _ => (i, SIDE - 1 - i),
            };
            img[r * SIDE + c] = 0.6 + 0.4 * next();
        }
    }
    (x, y)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let epochs: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse().map_err(|_| format!("EPOCHS must be a whole number, got `{arg}`"))?,
        None => 10,
    };
    println!("{}", LineNet::SUMMARY);
    let (train_x, train_y) = lines(2048, 1);
    let (test_x, test_y) = lines(512, 2);
    let mut model = LineNet::with_seed(42);
    let mut opt = Sgd::new(0.05, 0.9)?;
    let batch = 32;
    let start = Instant::now();
    for epoch in 1..=epochs {
        let mut total = 0.0;
        let mut steps = 0;
        for (x, y) in train_x.chunks(batch * LineNet::INPUT_LEN).zip(train_y.chunks(batch)) {
            total += model.train_step(&mut opt, x, y)?;
            steps += 1;
        }
        let test = model.evaluate(&test_x, &test_y, 256)?;
        println!(
            "epoch {epoch:>2}  lr {:.4}  train loss {:.4}  test loss {:.4}  test accuracy {:5.1} %",
            opt.learning_rate(),
            total / steps as f32,
            test.loss,
            100.0 * test.accuracy
        );
        // Learning-rate decay: a tenth less each epoch.
        opt.set_learning_rate(opt.learning_rate() * 0.9)?;
    }
    let seconds = start.elapsed().as_secs_f64();
    println!("{} epochs in {seconds:.2} s ({:.0} samples/s)", epochs, (epochs * train_y.len()) as f64 / seconds);
    let sample: &[f32; SIDE * SIDE] = test_x[..SIDE * SIDE].try_into()?;
    let probs = model.probabilities(sample);
    println!("first test image: {} (true: {}), p = {probs:.3?}", CLASSES[model.classify(sample)], CLASSES[test_y[0]]);
    Ok(())
}
