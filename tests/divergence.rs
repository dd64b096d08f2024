//! A diverging run never destroys a good model: a step that would leave a value that is not
//! finite is an error naming the step and the layer, and is undone entirely. Public methods
//! given extreme arguments answer with errors, not panics.

use cnn::optim::{Segment, MAX_STEPS};
use cnn::{cnn, Adam, AdamW, Error, Model, Network, Noise, Optimizer, Result, Sgd};

cnn! {
    struct Small <
        input(12x12x1)
        conv(3x3, 4, pad=1) relu pool(2)
        fc(16) relu fc(4) softmax
    >
}

cnn! {
    /// Batch normalisation and dropout: running statistics and the dropout counter must be
    /// undone with the parameters.
    struct Regular <
        input(12x12x1)
        conv(3x3, 4, pad=1, bias=false) batchnorm relu pool(2)
        residual(conv(3x3, 4, pad=1) relu)
        fc(16) relu dropout(0.3) fc(4) softmax
    >
}

fn batch<M: Model>(n: usize, seed: usize) -> (Vec<f32>, Vec<usize>) {
    let x = (0..n * M::INPUT_LEN).map(|i| (((i + seed) * 7919) % 255) as f32 / 255.0).collect();
    let y = (0..n).map(|i| (i + seed) % M::OUTPUT_LEN).collect();
    (x, y)
}

