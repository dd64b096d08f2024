//! The course's layers, losses and training modes, checked through whole generated models:
//! gradients against finite differences, training against evaluation behaviour, freezing.

mod common;

use cnn::{cnn, Model, Network, Optimizer, Segment, Sgd, TensorKind};
use common::{gradient_error, gradient_error_above, Lcg};

cnn! {
    /// Every new layer at once: batch normalisation after conv and fc, tanh, sigmoid, an
    /// identity and a projected residual block, LRN, average and L2 pooling, dropout. Smooth
    /// activations only: with batch normalisation every weight of the stem moves every unit,
    /// and ReLU kinks crossed within the finite-difference step would blur the check (ReLU and
    /// leaky ReLU are checked in `Nested` and on their own).
    struct Mix <
        input(8x7x2)
        conv(3x3, 4, pad=1) batchnorm tanh
        residual(conv(3x3, 4, pad=1) tanh conv(3x3, 4, pad=1) batchnorm) sigmoid
        residual(conv(3x3, 6, stride=2, pad=1) sigmoid, shortcut=conv(1x1, 6, stride=2))
        lrn(3, alpha=0.1, k=1.5)
        avgpool(2, stride=1) l2pool(2, stride=1)
        fc(8) batchnorm tanh dropout(0.3)
        fc(3) softmax
    >
}

cnn! {
    /// Residual blocks nested in one another, with a fused activation after each.
    struct Nested <
        input(6x6x3)
        residual(conv(3x3, 3, pad=1) relu residual(conv(3x3, 3, pad=1) tanh) sigmoid) tanh
        residual(residual(fc(5) relu, shortcut=fc(5)) leaky_relu(0.2), shortcut=fc(5))
        fc(2) softmax
    >
}

cnn! { struct Regression < input(6) fc(5) tanh fc(3) > }
cnn! { struct MultiLabel < input(6) fc(4) relu fc(3) sigmoid > }
cnn! { struct Binary < input(6) fc(1) sigmoid > }
cnn! { struct SigmoidMse < input(6) fc(2) sigmoid loss(mse) > }
cnn! { struct Denoise < input(6x6x1) conv(3x3, 4, pad=1) relu conv(3x3, 1, pad=1) > }

#[test]
fn every_layer_and_block_has_the_gradient_of_its_loss() {
    let mut model = Mix::with_seed(3);
    let x = Lcg(5).vec(5 * Mix::INPUT_LEN);
    let err = gradient_error_above(&mut model, &x, cnn::Targets::Labels(&[0, 2, 1, 1, 0]), 3e-2);
    println!("Mix: max relative error {err:e} over {} parameters", Mix::PARAM_COUNT);
    assert!(err < 2e-2, "max relative error {err}");

    let mut model = Nested::with_seed(4);
    let x = Lcg(6).vec(3 * Nested::INPUT_LEN);
    let err = gradient_error(&mut model, &x, cnn::Targets::Labels(&[1, 0, 1]));
    println!("Nested: max relative error {err:e} over {} parameters", Nested::PARAM_COUNT);
    assert!(err < 2e-2, "max relative error {err}");
}

#[test]
fn every_loss_has_its_gradient() {
    let mut rng = Lcg(11);
    let x = rng.vec(4 * 6);
    let dense: Vec<f32> = (0..12).map(|_| rng.next_f32()).collect();
    let bits: Vec<f32> = (0..12).map(|i| (i % 3 == 1) as u8 as f32).collect();
    let cases: [(&str, f64); 6] = [
        ("mse, dense", gradient_error(&mut Regression::with_seed(1), &x, cnn::Targets::Dense(&dense))),
        ("mse, labels", gradient_error(&mut Regression::with_seed(1), &x, cnn::Targets::Labels(&[0, 2, 1, 2]))),
        ("bce, multi-label", gradient_error(&mut MultiLabel::with_seed(2), &x, cnn::Targets::Dense(&bits))),
        ("bce, one output", gradient_error(&mut Binary::with_seed(3), &x, cnn::Targets::Labels(&[0, 1, 1, 0]))),
        ("sigmoid + mse", gradient_error(&mut SigmoidMse::with_seed(4), &x, cnn::Targets::Dense(&dense[..8]))),
        ("denoising mse", {
            let x = Lcg(12).vec(2 * 36);
            let clean: Vec<f32> = x.iter().map(|v| v.signum()).collect();
            gradient_error(&mut Denoise::with_seed(5), &x, cnn::Targets::Dense(&clean))
        }),
    ];
    for (name, err) in cases {
        println!("{name}: max relative error {err:e}");
        assert!(err < 1e-2, "{name}: max relative error {err}");
    }
}

