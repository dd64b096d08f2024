//! Transfer learning: reuse the convolutional layers of a trained LeNet-5 and train only a new
//! classifier head, here for a new task: telling even digits from odd ones.
//!
//! ```text
//! cargo run --release --example lenet5      # trains and saves out/lenet5/lenet5.safetensors
//! cargo run --release --example transfer
//! ```
//!
//! The new model has the same convolutional layers and a new head. The trained convolution
//! weights are copied in (layer by layer, through `layer_params`), then frozen: each step
//! computes the full gradient but the optimizer updates only the parameters from the first
//! fully connected layer on.

use std::error::Error;
use std::path::Path;

use cnn::data::load_mnist;
use cnn::io::load_weights;
use cnn::{cnn, Model, Network, Sgd};

cnn! {
    /// The model the `lenet5` example trained.
    pub struct LeNet5 <
        input(28x28x1)
        conv(5x5, 6, pad=2) relu pool(2)
        conv(5x5, 16) relu pool(2)
        fc(120) relu fc(84) relu fc(10) softmax
    >
}

cnn! {
    /// The same features, a new head with two classes: even, odd.
    pub struct Parity <
        input(28x28x1)
        conv(5x5, 6, pad=2) relu pool(2)
        conv(5x5, 16) relu pool(2)
        fc(32) relu fc(2) softmax
    >
}

const MEAN: f32 = 0.1307;
const STD: f32 = 0.3081;

fn main() -> Result<(), Box<dyn Error>> {
    let weights = Path::new("out/lenet5/lenet5.safetensors");
    let mut source = LeNet5::new();
    load_weights(&mut source, weights)
        .map_err(|e| format!("{e}\n(run `cargo run --release --example lenet5` first)"))?;

    let mut model = Parity::with_seed(7);
    // Copy the convolutional layers: LAYERS 1 and 4 in both models.
    for layer in [1, 4] {
        let info = Parity::LAYERS[layer];
        let from = source.layer_params(layer).ok_or("LeNet5 has this layer")?.to_vec();
        model.params_mut()[info.offset..info.offset + info.params].copy_from_slice(&from);
    }
    // Everything before the first fully connected layer stays frozen.
    let head = Parity::LAYERS.iter().position(|l| l.layer.starts_with("fc")).ok_or("a head")?;
    model.freeze(..head)?;
    let first_trainable = Parity::LAYERS[head].offset;
    println!("{}frozen: layers 0..{head}, {first_trainable} of {} parameters", Parity::SUMMARY, Parity::PARAM_COUNT);

    let (train, test) = load_mnist(Path::new("data/mnist"))?;
    let standardise = |v: &[f32]| v.iter().map(|x| (x - MEAN) / STD).collect::<Vec<f32>>();
    let (x, tx) = (standardise(&train.images), standardise(&test.images));
    let parity = |labels: &[usize]| labels.iter().map(|l| l % 2).collect::<Vec<usize>>();
    let (y, ty) = (parity(&train.labels), parity(&test.labels));
    let frozen_before = model.params()[..first_trainable].to_vec();

    let mut opt = Sgd::new(0.02, 0.9)?;
    for epoch in 1..=3 {
        for (xb, yb) in x.chunks(64 * Parity::INPUT_LEN).zip(y.chunks(64)) {
            model.train_step(&mut opt, xb, yb)?;
        }
        let eval = model.evaluate(&tx, &ty, 500)?;
        println!("epoch {epoch}: even/odd test accuracy {:.2} %", 100.0 * eval.accuracy);
    }
    assert_eq!(model.params()[..first_trainable], frozen_before[..], "frozen layers stayed as they were");
    Ok(())
}
