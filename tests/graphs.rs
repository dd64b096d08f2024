//! Models with branches: `concat` blocks (GoogLeNet's inception modules), nested in and around
//! residual blocks, checked through whole generated models.

mod common;

use cnn::{cnn, Model, Network, Sgd, Targets};
use common::{gradient_error, Lcg};

cnn! {
    /// Two inception-like modules, one nested in a residual block, with smooth activations so
    /// that the finite differences are clean.
    struct Branches <
        input(6x6x2)
        concat(conv(1x1, 2), conv(1x1, 2) tanh conv(3x3, 3, pad=1), avgpool(3, stride=1) conv(1x1, 2) tanh conv(3x3, 1, pad=2)) sigmoid
        residual(concat(conv(3x3, 3, pad=1) tanh, concat(conv(1x1, 2), conv(1x1, 1)) sigmoid))
        concat(fc(3) tanh, fc(2))
        fc(3) softmax
    >
}

cnn! {
    /// GoogLeNet's and MobileNet's pieces: padded pooling in the stem, in a branch and at the
    /// end, a depthwise and a grouped convolution, relu6 and a sparsity penalty. Max pooling
    /// reads tanh outputs: after relu6, its windows would hold ties of zeros, kinks that finite
    /// differences cannot follow.
    struct Mobile <
        input(7x7x4)
        avgpool(3, stride=1, pad=1)
        conv(3x3, 4, pad=1, groups=4) tanh
        concat(conv(1x1, 4, groups=2), maxpool(3, stride=1, pad=1) conv(1x1, 2)) sigmoid
        sparsity(0.05)
        conv(3x3, 6, stride=2, pad=1, groups=3) relu6
        avgpool(3, stride=2, pad=1)
        fc(3) softmax
    >
}

cnn! {
    /// A concat whose branches read a hidden layer (whose gradient then sums three parts).
    struct Trunk < input(5) fc(4) tanh concat(fc(3), fc(2) sigmoid, tanh) fc(2) >
}

#[test]
fn concat_blocks_have_the_gradient_of_their_loss() {
    let mut model = Branches::with_seed(7);
    let x = Lcg(8).vec(3 * Branches::INPUT_LEN);
    let err = gradient_error(&mut model, &x, Targets::Labels(&[2, 0, 1]));
    assert!(err < 2e-2, "Branches: max relative error {err}");
    let mut model = Trunk::with_seed(9);
    let x = Lcg(10).vec(4 * Trunk::INPUT_LEN);
    let targets = Lcg(11).vec(4 * Trunk::OUTPUT_LEN);
    let err = gradient_error(&mut model, &x, Targets::Dense(&targets));
    assert!(err < 1e-2, "Trunk: max relative error {err}");
}

#[test]
fn padded_pools_groups_relu6_and_sparsity_have_the_gradient_of_their_loss() {
    let mut model = Mobile::with_seed(5);
    let x = Lcg(6).vec(4 * Mobile::INPUT_LEN);
    let err = common::gradient_error_above(&mut model, &x, Targets::Labels(&[0, 2, 1, 1]), 3e-2);
    assert!(err < 2e-2, "Mobile: max relative error {err}");
    assert_eq!(Mobile::LAYERS[2].params, 4 * 9 + 4, "a depthwise filter reads one channel");
    assert_eq!(Mobile::LAYERS[10].output, cnn::Shape::volume(4, 4, 6));
    assert_eq!(Mobile::LAYERS[12].output, cnn::Shape::volume(2, 2, 6));
}

