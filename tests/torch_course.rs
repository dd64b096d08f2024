//! The course's layers against PyTorch 2.15: a network with batch normalisation, residual
//! blocks (identity and projection), leaky ReLU, tanh, LRN, average and L2 pooling, built in
//! PyTorch from its own `PYTORCH` constant, initialised there and trained there with SGD
//! (Nesterov momentum, weight decay), Adam and AdamW. Its files load here, and the same steps
//! here give PyTorch's outputs, losses, parameters and running statistics.
//!
//! The layers before batch normalisation have no bias, as in PyTorch's ResNets: such a bias has
//! no effect on the loss, so its gradient is zero up to rounding, which Adam would turn into
//! full-size steps in a direction that rounding decides.
//!
//! The fixtures come from `python3 scripts/torch_course_fixture.py tests/fixtures`, which reads
//! the model from `tests/fixtures/course_net.py` (this model's `PYTORCH`, checked below).

#[path = "common/fixtures.rs"]
mod fixtures;

use cnn::io::load_weights;
use cnn::{cnn, Adam, AdamW, Model, Network, Optimizer, Sgd};
use fixtures::{check_pytorch_text, fixture, largest_difference, tensor};

cnn! {
    struct Course <
        input(12x12x3)
        conv(3x3, 8, pad=1, bias=false) batchnorm leaky_relu(0.1)
        residual(conv(3x3, 8, pad=1, bias=false) batchnorm relu conv(3x3, 8, pad=1, bias=false) batchnorm) relu
        lrn(3, alpha=0.01, k=1.5)
        residual(conv(3x3, 12, stride=2, pad=1) tanh, shortcut=conv(1x1, 12, stride=2, bias=false) batchnorm)
        avgpool(2) l2pool(3)
        fc(16, bias=false) batchnorm sigmoid
        fc(5) softmax
    >
}

/// A tensor of `course_io.safetensors` as f32 values (labels are stored as i64).
fn io(name: &str) -> Vec<f32> {
    tensor("course_io.safetensors", name)
}

fn torch_model(file: &str) -> Course {
    let mut model = Course::new();
    load_weights(&mut model, &fixture(file)).unwrap();
    model
}

/// With `CNN_WRITE_FIXTURE=1` set, writes the model's PyTorch form for the fixture script
/// instead of checking it.
#[test]
fn the_pytorch_module_is_the_one_pytorch_built() {
    check_pytorch_text("course_net.py", Course::PYTORCH);
}

#[test]
fn evaluation_gives_pytorchs_probabilities() {
    let mut model = torch_model("course_init.safetensors");
    let probs = model.forward(&io("x")).unwrap().to_vec();
    let worst = largest_difference(&probs, &io("eval_probs"));
    println!("largest difference from PyTorch's probabilities: {worst:e}");
    assert!(worst < 1e-5, "{worst}");
}

/// Runs `steps` training steps from PyTorch's initial weights and compares the losses and the
/// final parameters and buffers with PyTorch's.
fn train_like_pytorch(opt: &mut dyn Optimizer, steps: usize, losses: &[f32], after: &str) {
    let mut model = torch_model("course_init.safetensors");
    let x = io("x");
    let labels: Vec<usize> = io("labels").iter().map(|&l| l as usize).collect();
    for (step, &want) in losses.iter().enumerate().take(steps) {
        let loss = model.train_step(opt, &x, &labels).unwrap();
        assert!((loss - want).abs() < 1e-5, "step {step}: loss {loss}, PyTorch {want}");
    }
    let torch = torch_model(after);
    let (p, b) =
        (largest_difference(model.params(), torch.params()), largest_difference(model.buffers(), torch.buffers()));
    println!("{}: largest difference from PyTorch: parameters {p:e}, buffers {b:e}", opt.describe());
    assert!(p < 2e-5 && b < 2e-5, "parameters {p}, buffers {b}");
}

#[test]
fn sgd_nesterov_with_weight_decay_matches_pytorch() {
    let losses = io("losses");
    let mut opt = Sgd::new(0.05, 0.9).unwrap().with_nesterov(true).unwrap().with_weight_decay(0.01).unwrap();
    train_like_pytorch(&mut opt, 2, &losses[..2], "course_sgd.safetensors");
}

#[test]
fn adam_matches_pytorch() {
    let losses = io("losses");
    train_like_pytorch(&mut Adam::new(0.01).unwrap(), 3, &losses[2..5], "course_adam.safetensors");
}

#[test]
fn adamw_matches_pytorch() {
    let losses = io("losses");
    let mut opt = AdamW::new(0.01).unwrap().with_weight_decay(0.1).unwrap();
    train_like_pytorch(&mut opt, 3, &losses[5..8], "course_adamw.safetensors");
}
