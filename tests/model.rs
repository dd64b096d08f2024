//! The generated model end to end: constants, forward, gradients, training, determinism and
//! errors, on models declared inside the tests.

mod common;

use cnn::__private::forward_pair_unchecked;
use cnn::{cnn, Error, Model, Network, Optimizer, Sgd, Shape};
use common::{gradient_error, lines, Lcg};

cnn! {
    /// LeNet-style classifier for 28x28 grey digits.
    pub struct LeNet5 <
        input(28x28x1)
        conv(5x5, 6, pad=2) relu pool(2)
        conv(5x5, 16) relu pool(2)
        fc(120) relu fc(84) relu fc(10) softmax
    >
}

#[test]
fn lenet5_constants_match_the_classic_model() {
    assert_eq!(LeNet5::INPUT, Shape::volume(28, 28, 1));
    assert_eq!(LeNet5::INPUT_LEN, 784);
    assert_eq!(LeNet5::OUTPUT_LEN, 10);
    // 156 + 2,416 + 48,120 + 10,164 + 850, as torch counts it.
    assert_eq!(LeNet5::PARAM_COUNT, 61_706);
    // 2·(6·25·784 + 16·150·100 + 400·120 + 120·84 + 84·10)
    assert_eq!(LeNet5::FLOPS_PER_SAMPLE, 833_040);
    let shapes: Vec<String> = LeNet5::LAYERS.iter().map(|l| l.output.to_string()).collect();
    assert_eq!(
        shapes,
        [
            "28x28x1", "28x28x6", "28x28x6", "14x14x6", "10x10x16", "10x10x16", "5x5x16", "120", "120", "84", "84",
            "10", "10"
        ]
    );
    assert_eq!(LeNet5::LAYERS.iter().map(|l| l.params).sum::<usize>(), LeNet5::PARAM_COUNT);
    assert_eq!(LeNet5::LAYERS[1].layer, "conv(5x5, 6, pad=2)");
    // Per-layer views into the flat buffers: fc(84) holds 120·84 weights then 84 biases.
    let offsets: Vec<usize> = LeNet5::LAYERS.iter().filter(|l| l.params > 0).map(|l| l.offset).collect();
    assert_eq!(offsets, [0, 156, 2_572, 50_692, 60_856]);
    assert!(LeNet5::SUMMARY.contains("Total params: 61,706"), "{}", LeNet5::SUMMARY);
    assert!(LeNet5::PYTORCH.contains("torch.nn.Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))"));
    assert!(LeNet5::PYTORCH.contains("torch.nn.Flatten(),\n    torch.nn.Linear(400, 120)"));
    assert_eq!(LeNet5::DSL.split(' ').next(), Some("input(28x28x1)"));
    let model = LeNet5::new();
    assert_eq!(model.params().len(), 61_706);
    assert_eq!(format!("{model:?}"), "LeNet5 { params: 61706, .. }");
    assert_eq!(model.layer_params(9).unwrap(), &model.params()[50_692..60_856]);
    assert_eq!(model.layer_params(2).unwrap().len(), 0);
    assert_eq!(model.layer_grads(1).unwrap().len(), 156);
    assert!(model.layer_params(13).is_none());
    // PyTorch's state_dict of the equivalent Sequential (Flatten is module 6).
    let tensors: Vec<(&str, &[usize], usize)> = LeNet5::TENSORS.iter().map(|t| (t.name, t.shape, t.offset)).collect();
    assert_eq!(
        tensors,
        [
            ("0.weight", &[6, 1, 5, 5][..], 0),
            ("0.bias", &[6][..], 150),
            ("3.weight", &[16, 6, 5, 5][..], 156),
            ("3.bias", &[16][..], 2_556),
            ("7.weight", &[120, 400][..], 2_572),
            ("7.bias", &[120][..], 50_572),
            ("9.weight", &[84, 120][..], 50_692),
            ("9.bias", &[84][..], 60_772),
            ("11.weight", &[10, 84][..], 60_856),
            ("11.bias", &[10][..], 61_696),
        ]
    );
}

#[test]
fn initialisation_follows_pytorch_bounds_and_the_seed() {
    let model = LeNet5::with_seed(3);
    // conv1: fan_in 25, so weights and biases in (-0.2, 0.2); fc(10): fan_in 84.
    assert!(model.params()[..156].iter().all(|v| v.abs() < 0.2));
    assert!(model.params()[..150].iter().any(|v| v.abs() > 0.15));
    let fc3 = &model.params()[61_706 - 850..];
    assert!(fc3.iter().all(|v| v.abs() < 1.0 / 84f32.sqrt()));
    assert_eq!(LeNet5::with_seed(3).params(), model.params());
    assert_ne!(LeNet5::with_seed(4).params(), model.params());
    assert_eq!(LeNet5::default().params(), LeNet5::new().params());
}

