//! Multi-task models: a trunk and named heads (`heads(...)`), each with its own outputs, loss,
//! weight and targets, checked through whole generated models.

mod common;

use cnn::io::{load_checkpoint, load_weights, save_checkpoint, save_weights, Progress};
use cnn::{cnn, Adam, Error, Loss, MultiTask, Network, PerHead, Sgd, Shape, Targets};
use common::{gradient_error_of, lines, Lcg};

cnn! {
    /// A trunk with a branch, and three heads with the three losses, two of them weighted,
    /// one with a convolution of its own. Smooth activations keep the finite differences clean.
    struct Multi <
        input(6x6x2)
        conv(3x3, 3, pad=1) tanh
        concat(conv(1x1, 2), avgpool(3, stride=1, pad=1))
        heads(
            class: fc(4) tanh fc(3) softmax,
            flags: conv(3x3, 2) sigmoid fc(2) sigmoid loss(bce, weight=0.5),
            size: fc(1) loss(mse, weight=2)
        )
    >
}

cnn! {
    /// Two heads straight on the input, the second one with a sparsity penalty.
    struct Shallow < input(5) heads(a: fc(3) softmax, b: fc(4) tanh sparsity(0.1) fc(2)) >
}

cnn! {
    /// What the course's multi-task slide draws: line images, a shared feature extractor, one
    /// head for the line's orientation and one for "is it diagonal".
    struct Lines <
        input(8x8x1)
        conv(3x3, 6, pad=1) relu pool(2)
        fc(16) relu
        heads(orientation: fc(4) softmax, diagonal: fc(1) sigmoid)
    >
}

/// Targets for `n` samples of [`Multi`]: classes, 0/1 flags and sizes.
fn multi_targets(n: usize, seed: u64) -> (Vec<usize>, Vec<f32>, Vec<f32>) {
    let mut rng = Lcg(seed);
    let classes = (0..n).map(|_| rng.below(3)).collect();
    let flags = (0..2 * n).map(|_| f32::from(u8::from(rng.next_f32() > 0.5))).collect();
    (classes, flags, rng.vec(n))
}

#[test]
fn heads_have_the_gradient_of_their_weighted_losses() {
    let mut model = Multi::with_seed(3);
    let x = Lcg(4).vec(4 * Multi::INPUT_LEN);
    let (classes, flags, sizes) = multi_targets(4, 5);
    let targets =
        MultiHeads { class: Targets::Labels(&classes), flags: Targets::Dense(&flags), size: Targets::Dense(&sizes) };
    let err = gradient_error_of(&mut model, 1e-2, |m| m.loss_and_grad(&x, targets).unwrap());
    assert!(err < 2e-2, "Multi: max relative error {err}");

    let mut model = Shallow::with_seed(6);
    let x = Lcg(7).vec(3 * Shallow::INPUT_LEN);
    let b = Lcg(8).vec(6);
    let targets = ShallowHeads { a: Targets::Labels(&[2, 0, 1]), b: Targets::Dense(&b) };
    let err = gradient_error_of(&mut model, 1e-2, |m| m.loss_and_grad(&x, targets).unwrap());
    assert!(err < 1e-2, "Shallow: max relative error {err}");
}

#[test]
fn the_training_loss_is_the_weighted_sum_of_the_heads_losses() {
    let mut model = Multi::with_seed(1);
    let x = Lcg(2).vec(5 * Multi::INPUT_LEN);
    let (classes, flags, sizes) = multi_targets(5, 3);
    let targets =
        MultiHeads { class: Targets::Labels(&classes), flags: Targets::Dense(&flags), size: Targets::Dense(&sizes) };
    let train = model.loss_and_grad(&x, targets).unwrap();
    let eval = model.evaluate(&x, targets, 2).unwrap();
    let weighted = eval.class.loss + 0.5 * eval.flags.loss + 2.0 * eval.size.loss;
    assert!((train - weighted).abs() < 1e-5 * weighted, "training {train}, weighted evaluation {weighted}");
    let weights: Vec<f32> = Multi::HEADS.iter().map(|h| h.weight).collect();
    assert_eq!(weights, [1.0, 0.5, 2.0]);
    let losses: Vec<Loss> = Multi::HEADS.iter().map(|h| h.loss).collect();
    assert_eq!(losses, [Loss::CrossEntropy, Loss::BinaryCrossEntropy, Loss::MeanSquaredError]);

    // Evaluation leaves the sparsity penalty out.
    let mut model = Shallow::with_seed(2);
    let x = Lcg(3).vec(4 * Shallow::INPUT_LEN);
    let b = Lcg(4).vec(8);
    let targets = ShallowHeads { a: Targets::Labels(&[0, 1, 2, 0]), b: Targets::Dense(&b) };
    let train = model.loss_and_grad(&x, targets).unwrap();
    let eval = model.evaluate(&x, targets, 4).unwrap();
    let penalty = train - eval.a.loss - eval.b.loss;
    assert!(penalty > 0.0 && penalty < 0.1, "training {train}, evaluation {eval:?}");
}