/// Everything a training step may change, as plain values.
#[derive(Debug, PartialEq)]
struct Snapshot {
    params: Vec<u32>,
    buffers: Vec<u32>,
    noise: Noise,
    lr: f32,
    state: Vec<(&'static str, Vec<u32>)>,
    counters: Vec<(&'static str, u64)>,
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn snapshot<M: Model>(model: &M, opt: &dyn Optimizer) -> Snapshot {
    Snapshot {
        params: bits(model.params()),
        buffers: bits(model.buffers()),
        noise: model.noise(),
        lr: opt.learning_rate(),
        state: opt.state().into_iter().map(|(n, v)| (n, bits(v))).collect(),
        counters: opt.counters(),
    }
}

/// Trains with `opt` until a step fails; checks that the failing step changed nothing and
/// returns its error. Panics when no step fails within 200.
fn train_until_diverged<M: Model>(model: &mut M, opt: &mut dyn Optimizer) -> Error {
    for step in 0..200 {
        let (x, y) = batch::<M>(8, step);
        let before = snapshot(model, opt);
        match model.train_step(opt, &x, &y) {
            Ok(loss) => {
                assert!(loss.is_finite(), "step {step} returned Ok({loss})");
                assert!(model.params().iter().all(|v| v.is_finite()), "step {step} left non-finite parameters");
            }
            Err(e) => {
                assert_eq!(snapshot(model, opt), before, "the failing step {step} changed the model or optimizer");
                return e;
            }
        }
    }
    panic!("no step diverged");
}

#[test]
fn a_diverging_sgd_step_is_refused_named_and_undone() {
    let mut model = Small::with_seed(1);
    let mut opt = Sgd::new(1e30, 0.9).unwrap();
    let err = train_until_diverged(&mut model, &mut opt);
    let Error::Diverged { step, ref layer, ref reason } = err else { panic!("expected Diverged, got {err:?}") };
    assert!(layer.starts_with("layer ") || layer == "the loss", "{layer}");
    assert!(!reason.is_empty());
    assert_eq!(step, model.noise().step, "the error names the pass that failed");
    let text = err.to_string();
    assert!(text.contains(&format!("training step {step} diverged in")) && text.contains("undone"), "{text}");
    assert!(model.params().iter().all(|v| v.is_finite()));
}

#[test]
fn a_diverging_step_undoes_running_statistics_dropout_counter_and_adam_state() {
    for mut opt in [
        Box::new(Adam::new(1e30).unwrap()) as Box<dyn Optimizer>,
        Box::new(AdamW::new(1e25).unwrap()),
        Box::new(Sgd::new(1e8, 0.5).unwrap().with_nesterov(true).unwrap()),
    ] {
        let mut model = Regular::with_seed(3);
        let err = train_until_diverged(&mut model, opt.as_mut());
        assert!(matches!(err, Error::Diverged { .. }), "{}: {err}", opt.describe());
        assert!(model.buffers().iter().all(|v| v.is_finite()));
    }
}

/// An optimizer outside the crate, which cannot check its step beforehand: the model undoes
/// its update from a copy.
struct Doubling {
    lr: f32,
    steps: Vec<f32>,
}

impl Optimizer for Doubling {
    fn step(&mut self, params: &mut [f32], grads: &[f32], segments: &[Segment]) -> Result<()> {
        self.steps.resize(params.len(), 1.0);
        for s in segments {
            for i in s.start..s.end {
                self.steps[i] *= 1e10;
                params[i] -= self.lr * self.steps[i] * grads[i].signum();
            }
        }
        Ok(())
    }
    fn learning_rate(&self) -> f32 {
        self.lr
    }
    fn set_learning_rate(&mut self, lr: f32) -> Result<()> {
        cnn::optim::check_learning_rate(lr)?;
        self.lr = lr;
        Ok(())
    }
    fn reset(&mut self) {
        self.steps.clear();
    }
    fn describe(&self) -> String {
        format!("Doubling(lr={})", self.lr)
    }
    fn state(&self) -> Vec<(&'static str, &[f32])> {
        vec![("steps", &self.steps)]
    }
    fn state_names(&self) -> Vec<&'static str> {
        vec!["steps"]
    }
    fn load_state(&mut self, name: &str, values: &[f32]) -> Result<()> {
        assert_eq!(name, "steps");
        self.steps = values.to_vec();
        Ok(())
    }
}

#[test]
fn an_optimizer_that_cannot_check_its_step_is_undone_from_a_copy() {
    let mut model = Small::with_seed(2);
    let mut opt = Doubling { lr: 1.0, steps: Vec::new() };
    let err = train_until_diverged(&mut model, &mut opt);
    let text = err.to_string();
    assert!(text.contains("would make parameter") && text.contains("layer"), "{text}");
}

#[test]
fn a_step_past_the_largest_pass_count_is_refused() {
    let mut model = Small::with_seed(1);
    let mut opt = Sgd::new(0.01, 0.9).unwrap();
    model.set_noise(Noise { seed: 1, step: MAX_STEPS });
    let (x, y) = batch::<Small>(4, 0);
    let before = snapshot(&model, &opt);
    let err = model.train_step(&mut opt, &x, &y).unwrap_err().to_string();
    assert!(err.contains("largest step count"), "{err}");
    assert_eq!(snapshot(&model, &opt), before);
    model.set_noise(Noise { seed: 1, step: u64::MAX });
    assert!(model.loss_and_grad(&x, &y).is_err());
}

#[test]
fn extreme_batch_sizes_and_layer_ranges_are_answered_without_panicking() {
    let mut model = Small::with_seed(1);
    let (x, y) = batch::<Small>(10, 0);
    let reference = model.evaluate(&x, &y, 10).unwrap();
    for b in [1 << 62, usize::MAX, 11, 1 << 31] {
        assert_eq!(model.evaluate(&x, &y, b).unwrap(), reference, "batch {b}");
        let targets = vec![0.25; 10 * Small::OUTPUT_LEN];
        model.evaluate_targets(&x, &targets, b).unwrap();
    }
    assert!(model.evaluate(&x, &y, 0).is_err());
    let layers = Small::LAYERS.len();
    assert!(model.freeze(..=usize::MAX).is_err());
    assert!(model.freeze(usize::MAX..).is_err());
    assert!(model.freeze((std::ops::Bound::Excluded(usize::MAX), std::ops::Bound::Unbounded)).is_err());
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = 5..2;
    assert!(model.freeze(backwards).is_err());
    assert!(model.freeze(layers..).is_ok(), "an empty range at the end is a range");
    assert!(model.unfreeze(..).is_ok());
    assert_eq!(model.layer_params(usize::MAX), None);
    assert_eq!(model.layer_grads(usize::MAX), None);
    assert!(!model.is_frozen(usize::MAX));
    let mut opt = Sgd::new(0.1, 0.0).unwrap();
    assert!(opt.set_learning_rate(f32::NAN).is_err());
    assert_eq!(opt.learning_rate(), 0.1);
    assert!(model.train_step(&mut opt, &x[..5], &y).is_err());
    assert!(model.predict_into(&x, &mut [0; 3]).is_err());
}