#[test]
fn forward_gives_probabilities_independent_of_the_batch() {
    let mut model = LeNet5::with_seed(1);
    let x = Lcg(5).vec(784 * 3);
    let batch = model.forward(&x).unwrap().to_vec();
    assert_eq!(batch.len(), 30);
    for (s, probs) in batch.chunks(10).enumerate() {
        assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        let one: &[f32; 784] = x[s * 784..(s + 1) * 784].try_into().unwrap();
        let single = model.probabilities(one);
        for (a, b) in single.iter().zip(probs) {
            assert!((a - b).abs() < 1e-6, "sample {s}: {a} vs {b}");
        }
        assert_eq!(model.classify(one), model.predict(&x[s * 784..(s + 1) * 784]).unwrap()[0]);
    }
}

cnn!(struct Tagger < input(6) fc(8) tanh fc(3) sigmoid >);
cnn!(struct Block < input(6) fc(6) relu residual(fc(6) relu fc(6)) loss(mse) >);
cnn!(struct Identity < input(4) softmax >);

/// The logits the runtime reads from the workspace after an evaluation pass are the last
/// layer's: the output function turns them into the outputs, and the evaluation loss computed
/// from them is the training loss of the same batch.
fn check_logits<M: Model>(mut model: M, seed: u64) {
    let n = 3;
    let x = Lcg(seed).vec(n * M::INPUT_LEN);
    let targets: Vec<f32> = (0..n * M::OUTPUT_LEN).map(|i| f32::from(u8::from(i % 3 == 0))).collect();
    let (z, out) = forward_pair_unchecked(&mut model, n, &x);
    let (z, out) = (z.to_vec(), out.to_vec());
    let mut expected = vec![0.0; n * M::OUTPUT_LEN];
    M::LOSS.output(n, M::OUTPUT_LEN, &z, &mut expected);
    assert_eq!(out, expected, "{}", M::DSL);
    assert_eq!(model.forward(&x).unwrap(), out);
    let evaluated = model.evaluate_targets(&x, &targets, n).unwrap().loss;
    let trained = model.loss_and_grad_targets(&x, &targets).unwrap();
    assert!((evaluated - trained).abs() <= 1e-6 * trained.abs().max(1.0), "{}: {evaluated} vs {trained}", M::DSL);
}

#[test]
fn the_logits_are_the_last_layers_outputs() {
    check_logits(Odd::with_seed(1), 2);
    check_logits(Tagger::with_seed(3), 4);
    check_logits(Block::with_seed(5), 6);
    check_logits(Identity::new(), 7);
}

cnn! {
    /// Strides, padding, a non-square input, overlapping pooling and a standalone ReLU.
    struct Odd <
        input(9x7x2)
        conv(3x3, 3, stride=2, pad=1) relu
        maxpool(2, stride=1) relu
        conv(2x2, 4) relu
        fc(5) relu fc(3) softmax
    >
}

#[test]
fn whole_network_gradient_matches_finite_differences() {
    assert_eq!(Odd::LAYERS[1].output, Shape::volume(5, 4, 3));
    assert_eq!(Odd::LAYERS[3].output, Shape::volume(4, 3, 3));
    let mut model = Odd::with_seed(2);
    // Larger weights than the default, so that the loss is far from flat.
    model.params_mut().iter_mut().for_each(|p| *p *= 3.0);
    let x = Lcg(9).vec(4 * Odd::INPUT_LEN);
    let err = gradient_error(&mut model, &x, cnn::Targets::Labels(&[0, 2, 1, 2]));
    println!("Odd: max relative error {err:e} over {} parameters", Odd::PARAM_COUNT);
    assert!(err < 2e-2, "max relative error {err}");

    // LeNet-5 is too large for one loss difference per parameter, and the loss (an f32 near
    // 2.3) moves by mere ulps when one weight moves. So each layer's gradient g is checked
    // along its own direction, where the loss changes fastest: the slope of the loss along
    // g/|g| must be |g|. A gradient written to the wrong layer or in the wrong order fails it.
    let mut lenet = LeNet5::with_seed(4);
    let x = Lcg(10).vec(4 * 784);
    let labels = [7, 1, 0, 3];
    lenet.loss_and_grad(&x, &labels).unwrap();
    let grads = lenet.grads().to_vec();
    let base = lenet.params().to_vec();
    let mut start = 0;
    for layer in LeNet5::LAYERS.iter().filter(|l| l.params > 0) {
        let range = start..start + layer.params;
        start += layer.params;
        let g = &grads[range.clone()];
        let norm = g.iter().map(|v| (v * v) as f64).sum::<f64>().sqrt();
        // Small enough that few ReLUs change sign within the step, large enough that the
        // loss's f32 rounding costs about 0.1 %.
        let h = 2e-4;
        let mut at = |sign: f64| {
            let p = lenet.params_mut();
            p.copy_from_slice(&base);
            p[range.clone()].iter_mut().zip(g).for_each(|(p, g)| *p += (sign * h * *g as f64 / norm) as f32);
            lenet.loss_and_grad(&x, &labels).unwrap() as f64
        };
        let numeric = (at(1.0) - at(-1.0)) / (2.0 * h);
        let err = (numeric - norm).abs() / (numeric.abs() + norm);
        println!("LeNet5 {}: slope along the gradient {numeric:e}, |g| {norm:e}, relative error {err:e}", layer.layer);
        assert!(err < 1e-2, "{}: relative error {err}", layer.layer);
    }
}

