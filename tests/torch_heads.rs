//! A multi-task model against PyTorch 2.15: a trunk with a grouped residual block and three
//! heads (softmax with cross-entropy, sigmoid with binary cross-entropy and a sparsity penalty,
//! a linear output with the mean squared error), two of them weighted. PyTorch builds it from
//! the model's own `PYTORCH` constant, initialises it and trains it with SGD (momentum, weight
//! decay) and Adam on the weighted sum of the heads' losses; its files load here, and the same
//! passes give PyTorch's outputs, gradient, losses and parameters.
//!
//! The fixtures come from `python3 scripts/torch_heads_fixture.py tests/fixtures`, which reads the
//! model from `tests/fixtures/heads_net.py` (this model's `PYTORCH`, checked below).

#[path = "common/fixtures.rs"]
mod fixtures;

use cnn::io::load_weights;
use cnn::{cnn, Adam, MultiTask, Network, Optimizer, Sgd, Targets};
use fixtures::{check_pytorch_text, fixture, gradient_difference, largest_difference, tensor};

cnn! {
    struct Tasks <
        input(8x8x2)
        conv(3x3, 6, pad=1) relu
        maxpool(2)
        residual(conv(3x3, 6, pad=1, groups=3) relu conv(1x1, 6))
        heads(
            digit: fc(16) relu fc(5) softmax,
            flags: conv(3x3, 4) sparsity(0.01) fc(3) sigmoid loss(bce, weight=0.5),
            size: fc(2) loss(mse, weight=2)
        )
    >
}

fn io(name: &str) -> Vec<f32> {
    tensor("heads_io.safetensors", name)
}

fn torch_model(file: &str) -> Tasks {
    let mut model = Tasks::new();
    load_weights(&mut model, &fixture(file)).unwrap();
    model
}

/// The batch's targets: digit labels, 0/1 flags and sizes.
struct Data {
    x: Vec<f32>,
    digits: Vec<usize>,
    flags: Vec<f32>,
    sizes: Vec<f32>,
}

impl Data {
    fn load() -> Self {
        let digits = io("digits").iter().map(|&l| l as usize).collect();
        Data { x: io("x"), digits, flags: io("flags"), sizes: io("sizes") }
    }

    fn targets(&self) -> TasksHeads<Targets<'_>> {
        TasksHeads {
            digit: Targets::Labels(&self.digits),
            flags: Targets::Dense(&self.flags),
            size: Targets::Dense(&self.sizes),
        }
    }
}

/// With `CNN_WRITE_FIXTURE=1` set, writes the model's PyTorch form for the fixture script
/// instead of checking it.
#[test]
fn the_pytorch_module_is_the_one_pytorch_built() {
    check_pytorch_text("heads_net.py", Tasks::PYTORCH);
}

#[test]
fn evaluation_gives_pytorchs_outputs_for_every_head() {
    let mut model = torch_model("heads_init.safetensors");
    let out = model.forward(&io("x")).unwrap();
    for (name, ours) in [("digit", out.digit), ("flags", out.flags), ("size", out.size)] {
        let worst = largest_difference(ours, &io(&format!("eval_{name}")));
        println!("head `{name}`: largest difference from PyTorch's outputs: {worst:e}");
        assert!(worst < 1e-5, "{name}: {worst}");
    }
}

#[test]
fn the_gradient_is_pytorchs() {
    let mut model = torch_model("heads_init.safetensors");
    let data = Data::load();
    let loss = model.loss_and_grad(&data.x, data.targets()).unwrap();
    assert!((loss - io("losses")[0]).abs() < 1e-5, "loss {loss}, PyTorch {}", io("losses")[0]);
    let worst = gradient_difference(&model, "heads_grads.safetensors");
    println!("largest difference from PyTorch's gradient, relative to each tensor's largest: {worst:e}");
    assert!(worst < 1e-4, "{worst}");
}

/// Runs 3 training steps from PyTorch's initial weights and compares the losses and the final
/// parameters with PyTorch's.
fn train_like_pytorch(opt: &mut dyn Optimizer, losses: &[f32], after: &str) {
    let mut model = torch_model("heads_init.safetensors");
    let data = Data::load();
    for (step, &want) in losses.iter().enumerate() {
        let loss = model.train_step(opt, &data.x, data.targets()).unwrap();
        assert!((loss - want).abs() < 1e-5, "step {step}: loss {loss}, PyTorch {want}");
    }
    let p = largest_difference(model.params(), torch_model(after).params());
    println!("{}: largest difference from PyTorch's parameters {p:e}", opt.describe());
    assert!(p < 2e-5, "parameters {p}");
}

#[test]
fn sgd_with_momentum_and_weight_decay_matches_pytorch() {
    let mut opt = Sgd::new(0.01, 0.9).unwrap().with_weight_decay(0.01).unwrap();
    train_like_pytorch(&mut opt, &io("losses")[..3], "heads_sgd.safetensors");
}

#[test]
fn adam_matches_pytorch() {
    train_like_pytorch(&mut Adam::new(0.01).unwrap(), &io("losses")[3..6], "heads_adam.safetensors");
}