#[test]
fn outputs_predictions_and_classes_come_by_head() {
    let mut model = Multi::with_seed(4);
    let x = Lcg(5).vec(3 * Multi::INPUT_LEN);
    let out = model.forward(&x).unwrap();
    assert_eq!((out.class.len(), out.flags.len(), out.size.len()), (9, 6, 3));
    for row in out.class.chunks(3) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6, "softmax outputs: {row:?}");
    }
    assert!(out.flags.iter().all(|p| (0.0..=1.0).contains(p)), "sigmoid outputs");
    let (class, flags, size) = (out.class.to_vec(), out.flags.to_vec(), out.size.to_vec());
    let predicted = model.predict(&x).unwrap();
    let argmax = |row: &[f32]| (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b });
    assert_eq!(predicted.class, class.chunks(3).map(argmax).collect::<Vec<_>>());
    assert_eq!(predicted.flags, flags.chunks(2).map(argmax).collect::<Vec<_>>());
    let first: &[f32; 72] = x[..72].try_into().unwrap();
    let one = model.classify(first);
    assert_eq!((one.class, one.flags, one.size), (predicted.class[0], predicted.flags[0], 0));
    assert_eq!(model.forward(&x[..72]).unwrap().size, &size[..1], "a sample's outputs do not depend on the batch");
    assert_eq!(Multi::HEADS[0].classes(), 3);
    assert_eq!(MultiHeads::<u8>::COUNT, 3);
    assert_eq!(MultiHeads::from_fn(|h| h * 10), MultiHeads { class: 0, flags: 10, size: 20 });
    assert_eq!(MultiHeads { class: 'a', flags: 'b', size: 'c' }.get(2), Some(&'c'));
}

#[test]
fn wrong_targets_are_an_error_naming_the_head() {
    let mut model = Multi::with_seed(1);
    let x = Lcg(2).vec(2 * Multi::INPUT_LEN);
    let (classes, flags, sizes) = multi_targets(2, 3);
    let before = model.params().to_vec();
    let mut opt = Sgd::new(0.1, 0.0).unwrap();
    let bad_flags = [0.0, 2.0, 1.0, 0.0];
    let targets = MultiHeads {
        class: Targets::Labels(&classes),
        flags: Targets::Dense(&bad_flags),
        size: Targets::Dense(&sizes),
    };
    match model.train_step(&mut opt, &x, targets) {
        Err(Error::Head { head: "flags", error }) => assert!(matches!(*error, Error::InvalidTarget { .. }), "{error}"),
        other => panic!("expected an error for head `flags`, got {other:?}"),
    }
    let targets =
        MultiHeads { class: Targets::Labels(&[0, 3]), flags: Targets::Dense(&flags), size: Targets::Dense(&sizes) };
    let err = model.evaluate(&x, targets, 2).unwrap_err();
    assert_eq!(err.to_string(), "head `class`: label 3 of sample 1 is out of range: the model has 3 classes");
    let targets =
        MultiHeads { class: Targets::Labels(&classes), flags: Targets::Dense(&flags), size: Targets::Dense(&[]) };
    assert!(model.loss_and_grad(&x, targets).unwrap_err().to_string().starts_with("head `size`: 0 target values"));
    assert_eq!(model.params(), before, "nothing changed");
}

#[test]
fn heads_describe_themselves() {
    println!("{}\n{}", Multi::SUMMARY, Multi::PYTORCH);
    let rows: Vec<(&str, &str, usize)> = Multi::LAYERS.iter().map(|l| (l.layer, l.path, l.depth)).collect();
    let heads = rows.iter().position(|r| r.0 == "heads").unwrap();
    assert_eq!(rows[heads], ("heads", "3", 0));
    // A head that reads a volume flattens it first, as module 0 of its `Sequential`.
    assert_eq!(rows[heads + 1], ("class: fc(4)", "3.class.1", 1));
    assert_eq!(rows[heads + 6], ("flags: sigmoid", "3.flags.1", 1));
    assert_eq!(rows.last().unwrap(), &("size: fc(1)", "3.size.1", 1));
    assert_eq!(Multi::trunk(), 0..heads);
    assert_eq!(Multi::HEADS[0].layers, heads + 1..heads + 5);
    assert_eq!(Multi::HEADS[2].layers, rows.len() - 1..rows.len());
    assert_eq!(Multi::HEADS[1].name, "flags");
    assert_eq!(Multi::LAYERS[heads].output, Shape::volume(6, 6, 5), "the heads read the trunk's output");
    let names: Vec<&str> = Multi::TENSORS.iter().map(|t| t.name).collect();
    assert!(names.contains(&"3.class.3.weight") && names.contains(&"3.flags.0.bias"), "{names:?}");
    assert!(Multi::PYTORCH.contains("class Heads(torch.nn.Module):"), "{}", Multi::PYTORCH);
    assert!(Multi::PYTORCH.contains("\"size\": torch.nn.Sequential("), "{}", Multi::PYTORCH);
    assert!(Multi::SUMMARY.contains("  flags: conv(3x3, 2)"), "{}", Multi::SUMMARY);
    assert!(Multi::DSL.ends_with("size: fc(1) loss(mse, weight=2))"), "{}", Multi::DSL);
}