cnn! {
    struct LineNet <
        input(12x12x1)
        conv(3x3, 8, pad=1) relu pool(2)
        conv(3x3, 8) relu pool(2)
        fc(16) relu fc(4) softmax
    >
}

#[test]
fn training_learns_a_synthetic_task() {
    let (x, y) = lines(512, 12, 1);
    let (tx, ty) = lines(256, 12, 2);
    let mut model = LineNet::with_seed(0);
    let before = model.evaluate(&tx, &ty, 64).unwrap();
    let mut opt = Sgd::new(0.05, 0.9).unwrap();
    let mut epoch_losses = Vec::new();
    for epoch in 0..8 {
        let mut total = 0.0;
        for (xs, ys) in x.chunks(32 * 144).zip(y.chunks(32)) {
            total += model.train_step(&mut opt, xs, ys).unwrap();
        }
        epoch_losses.push(total / 16.0);
        opt.set_learning_rate(opt.learning_rate() * 0.8).unwrap();
        let _ = epoch;
    }
    let after = model.evaluate(&tx, &ty, 64).unwrap();
    println!("loss per epoch {epoch_losses:?}; test {before:?} -> {after:?}");
    assert!(epoch_losses[7] < epoch_losses[0] / 4.0, "{epoch_losses:?}");
    assert!(after.accuracy > 0.9, "accuracy {} (chance is 0.25)", after.accuracy);
    assert!(after.loss < before.loss / 4.0);
}

/// Trains a copy of `model` for a few steps on `threads` threads and returns its parameters.
fn train_on_threads(threads: usize, batch: usize) -> Vec<f32> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        let mut model = LeNet5::with_seed(11);
        let mut rng = Lcg(77);
        let mut opt = Sgd::new(0.05, 0.9).unwrap();
        for _ in 0..4 {
            let x = rng.vec(batch * 784);
            let labels: Vec<usize> = (0..batch).map(|_| rng.below(10)).collect();
            model.train_step(&mut opt, &x, &labels).unwrap();
        }
        model.params().to_vec()
    })
}

#[test]
fn same_seed_gives_the_same_bits_on_any_number_of_threads() {
    for batch in [64, 37] {
        let one = train_on_threads(1, batch);
        for threads in [2, 3] {
            let many = train_on_threads(threads, batch);
            let same = one.iter().zip(&many).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "batch {batch}: 1 thread and {threads} threads differ");
        }
        assert_ne!(one, LeNet5::with_seed(11).params(), "training changed nothing");
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let mut model = LeNet5::new();
    let err = model.forward(&[0.0; 783]).unwrap_err();
    assert!(matches!(err, Error::InputLength { found: 783, per_sample: 784, .. }));
    assert!(err.to_string().contains("28x28x1"), "{err}");
    assert_eq!(model.forward(&[]).unwrap_err(), Error::EmptyBatch);
    let x = vec![0.0; 2 * 784];
    assert_eq!(model.loss_and_grad(&x, &[1]).unwrap_err(), Error::LabelCount { samples: 2, labels: 1 });
    let err = model.loss_and_grad(&x, &[1, 10]).unwrap_err();
    assert_eq!(err, Error::LabelOutOfRange { index: 1, label: 10, classes: 10 });
    assert!(model.predict_into(&x, &mut [0; 3]).is_err());
    assert!(model.evaluate(&x, &[1, 2], 0).is_err());
    // Nothing was lost: the model still works.
    assert_eq!(model.predict(&x).unwrap().len(), 2);
}

#[test]
fn expression_form_builds_a_fresh_model() {
    let mut mlp = cnn!(< input(4) fc(8) relu fc(3) softmax >);
    assert_eq!(mlp.params().len(), 4 * 8 + 8 + 8 * 3 + 3);
    let p = mlp.forward(&[1.0, 0.0, -1.0, 0.5]).unwrap();
    assert_eq!(p.len(), 3);
    let mut perceptron = cnn!(< input(2) fc(2) softmax >);
    // XOR-free task: class = x0 > x1, learnable by one linear layer.
    let mut rng = Lcg(3);
    let x = rng.vec(2 * 256);
    let y: Vec<usize> = x.chunks(2).map(|p| usize::from(p[0] > p[1])).collect();
    let mut opt = Sgd::new(0.5, 0.5).unwrap();
    for _ in 0..100 {
        perceptron.train_step(&mut opt, &x, &y).unwrap();
    }
    assert!(perceptron.evaluate(&x, &y, 256).unwrap().accuracy > 0.95);
}