#[test]
fn losses_follow_their_definitions() {
    // MSE: the mean over every output of every sample, as torch.nn.MSELoss.
    let mut model = Regression::with_seed(1);
    let x = Lcg(3).vec(2 * 6);
    let t = [0.5, -0.5, 0.0, 1.0, 0.25, -1.0];
    let y = model.forward(&x).unwrap().to_vec();
    let want = y.iter().zip(&t).map(|(y, t)| ((y - t) * (y - t)) as f64).sum::<f64>() / 6.0;
    let loss = model.loss_and_grad_targets(&x, &t).unwrap() as f64;
    assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
    // BCE with one sigmoid output: labels are 0 or 1, a probability above 0.5 predicts 1.
    let mut model = Binary::with_seed(2);
    assert_eq!(Binary::classes(), 2);
    let p = model.forward(&x).unwrap().to_vec();
    let want = -((1.0 - p[0] as f64).ln() + (p[1] as f64).ln()) / 2.0;
    let loss = model.loss_and_grad(&x, &[0, 1]).unwrap() as f64;
    assert!((loss - want).abs() < 1e-5, "{loss} vs {want}");
    assert_eq!(model.predict(&x).unwrap(), p.iter().map(|&p| usize::from(p > 0.5)).collect::<Vec<_>>());
    assert!(model.loss_and_grad(&x, &[0, 2]).is_err());
    // Targets are checked: count, range, finiteness.
    let mut multi = MultiLabel::new();
    assert!(multi.loss_and_grad_targets(&x, &[0.0; 5]).is_err());
    assert!(multi.loss_and_grad_targets(&x, &[0.0, 1.0, 2.0, 0.0, 0.0, 0.0]).is_err());
    assert!(model.loss_and_grad_targets(&x, &[f32::NAN, 0.0]).is_err());
}

cnn! { struct Drop < input(64) dropout(0.25) fc(1) > }

#[test]
fn dropout_drops_in_training_only() {
    let mut model = Drop::with_seed(9);
    // fc = plain sum of its inputs.
    model.params_mut()[..64].fill(1.0);
    model.params_mut()[64] = 0.0;
    let x: Vec<f32> = (0..64).map(|i| 1.0 + i as f32 / 64.0).collect();
    let sum: f32 = x.iter().sum();
    // Evaluation: no dropout, the same output every time.
    for _ in 0..2 {
        assert!((model.forward(&x).unwrap()[0] - sum).abs() < 1e-4);
    }
    // Training: the weight gradient 2(y − t)·x_i/(1 − p) shows which inputs were kept.
    let mut masks = Vec::new();
    for _ in 0..3 {
        model.loss_and_grad_targets(&x, &[0.0]).unwrap();
        let g = model.grads()[..64].to_vec();
        let kept: Vec<bool> = g.iter().map(|&g| g != 0.0).collect();
        let y: f32 = x.iter().zip(&kept).map(|(x, &k)| if k { x / 0.75 } else { 0.0 }).sum();
        for i in 0..64 {
            if kept[i] {
                let want = 2.0 * y * x[i] / 0.75;
                assert!((g[i] - want).abs() <= 1e-3 * want.abs(), "input {i}: {} vs {want}", g[i]);
            }
        }
        let dropped = kept.iter().filter(|&&k| !k).count();
        assert!((4..=30).contains(&dropped), "{dropped} of 64 dropped at p = 0.25");
        masks.push(kept);
    }
    assert!(masks[0] != masks[1] && masks[1] != masks[2], "each training pass draws a new mask");
    // The same seed and step give the same mask.
    let mut again = Drop::with_seed(9);
    again.params_mut().copy_from_slice(model.params());
    again.loss_and_grad_targets(&x, &[0.0]).unwrap();
    let kept: Vec<bool> = again.grads()[..64].iter().map(|&g| g != 0.0).collect();
    assert_eq!(kept, masks[0]);
    assert_eq!(model.noise().step, 3);
}

cnn! { struct Normalised < input(3) fc(3) batchnorm > }

