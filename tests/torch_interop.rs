//! Files written by PyTorch 2.15 load here and give PyTorch's numbers: its outputs for the same
//! weights, and its update after one SGD step (so the gradients agree too).
//!
//! The fixtures and the expected values come from `scripts/torch_fixture.py` (run with
//! `python3 scripts/torch_fixture.py data/mnist tests/fixtures`), which printed:
//!
//! ```text
//! tensor([[0.000424, 0.001441, 0.978053, 0.003177, 0.000398, 0.000602, 0.001557, 0.000261, 0.013743, 0.000344],
//!         [0.004715, 0.004012, 0.003505, 0.027183, 0.047247, 0.050514, 0.000523, 0.107030, 0.020068, 0.735203],
//!         [0.000910, 0.014737, 0.031124, 0.005702, 0.028367, 0.002415, 0.906305, 0.001307, 0.007699, 0.001435],
//!         [0.006570, 0.344002, 0.322663, 0.007902, 0.000638, 0.012409, 0.011982, 0.000832, 0.291314, 0.001687]])
//! loss of the step: 0.329091
//! ```

use std::path::{Path, PathBuf};

use cnn::data::load_mnist;
use cnn::io::load_weights;
use cnn::{cnn, Model, Network, Sgd};

cnn! {
    struct LeNet5 <
        input(28x28x1)
        conv(5x5, 6, pad=2) relu pool(2)
        conv(5x5, 16) relu pool(2)
        fc(120) relu fc(84) relu fc(10) softmax
    >
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn standardise(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| (x - 0.1307) / 0.3081).collect()
}

fn torch_model(file: &str) -> LeNet5 {
    let mut model = LeNet5::new();
    load_weights(&mut model, &root().join("tests/fixtures").join(file)).unwrap();
    model
}

#[test]
fn pytorch_weights_give_pytorchs_probabilities() {
    let (_, test) = load_mnist(&root().join("data/mnist")).unwrap();
    let mut model = torch_model("torch_lenet5.safetensors");
    #[rustfmt::skip]
    let torch: [[f32; 10]; 4] = [
        [0.000424, 0.001441, 0.978053, 0.003177, 0.000398, 0.000602, 0.001557, 0.000261, 0.013743, 0.000344],
        [0.004715, 0.004012, 0.003505, 0.027183, 0.047247, 0.050514, 0.000523, 0.107030, 0.020068, 0.735203],
        [0.000910, 0.014737, 0.031124, 0.005702, 0.028367, 0.002415, 0.906305, 0.001307, 0.007699, 0.001435],
        [0.006570, 0.344002, 0.322663, 0.007902, 0.000638, 0.012409, 0.011982, 0.000832, 0.291314, 0.001687],
    ];
    let probs = model.forward(&standardise(&test.images[..4 * 784])).unwrap().to_vec();
    for (s, (ours, theirs)) in probs.chunks(10).zip(&torch).enumerate() {
        for (d, (a, b)) in ours.iter().zip(theirs).enumerate() {
            assert!((a - b).abs() < 2e-6, "sample {s}, class {d}: {a} here, {b} in PyTorch");
        }
    }
}

#[test]
fn one_sgd_step_matches_pytorchs_update() {
    let (train, _) = load_mnist(Path::new(&root().join("data/mnist"))).unwrap();
    let mut model = torch_model("torch_lenet5.safetensors");
    let after = torch_model("torch_lenet5_step.safetensors");
    let moved = model.params().iter().zip(after.params()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(moved > 1e-3, "the step must move the parameters for this check to mean anything");
    let x = standardise(&train.images[500 * 784..532 * 784]);
    let mut opt = Sgd::new(0.1, 0.0).unwrap();
    let loss = model.train_step(&mut opt, &x, &train.labels[500..532]).unwrap();
    assert!((loss - 0.329091).abs() < 1e-5, "loss {loss}, PyTorch 0.329091");
    let worst = model.params().iter().zip(after.params()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    println!("largest difference from PyTorch's parameters after the step: {worst:e}");
    assert!(worst < 1e-5, "largest difference {worst}");
}