#[test]
fn the_sparsity_penalty_is_in_the_training_loss_only() {
    let mut model = Mobile::with_seed(5);
    let x = Lcg(7).vec(4 * Mobile::INPUT_LEN);
    let labels = [0, 2, 1, 1];
    let train = model.loss_and_grad(&x, &labels).unwrap();
    let eval = model.evaluate(&x, &labels, 4).unwrap().loss;
    // The sparsity layer reads sigmoid outputs in (0, 1): its penalty is 0.05 times their mean.
    let penalty = train - eval;
    assert!(penalty > 0.0 && penalty < 0.05, "training {train}, evaluation {eval}");
    assert!(Mobile::PYTORCH.contains("Sparsity(0.05)"), "{}", Mobile::PYTORCH);
    assert!(
        Mobile::PYTORCH.contains("torch.nn.Conv2d(4, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), groups=4)")
    );
    assert!(Mobile::PYTORCH.contains("torch.nn.ReLU6()"));
    assert!(Mobile::PYTORCH.contains("torch.nn.AvgPool2d(kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"));
}

#[test]
fn concat_blocks_describe_their_branches() {
    let rows: Vec<(&str, &str, usize)> = Branches::LAYERS.iter().map(|l| (l.layer, l.path, l.depth)).collect();
    assert_eq!(rows[1], ("concat", "0", 0));
    assert_eq!(rows[2], ("branch 1: conv(1x1, 2)", "0.branches.0.0", 1));
    assert_eq!(rows[5], ("branch 2: conv(3x3, 3, pad=1)", "0.branches.1.2", 1));
    assert_eq!(Branches::LAYERS[1].output, cnn::Shape::volume(6, 6, 6));
    assert!(Branches::SUMMARY.contains("  branch 3: avgpool(3, stride=1)"), "{}", Branches::SUMMARY);
    assert!(Branches::PYTORCH.contains("class Concat(torch.nn.Module):"), "{}", Branches::PYTORCH);
    assert!(Branches::PYTORCH.contains("class Residual(torch.nn.Module):"), "{}", Branches::PYTORCH);
    assert!(Branches::DSL.starts_with("input(6x6x2) concat(conv(1x1, 2), conv(1x1, 2) tanh"), "{}", Branches::DSL);
    let names: Vec<&str> = Branches::TENSORS.iter().map(|t| t.name).collect();
    assert!(names.contains(&"2.body.0.branches.1.0.branches.1.0.weight"), "{names:?}");
    assert_eq!(Trunk::LAYERS[3].output, cnn::Shape::vector(9));
}

#[test]
fn a_frozen_concat_row_freezes_every_branch() {
    let mut model = Branches::with_seed(1);
    let (x, labels) = (Lcg(2).vec(4 * Branches::INPUT_LEN), [0, 1, 2, 1]);
    let block = &Branches::LAYERS[1];
    let before = model.params().to_vec();
    model.freeze(1..2).unwrap();
    let mut opt = Sgd::new(0.1, 0.0).unwrap();
    model.train_step(&mut opt, &x, &labels).unwrap();
    let after = model.params();
    assert_eq!(after[block.offset..block.offset + block.params], before[block.offset..block.offset + block.params]);
    assert_ne!(after[block.offset + block.params..], before[block.offset + block.params..]);
}

#[test]
fn a_concat_model_learns() {
    let mut model = Trunk::with_seed(3);
    let x = Lcg(4).vec(16 * Trunk::INPUT_LEN);
    let targets: Vec<f32> = x.chunks(5).flat_map(|s| [s[0] * 0.5, s[1] - s[2]]).collect();
    let mut opt = Sgd::new(0.1, 0.0).unwrap();
    let first = model.train_step_targets(&mut opt, &x, &targets).unwrap();
    let mut last = first;
    for _ in 0..200 {
        last = model.train_step_targets(&mut opt, &x, &targets).unwrap();
    }
    assert!(last < first * 0.5, "loss {first} -> {last}");
}

#[test]
fn branches_train_to_the_same_bits_on_any_number_of_threads() {
    let x = Lcg(4).vec(37 * Mobile::INPUT_LEN);
    let labels: Vec<usize> = (0..37).map(|i| i % 3).collect();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut model = Mobile::with_seed(8);
            let mut opt = cnn::Adam::new(0.01).unwrap();
            for _ in 0..3 {
                model.train_step(&mut opt, &x, &labels).unwrap();
            }
            model.params().iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
        })
    };
    let one = run(1);
    assert_eq!(run(2), one);
    assert_eq!(run(3), one);
}