#[test]
fn batchnorm_uses_batch_statistics_in_training_and_running_ones_in_evaluation() {
    let mut model = Normalised::new();
    assert_eq!(Normalised::BUFFER_COUNT, 7);
    assert_eq!(model.buffers(), [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]);
    // fc = identity, so batchnorm sees x itself.
    let identity = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0];
    model.params_mut()[..12].copy_from_slice(&identity);
    let x = [1.0, 10.0, -2.0, 3.0, 20.0, -2.0, 5.0, 30.0, -2.0, 7.0, 40.0, -2.0];
    // Training: each feature normalised over the batch; the target equals it, so the loss is 0.
    let normalised: Vec<f32> = {
        let mut out = vec![0.0; 12];
        for f in 0..3 {
            let col: Vec<f64> = (0..4).map(|s| x[s * 3 + f] as f64).collect();
            let mean = col.iter().sum::<f64>() / 4.0;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0;
            for s in 0..4 {
                out[s * 3 + f] = ((col[s] - mean) / (var + 1e-5).sqrt()) as f32;
            }
        }
        out
    };
    let loss = model.loss_and_grad_targets(&x, &normalised).unwrap();
    assert!(loss < 1e-8, "training normalises with the batch's statistics: loss {loss}");
    // Running statistics: 0.9·old + 0.1·batch (unbiased variance), one batch counted.
    let b = model.buffers().to_vec();
    let want = [0.4, 2.5, -0.2, 0.9 + 0.1 * 20.0 / 3.0, 0.9 + 0.1 * 500.0 / 3.0, 0.9, 1.0];
    for (i, (g, w)) in b.iter().zip(want).enumerate() {
        assert!((g - w).abs() < 1e-4 * w.abs().max(1.0), "buffer {i}: {g} vs {w}");
    }
    // Evaluation: the running statistics, and the buffers stay.
    let y = model.forward(&x[..3]).unwrap().to_vec();
    for f in 0..3 {
        let want = (x[f] - b[f]) / (b[3 + f] + 1e-5).sqrt();
        assert!((y[f] - want).abs() < 1e-5, "feature {f}: {} vs {want}", y[f]);
    }
    assert_eq!(model.buffers(), b);
    // Batch normalisation's scale and shift are trained but not decayed.
    let kinds: Vec<TensorKind> = Normalised::TENSORS.iter().map(|t| t.kind).collect();
    use TensorKind::*;
    assert_eq!(kinds, [Weight, Bias, Norm, Norm, Statistic, Statistic, Count]);
    assert_eq!(
        model.segments(),
        [Segment { start: 0, end: 9, decay: true }, Segment { start: 9, end: 18, decay: false }]
    );
}

#[test]
fn frozen_layers_keep_their_parameters() {
    let mut model = Mix::with_seed(1);
    let x = Lcg(2).vec(4 * Mix::INPUT_LEN);
    let labels = [0, 1, 2, 0];
    // Freeze the stem and the first residual block (its row covers the whole block).
    let block = Mix::LAYERS.iter().position(|l| l.layer == "residual").unwrap();
    assert_eq!(Mix::LAYERS[block + 1].depth, 1);
    model.freeze(..=block).unwrap();
    let frozen_end = Mix::LAYERS[block].offset + Mix::LAYERS[block].params;
    assert!(model.is_frozen(1) && model.is_frozen(block) && !model.is_frozen(block + 6));
    let before = model.params().to_vec();
    let mut opt = Sgd::new(0.1, 0.9).unwrap();
    for _ in 0..3 {
        model.train_step(&mut opt, &x, &labels).unwrap();
    }
    assert_eq!(model.params()[..frozen_end], before[..frozen_end]);
    assert!(model.params()[frozen_end..].iter().zip(&before[frozen_end..]).any(|(a, b)| a != b));
    model.unfreeze(..).unwrap();
    model.train_step(&mut opt, &x, &labels).unwrap();
    assert!(model.params()[..frozen_end].iter().zip(&before[..frozen_end]).any(|(a, b)| a != b));
    assert!(model.freeze(3..1000).is_err());
    assert_eq!(opt.learning_rate(), 0.1);
}

#[test]
fn the_layer_table_shows_blocks_and_pytorch_names() {
    let rows: Vec<(&str, &str, usize)> = Nested::LAYERS.iter().map(|l| (l.layer, l.path, l.depth)).collect();
    assert_eq!(rows[1], ("residual", "0", 0));
    assert_eq!(rows[2], ("conv(3x3, 3, pad=1)", "0.body.0", 1));
    assert_eq!(rows[4], ("residual", "0.body.2", 1));
    // A volume meets `fc` inside the inner block: PyTorch flattens first, hence `.1`.
    assert!(rows.contains(&("shortcut: fc(5)", "2.body.0.shortcut.1", 2)), "{rows:?}");
    assert_eq!(rows[14], ("leaky_relu(0.2)", "2.body.1", 1));
    let names: Vec<&str> = Nested::TENSORS.iter().map(|t| t.name).collect();
    assert!(names.contains(&"0.body.2.body.0.weight"), "{names:?}");
    assert!(Nested::PYTORCH.starts_with("class Residual(torch.nn.Module):"));
    assert!(Nested::PYTORCH.contains("Residual(torch.nn.Sequential("));
    assert!(Mix::SUMMARY.contains("Buffers (running statistics): 35"), "{}", Mix::SUMMARY);
}