#[test]
fn a_frozen_trunk_or_head_stays_while_the_rest_trains() {
    let mut model = Multi::with_seed(1);
    let x = Lcg(2).vec(4 * Multi::INPUT_LEN);
    let (classes, flags, sizes) = multi_targets(4, 3);
    let targets =
        MultiHeads { class: Targets::Labels(&classes), flags: Targets::Dense(&flags), size: Targets::Dense(&sizes) };
    let rows = |range: std::ops::Range<usize>| {
        let (first, last) = (&Multi::LAYERS[range.start], &Multi::LAYERS[range.end - 1]);
        first.offset..last.offset + last.params
    };
    let trunk = 0..Multi::LAYERS[Multi::HEADS[0].layers.start].offset;
    let (class, flags_head) = (rows(Multi::HEADS[0].layers.clone()), rows(Multi::HEADS[1].layers.clone()));
    model.freeze(Multi::trunk()).unwrap();
    model.freeze(Multi::HEADS[1].layers.clone()).unwrap();
    let before = model.params().to_vec();
    let mut opt = Adam::new(0.01).unwrap();
    model.train_step(&mut opt, &x, targets).unwrap();
    let after = model.params();
    assert_eq!(after[trunk.clone()], before[trunk], "the trunk is frozen");
    assert_eq!(after[flags_head.clone()], before[flags_head], "head `flags` is frozen");
    assert!(after[class.clone()].iter().zip(&before[class]).all(|(a, b)| a != b), "head `class` trains");
}

#[test]
fn a_multi_task_model_learns_both_tasks() {
    let (x, orientation) = lines(256, 8, 11);
    let diagonal: Vec<f32> = orientation.iter().map(|&c| f32::from(u8::from(c >= 2))).collect();
    let (tx, torientation) = lines(128, 8, 12);
    let tdiagonal: Vec<usize> = torientation.iter().map(|&c| usize::from(c >= 2)).collect();
    let mut model = Lines::with_seed(5);
    let mut opt = Adam::new(0.01).unwrap();
    for _ in 0..6 {
        for (i, xb) in x.chunks(32 * Lines::INPUT_LEN).enumerate() {
            let targets = LinesHeads {
                orientation: Targets::Labels(&orientation[i * 32..(i + 1) * 32]),
                diagonal: Targets::Dense(&diagonal[i * 32..(i + 1) * 32]),
            };
            model.train_step(&mut opt, xb, targets).unwrap();
        }
    }
    let targets = LinesHeads { orientation: Targets::Labels(&torientation), diagonal: Targets::Labels(&tdiagonal) };
    let eval = model.evaluate(&tx, targets, 50).unwrap();
    assert!(eval.orientation.accuracy > 0.9, "{eval:?}");
    assert!(eval.diagonal.accuracy > 0.9, "{eval:?}");
}

#[test]
fn weights_and_checkpoints_of_a_model_with_heads_save_and_load() {
    let dir = std::env::temp_dir().join(format!("cnn-heads-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("multi.safetensors");
    let model = Multi::with_seed(9);
    save_weights(&model, &path).unwrap();
    let mut loaded = Multi::with_seed(10);
    load_weights(&mut loaded, &path).unwrap();
    assert_eq!(loaded.params(), model.params());

    // A checkpoint resumes training where it stopped, with the optimizer's state.
    let x = Lcg(2).vec(4 * Multi::INPUT_LEN);
    let (classes, flags, sizes) = multi_targets(4, 3);
    let targets =
        MultiHeads { class: Targets::Labels(&classes), flags: Targets::Dense(&flags), size: Targets::Dense(&sizes) };
    let (mut model, mut opt) = (Multi::with_seed(9), Adam::new(0.01).unwrap());
    model.train_step(&mut opt, &x, targets).unwrap();
    let checkpoint = dir.join("multi.ckpt.safetensors");
    save_checkpoint(&model, &opt, Progress { epoch: 1, step: 1, seed: 5 }, &checkpoint).unwrap();
    let (mut resumed, mut resumed_opt) = (Multi::with_seed(1), Adam::new(0.01).unwrap());
    load_checkpoint(&mut resumed, &mut resumed_opt, &checkpoint).unwrap();
    model.train_step(&mut opt, &x, targets).unwrap();
    resumed.train_step(&mut resumed_opt, &x, targets).unwrap();
    assert_eq!(resumed.params(), model.params(), "the resumed run takes the same step");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn heads_train_to_the_same_bits_on_any_number_of_threads() {
    let x = Lcg(4).vec(37 * Multi::INPUT_LEN);
    let (classes, flags, sizes) = multi_targets(37, 5);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut model = Multi::with_seed(8);
            let mut opt = Adam::new(0.01).unwrap();
            for _ in 0..3 {
                let targets = MultiHeads {
                    class: Targets::Labels(&classes),
                    flags: Targets::Dense(&flags),
                    size: Targets::Dense(&sizes),
                };
                model.train_step(&mut opt, &x, targets).unwrap();
            }
            model.params().iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
        })
    };
    let one = run(1);
    assert_eq!(run(2), one);
    assert_eq!(run(3), one);
}
