//! Graphs against PyTorch 2.15: concat blocks (one of them joining vectors), a depthwise-separable
//! residual block, padded max and average pooling, grouped convolutions, relu6 and a sparsity
//! penalty, built in PyTorch from this model's own `PYTORCH` constant, initialised there and
//! trained there with SGD (momentum, weight decay) and Adam, the penalty added to the loss as the
//! README shows. Its files load here; the same passes give PyTorch's outputs, gradient, losses and
//! parameters.
//!
//! The fixtures come from `python3 scripts/torch_graph_fixture.py tests/fixtures`, which reads the
//! model from `tests/fixtures/graph_net.py` (this model's `PYTORCH`, checked below).

#[path = "common/fixtures.rs"]
mod fixtures;

use cnn::io::load_weights;
use cnn::{cnn, Adam, Model, Network, Optimizer, Sgd};
use fixtures::{check_pytorch_text, fixture, gradient_difference, largest_difference, tensor};

cnn! {
    struct Graph <
        input(10x10x3)
        conv(3x3, 8, pad=1) relu6
        maxpool(3, stride=2, pad=1)
        concat(conv(1x1, 4), conv(1x1, 4) relu conv(3x3, 4, pad=1, groups=2), avgpool(3, stride=1, pad=1) conv(1x1, 4) tanh) relu
        sparsity(0.01)
        residual(conv(3x3, 12, pad=1, groups=12) relu conv(1x1, 12))
        concat(fc(6) tanh, fc(4))
        fc(4) softmax
    >
}

fn io(name: &str) -> Vec<f32> {
    tensor("graph_io.safetensors", name)
}

fn torch_model(file: &str) -> Graph {
    let mut model = Graph::new();
    load_weights(&mut model, &fixture(file)).unwrap();
    model
}

/// With `CNN_WRITE_FIXTURE=1` set, writes the model's PyTorch form for the fixture script
/// instead of checking it.
#[test]
fn the_pytorch_module_is_the_one_pytorch_built() {
    check_pytorch_text("graph_net.py", Graph::PYTORCH);
}

#[test]
fn evaluation_gives_pytorchs_probabilities() {
    let mut model = torch_model("graph_init.safetensors");
    let probs = model.forward(&io("x")).unwrap().to_vec();
    let worst = largest_difference(&probs, &io("eval_probs"));
    println!("largest difference from PyTorch's probabilities: {worst:e}");
    assert!(worst < 1e-5, "{worst}");
}

#[test]
fn the_gradient_is_pytorchs() {
    let mut model = torch_model("graph_init.safetensors");
    let labels: Vec<usize> = io("labels").iter().map(|&l| l as usize).collect();
    let loss = model.loss_and_grad(&io("x"), &labels).unwrap();
    assert!((loss - io("losses")[0]).abs() < 1e-5, "loss {loss}, PyTorch {}", io("losses")[0]);
    let worst = gradient_difference(&model, "graph_grads.safetensors");
    println!("largest difference from PyTorch's gradient, relative to each tensor's largest: {worst:e}");
    assert!(worst < 1e-4, "{worst}");
}

/// Runs 3 training steps from PyTorch's initial weights and compares the losses and the final
/// parameters with PyTorch's.
fn train_like_pytorch(opt: &mut dyn Optimizer, losses: &[f32], after: &str) {
    let mut model = torch_model("graph_init.safetensors");
    let x = io("x");
    let labels: Vec<usize> = io("labels").iter().map(|&l| l as usize).collect();
    for (step, &want) in losses.iter().enumerate() {
        let loss = model.train_step(opt, &x, &labels).unwrap();
        assert!((loss - want).abs() < 1e-5, "step {step}: loss {loss}, PyTorch {want}");
    }
    let p = largest_difference(model.params(), torch_model(after).params());
    println!("{}: largest difference from PyTorch's parameters {p:e}", opt.describe());
    assert!(p < 2e-5, "parameters {p}");
}

#[test]
fn sgd_with_momentum_and_weight_decay_matches_pytorch() {
    let mut opt = Sgd::new(0.05, 0.9).unwrap().with_weight_decay(0.01).unwrap();
    train_like_pytorch(&mut opt, &io("losses")[..3], "graph_sgd.safetensors");
}

#[test]
fn adam_matches_pytorch() {
    train_like_pytorch(&mut Adam::new(0.01).unwrap(), &io("losses")[3..6], "graph_adam.safetensors");
}