#[test]
fn he_initialisation_redraws_the_weights_only() {
    let mut model = Mix::with_seed(1);
    let before = model.params().to_vec();
    cnn::init::he_uniform(&mut model, 5);
    for t in Mix::TENSORS.iter().filter(|t| t.kind.is_param()) {
        let (new, old) = (&model.params()[t.offset..t.offset + t.len()], &before[t.offset..t.offset + t.len()]);
        if t.kind == TensorKind::Weight {
            let bound = (6.0 / (t.len() / t.shape[0]) as f32).sqrt();
            assert!(new.iter().all(|w| w.abs() <= bound) && new != old, "{}", t.name);
            assert!(new.iter().any(|w| w.abs() > 0.8 * bound), "{} spans its bound", t.name);
        } else {
            assert_eq!(new, old, "{}", t.name);
        }
    }
}

#[test]
fn training_gives_the_same_bits_on_any_number_of_threads() {
    let x = Lcg(4).vec(37 * Mix::INPUT_LEN);
    let labels: Vec<usize> = (0..37).map(|i| i % 3).collect();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut model = Mix::with_seed(8);
            let mut opt = cnn::Adam::new(0.01).unwrap();
            for _ in 0..3 {
                model.train_step(&mut opt, &x, &labels).unwrap();
            }
            model.params().iter().chain(model.buffers()).map(|v| v.to_bits()).collect::<Vec<u32>>()
        })
    };
    let one = run(1);
    assert_eq!(run(2), one);
    assert_eq!(run(3), one);
}

cnn! { struct FcNorm < input(4) fc(3, bias=false) batchnorm relu fc(2) softmax > }
cnn! { struct PerPixel < input(4x4x1) conv(3x3, 2, pad=1) relu conv(3x3, 1, pad=1) sigmoid > }

#[test]
fn inputs_and_batches_that_cannot_train_are_errors() {
    // A NaN would vanish in ReLU and corrupt the weights: it is reported where it is.
    let mut model = FcNorm::new();
    let mut x = vec![0.5; 8];
    x[6] = f32::NAN;
    let err = model.loss_and_grad(&x, &[0, 1]).unwrap_err();
    assert_eq!(err, cnn::Error::NonFiniteInput { sample: 1, index: 2, value: "NaN".into() });
    assert!(model.forward(&[f32::INFINITY, 0.0, 0.0, 0.0]).is_err());
    // Batch normalisation after `fc` needs two samples to train, not to evaluate.
    assert_eq!(FcNorm::MIN_TRAIN_BATCH, 2);
    assert_eq!(Mix::MIN_TRAIN_BATCH, 2);
    assert_eq!(Nested::MIN_TRAIN_BATCH, 1);
    let err = model.loss_and_grad(&[0.5; 4], &[0]).unwrap_err().to_string();
    assert!(err.contains("at least 2 samples"), "{err}");
    assert!(model.forward(&[0.5; 4]).is_ok());
    assert!(model.loss_and_grad(&[0.5, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], &[0, 1]).is_ok());
}

#[test]
fn layers_inside_a_frozen_block_are_frozen() {
    let mut model = Nested::new();
    let inner = 4; // `0.body.2`, a block inside the block of row 1
    assert_eq!((Nested::LAYERS[inner].layer, Nested::LAYERS[inner].depth), ("residual", 1));
    model.freeze(1..2).unwrap();
    assert!((1..8).all(|i| model.is_frozen(i)), "every row of the first block");
    assert!(!model.is_frozen(0) && !model.is_frozen(8) && !model.is_frozen(10));
    model.unfreeze(..).unwrap();
    model.freeze(inner..inner + 1).unwrap();
    assert!(model.is_frozen(5) && model.is_frozen(6) && !model.is_frozen(7) && !model.is_frozen(2));
}

#[test]
fn per_output_accuracy_for_sigmoid_targets() {
    let mut model = PerPixel::with_seed(2);
    let x = Lcg(3).vec(2 * 16);
    let out = model.forward(&x).unwrap().to_vec();
    // Targets on the predicted side of 0.5 for 24 of the 32 outputs.
    let targets: Vec<f32> =
        out.iter().enumerate().map(|(i, &p)| if (i % 4 == 0) == (p > 0.5) { 0.0 } else { 1.0 }).collect();
    let eval = model.evaluate_targets(&x, &targets, 2).unwrap();
    assert!((eval.accuracy - 0.75).abs() < 1e-6, "{}", eval.accuracy);
}
