//! Multi-task learning on the digits in `data/mnist`: one trunk of convolutions, two heads. One
//! head names the digit (10 classes), the other tells even from odd; the training loss is the
//! sum of both heads' losses, so the trunk learns features that serve both.
//!
//! ```text
//! cargo run --release --example multitask [-- EPOCHS]
//! ```
//!
//! Then the trunk and the digit head are frozen, the parity head is drawn anew and trained
//! alone on the trunk's features: transfer learning inside one model. The digit head's
//! accuracy stays exactly as it was.

use std::error::Error;
use std::path::Path;
use std::time::Instant;

use cnn::data::load_mnist;
use cnn::{cnn, Adam, MultiTask, Network, Targets};

cnn! {
    /// A LeNet-style trunk with a digit head and a parity head.
    pub struct Digits <
        input(28x28x1)
        conv(5x5, 6, pad=2) relu pool(2)
        conv(5x5, 16) relu pool(2)
        fc(120) relu
        heads(
            digit: fc(84) relu fc(10) softmax,
            parity: fc(16) relu fc(2) softmax loss(cross_entropy, weight=0.5)
        )
    >
}

const MEAN: f32 = 0.1307;
const STD: f32 = 0.3081;
const BATCH: usize = 64;

/// Trains `model` for one epoch on `x` against the digits `y` (the parity is `y % 2`); returns
/// the mean training loss.
fn epoch(model: &mut Digits, opt: &mut Adam, x: &[f32], y: &[usize], parity: &[usize]) -> Result<f32, cnn::Error> {
    let mut total = 0.0;
    let mut steps = 0;
    for ((xb, yb), pb) in x.chunks(BATCH * Digits::INPUT_LEN).zip(y.chunks(BATCH)).zip(parity.chunks(BATCH)) {
        total += model.train_step(opt, xb, DigitsHeads { digit: Targets::Labels(yb), parity: Targets::Labels(pb) })?;
        steps += 1;
    }
    Ok(total / steps as f32)
}

/// Prints each head's test accuracy.
fn report(model: &mut Digits, what: &str, x: &[f32], y: &[usize], parity: &[usize]) -> Result<(), cnn::Error> {
    let eval = model.evaluate(x, DigitsHeads { digit: Targets::Labels(y), parity: Targets::Labels(parity) }, 500)?;
    println!(
        "{what}: digit {:5.2} % (loss {:.4}), even/odd {:5.2} % (loss {:.4})",
        100.0 * eval.digit.accuracy,
        eval.digit.loss,
        100.0 * eval.parity.accuracy,
        eval.parity.loss
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let epochs: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse().map_err(|_| format!("EPOCHS must be a whole number, got `{arg}`"))?,
        None => 3,
    };
    println!("{}", Digits::SUMMARY);
    let (train, test) = load_mnist(Path::new("data/mnist"))?;
    let standardise = |v: &[f32]| v.iter().map(|x| (x - MEAN) / STD).collect::<Vec<f32>>();
    let (x, tx) = (standardise(&train.images), standardise(&test.images));
    let parity = |labels: &[usize]| labels.iter().map(|l| l % 2).collect::<Vec<usize>>();
    let (p, tp) = (parity(&train.labels), parity(&test.labels));

    let mut model = Digits::with_seed(1);
    let mut opt = Adam::new(0.001)?;
    let start = Instant::now();
    for e in 1..=epochs {
        let loss = epoch(&mut model, &mut opt, &x, &train.labels, &p)?;
        report(&mut model, &format!("epoch {e}, training loss {loss:.4}"), &tx, &test.labels, &tp)?;
    }
    println!("trained both heads in {:.1} s", start.elapsed().as_secs_f32());

    // Draw the parity head anew, freeze everything else, and train it alone.
    let head = &Digits::HEADS[1].layers;
    let (first, last) = (Digits::LAYERS[head.start], Digits::LAYERS[head.end - 1]);
    let span = first.offset..last.offset + last.params;
    let fresh = Digits::with_seed(99);
    model.params_mut()[span.clone()].copy_from_slice(&fresh.params()[span.clone()]);
    report(&mut model, "parity head drawn anew", &tx, &test.labels, &tp)?;
    model.freeze(Digits::trunk())?;
    model.freeze(Digits::HEADS[0].layers.clone())?;
    let kept = model.params().to_vec();
    let mut opt = Adam::new(0.001)?;
    let loss = epoch(&mut model, &mut opt, &x, &train.labels, &p)?;
    report(&mut model, &format!("parity head retrained on the frozen trunk (loss {loss:.4})"), &tx, &test.labels, &tp)?;
    let changed = (model.params().iter().zip(&kept).enumerate()).filter(|(_, (a, b))| a != b).map(|(i, _)| i);
    assert!(changed.into_iter().all(|i| span.contains(&i)), "only the parity head changed");
    Ok(())
}
