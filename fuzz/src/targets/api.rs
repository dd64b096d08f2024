//! The public API driven with extreme arguments. The input is a program: each byte picks an
//! operation or an argument from a set of boundary values, so that mutating the bytes explores
//! the combinations, and a finding's input replays it exactly.

use std::ops::Bound;

use cnn::augment::{augment_batch, Compose, GaussianNoise, RotateScale, Shift, Transform};
use cnn::schedule::{Constant, Cosine, Exponential, Schedule, StepDecay, WarmUp};
use cnn::{accuracy, Adam, AdamW, Model, Noise, Optimizer, Sgd, Shape};

use crate::models::{batch, labels, Binary, Normed, Regressor, Small};
use crate::mutate;
use crate::rng::Rng;
use crate::runner::{Failure, Oracle, Outcome, Target};

/// Batch sizes, as `evaluate` takes them.
const BATCHES: [usize; 8] = [0, 1, 2, 63, 64, 1 << 31, 1 << 62, usize::MAX];
/// Samples actually passed (the inputs are allocated, so these stay small).
const SAMPLES: [usize; 7] = [0, 1, 2, 3, 5, 63, 64];
/// Labels, valid and not.
const LABELS: [usize; 9] = [0, 1, 9, 10, 11, 255, 1 << 31, 1 << 62, usize::MAX];
/// Floats for rates, coefficients and values.
const FLOATS: [f32; 20] = [
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    0.0,
    -0.0,
    -1.0,
    1e-45,
    1e-38,
    1e-8,
    1e-3,
    0.01,
    0.5,
    0.9,
    0.999,
    1.0,
    2.0,
    1e10,
    1e38,
    f32::MAX,
    -f32::MAX,
];
/// Counts and indices: steps, epochs, layer indices, shift sizes.
const COUNTS: [usize; 10] = [0, 1, 2, 3, 5, 1000, 1 << 31, 1 << 62, usize::MAX - 1, usize::MAX];
/// Seeds and counters.
const U64S: [u64; 6] = [0, 1, 1 << 32, i64::MAX as u64, u64::MAX - 1, u64::MAX];
/// Image shapes for augmentation (one of them empty).
const SHAPES: [Shape; 5] =
    [Shape::volume(8, 8, 1), Shape::volume(3, 2, 2), Shape::vector(5), Shape::volume(0, 4, 1), Shape::volume(1, 1, 1)];
/// Lengths for `epoch_order`: large enough to matter, small enough not to exhaust memory.
const ORDER_LENS: [usize; 6] = [0, 1, 2, 3, 1000, 1 << 16];

/// Reads the program: one byte at a time, zeros once it runs out.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.byte() as usize % items.len()]
    }

    fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    fn done(&self) -> bool {
        self.at >= self.data.len()
    }
}

/// The optimizer the program builds from extreme hyperparameters (when they are accepted).
fn build_optimizer(r: &mut Reader<'_>) -> Option<Box<dyn Optimizer>> {
    let (a, b, c, d) = (r.pick(&FLOATS), r.pick(&FLOATS), r.pick(&FLOATS), r.pick(&FLOATS));
    let built: cnn::Result<Box<dyn Optimizer>> = match r.byte() % 3 {
        0 => {
            let nesterov = r.flag();
            Sgd::new(a, b)
                .and_then(|o| o.with_nesterov(nesterov))
                .and_then(|o| o.with_weight_decay(c))
                .and_then(|o| o.with_l1(d))
                .map(|o| Box::new(o) as Box<dyn Optimizer>)
        }
        1 => Adam::new(a)
            .and_then(|o| o.with_betas(b, c))
            .and_then(|o| o.with_eps(d))
            .and_then(|o| o.with_weight_decay(r.pick(&FLOATS)))
            .map(|o| Box::new(o) as Box<dyn Optimizer>),
        _ => AdamW::new(a)
            .and_then(|o| o.with_betas(b, c))
            .and_then(|o| o.with_eps(d))
            .and_then(|o| o.with_weight_decay(r.pick(&FLOATS)))
            .map(|o| Box::new(o) as Box<dyn Optimizer>),
    };
    built.ok()
}

/// The schedule the program builds, when its arguments are accepted.
fn build_schedule(r: &mut Reader<'_>) -> Option<Box<dyn Schedule>> {
    let (a, b) = (r.pick(&FLOATS), r.pick(&FLOATS));
    let n = r.pick(&COUNTS);
    let inner: Box<dyn Schedule> = match r.byte() % 4 {
        0 => Box::new(Constant::new(a).ok()?),
        1 => Box::new(StepDecay::new(a, n, b).ok()?),
        2 => Box::new(Exponential::new(a, b).ok()?),
        _ => Box::new(Cosine::new(a, b, n).ok()?),
    };
    if r.flag() {
        Some(Box::new(WarmUp::new(r.pick(&COUNTS), inner).ok()?))
    } else {
        Some(inner)
    }
}

/// A bound of a layer range.
fn bound(r: &mut Reader<'_>, count: usize) -> Bound<usize> {
    let value = r.pick(&[0, 1, 2, 5, count.saturating_sub(1), count, count + 1, usize::MAX]);
    match r.byte() % 3 {
        0 => Bound::Included(value),
        1 => Bound::Excluded(value),
        _ => Bound::Unbounded,
    }
}

/// Whether `range` is a range of `count` layers, as `freeze` documents it.
fn valid_range(start: Bound<usize>, end: Bound<usize>, count: usize) -> bool {
    let start = match start {
        Bound::Included(s) => Some(s),
        Bound::Excluded(s) => s.checked_add(1),
        Bound::Unbounded => Some(0),
    };
    let end = match end {
        Bound::Included(e) => e.checked_add(1),
        Bound::Excluded(e) => Some(e),
        Bound::Unbounded => Some(count),
    };
    matches!((start, end), (Some(s), Some(e)) if s <= e && e <= count)
}

/// The inputs of an operation: `n` samples (sometimes a few values more), sometimes with a
/// value that is not finite.
fn inputs<M: Model>(r: &mut Reader<'_>, n: usize) -> Vec<f32> {
    let mut x = batch(n, M::INPUT_LEN);
    match r.byte() % 8 {
        0 => x.extend([0.5; 1]),
        1 => x.truncate(x.len().saturating_sub(1)),
        2 if !x.is_empty() => {
            let at = r.byte() as usize % x.len();
            x[at] = r.pick(&FLOATS);
        }
        _ => {}
    }
    x
}

/// Labels for `n` samples, sometimes one too many or few, sometimes one out of range.
fn targets_of(r: &mut Reader<'_>, n: usize, classes: usize) -> Vec<usize> {
    let mut y = labels(n, classes);
    match r.byte() % 6 {
        0 => y.push(0),
        1 => {
            y.pop();
        }
        2 if !y.is_empty() => {
            let at = r.byte() as usize % y.len();
            y[at] = r.pick(&LABELS);
        }
        _ => {}
    }
    y
}

/// Runs one operation of the program on `model`; returns a short name of what it did.
fn operate<M: Model>(r: &mut Reader<'_>, model: &mut M, opt: &mut Box<dyn Optimizer>) -> Result<String, Failure> {
    let op = r.byte() % 14;
    let n = r.pick(&SAMPLES);
    let ok = |r: bool| if r { "ok" } else { "err" };
    let done = match op {
        0 => {
            let (x, y, b) = (inputs::<M>(r, n), targets_of(r, n, M::classes()), r.pick(&BATCHES));
            let result = model.evaluate(&x, &y, b);
            // With a batch of at least the whole set, there is one batch: the same as batch n.
            if let (Ok(got), true) = (&result, b >= n && n > 0) {
                let whole = model.evaluate(&x, &y, n).map_err(|e| {
                    Failure::new(Oracle::WrongResult, format!("evaluate(batch {b}) succeeds, batch {n} fails: {e}"))
                })?;
                if (got.loss.to_bits(), got.accuracy.to_bits()) != (whole.loss.to_bits(), whole.accuracy.to_bits()) {
                    return Err(Failure::new(
                        Oracle::WrongResult,
                        format!("evaluate over {n} samples gives {got:?} in batches of {b}, {whole:?} in one batch"),
                    ));
                }
            }
            ok(result.is_ok())
        }
        1 => {
            let x = inputs::<M>(r, n);
            let t: Vec<f32> = (0..n * M::OUTPUT_LEN + r.byte() as usize % 2).map(|_| r.pick(&FLOATS)).collect();
            ok(model.evaluate_targets(&x, &t, r.pick(&BATCHES)).is_ok())
        }
        2 => {
            let x = inputs::<M>(r, n);
            let mut out = vec![0; r.pick(&SAMPLES)];
            let a = model.forward(&x).is_ok();
            let b = model.predict(&x).is_ok();
            let c = model.predict_into(&x, &mut out).is_ok();
            ok(a && b && c)
        }
        3 => {
            let (x, y) = (inputs::<M>(r, n), targets_of(r, n, M::classes()));
            if r.flag() {
                ok(model.loss_and_grad(&x, &y).is_ok())
            } else {
                ok(model.train_step(opt.as_mut(), &x, &y).is_ok())
            }
        }
        4 => {
            let x = inputs::<M>(r, n);
            let t: Vec<f32> = (0..n * M::OUTPUT_LEN).map(|_| r.pick(&FLOATS)).collect();
            ok(model.train_step_targets(opt.as_mut(), &x, &t).is_ok())
        }
        5 => {
            let (lr, before) = (r.pick(&FLOATS), opt.learning_rate());
            let set = opt.set_learning_rate(lr);
            // Documented: fails, changing nothing, unless the rate is finite and positive.
            let valid = lr.is_finite() && lr > 0.0;
            let now = opt.learning_rate();
            if set.is_ok() != valid || now.to_bits() != if valid { lr } else { before }.to_bits() {
                return Err(Failure::new(
                    Oracle::WrongResult,
                    format!("set_learning_rate({lr}) from {before} returned {set:?}, the rate is now {now}"),
                ));
            }
            let (x, y) = (batch(2, M::INPUT_LEN), labels(2, M::classes()));
            ok(model.train_step(opt.as_mut(), &x, &y).is_ok())
        }
        6 => match build_optimizer(r) {
            Some(new) => {
                *opt = new;
                "built"
            }
            None => "refused",
        },
        7 => match build_schedule(r) {
            Some(schedule) => {
                let t = r.pick(&COUNTS);
                let _ = schedule.lr(t);
                let (t, before) = (r.pick(&COUNTS), opt.learning_rate());
                if schedule.apply(opt.as_mut(), t).is_err() && opt.learning_rate().to_bits() != before.to_bits() {
                    return Err(Failure::new(Oracle::WrongResult, "a schedule that failed to apply changed the rate"));
                }
                "scheduled"
            }
            None => "refused",
        },
        8 => {
            let count = M::LAYERS.len();
            let (start, end) = (bound(r, count), bound(r, count));
            let before = model.segments().to_vec();
            let freeze = r.flag();
            let result = if freeze { model.freeze((start, end)) } else { model.unfreeze((start, end)) };
            let _ = model.is_frozen(r.pick(&COUNTS));
            if result.is_ok() != valid_range(start, end, count) {
                return Err(Failure::new(
                    Oracle::WrongResult,
                    format!(
                        "{}(({start:?}, {end:?})) on {count} layers returned {result:?}",
                        if freeze { "freeze" } else { "unfreeze" }
                    ),
                ));
            }
            if result.is_err() && model.segments() != before {
                return Err(Failure::new(Oracle::WrongResult, "a freeze that failed changed the trained segments"));
            }
            ok(result.is_ok())
        }
        9 => {
            let i = r.pick(&COUNTS);
            let (p, g) = (model.layer_params(i).is_some(), model.layer_grads(i).is_some());
            ok(p && g)
        }
        10 => {
            let (a, b) = (r.pick(&SAMPLES), r.pick(&SAMPLES));
            let (p, y) = (vec![r.pick(&LABELS); a], labels(b, 10));
            match accuracy(&p, &y) {
                Ok(v) if !(0.0..=1.0).contains(&v) => {
                    return Err(Failure::new(Oracle::WrongResult, format!("accuracy {v}")));
                }
                result => ok(result.is_ok()),
            }
        }
        11 => {
            let seed = r.pick(&U64S);
            if r.flag() {
                cnn::init::he_uniform(model, seed);
            } else {
                model.init(seed);
            }
            "initialised"
        }
        12 => {
            model.set_noise(Noise { seed: r.pick(&U64S), step: r.pick(&U64S) });
            let (x, y) = (batch(2, M::INPUT_LEN), labels(2, M::classes()));
            ok(model.train_step(opt.as_mut(), &x, &y).is_ok())
        }
        _ => {
            let mut order = Vec::new();
            let _ = cnn::data::epoch_order(r.pick(&ORDER_LENS), r.pick(&U64S), r.pick(&U64S), &mut order);
            "ordered"
        }
    };
    Ok(format!("{op}:{done}"))
}

/// A transform with extreme parameters.
fn transform(r: &mut Reader<'_>, depth: usize) -> Box<dyn Transform> {
    match r.byte() % if depth > 0 { 3 } else { 4 } {
        0 => Box::new(Shift { max: r.pick(&COUNTS) }),
        1 => Box::new(GaussianNoise { std: r.pick(&FLOATS) }),
        2 => Box::new(RotateScale { max_degrees: r.pick(&FLOATS), max_scale: r.pick(&FLOATS) }),
        _ => {
            let (a, b) = (transform(r, depth + 1), transform(r, depth + 1));
            Box::new(Compose(vec![a, b]))
        }
    }
}

/// `augment_batch` over a few images of a small shape.
fn augment(r: &mut Reader<'_>) -> String {
    let (shape, n) = (r.pick(&SHAPES), r.pick(&[0usize, 1, 2, 3]));
    let t = transform(r, 0);
    let src: Vec<f32> = batch(n, shape.len());
    let mut dst = vec![0.0; src.len()];
    let mut scratch = Vec::new();
    // Refusing extreme parameters is an answer; only a panic is a finding.
    match augment_batch(t.as_ref(), shape, &src, &mut dst, r.pick(&U64S), &mut scratch) {
        Ok(()) => "augmented".into(),
        Err(_) => "augmentation refused".into(),
    }
}

/// The models operations run on, and the optimizer they share.
#[derive(Clone)]
struct Models {
    small: Small,
    normed: Normed,
    regressor: Regressor,
    binary: Binary,
}

/// The public API: every operation of the program on one of four models (softmax, batch
/// normalisation and dropout, mean squared error, sigmoid), with one optimizer.
pub struct Api {
    models: Models,
}

impl Api {
    /// A target whose models are freshly initialised.
    pub fn new() -> Self {
        Api {
            models: Models {
                small: Small::new(),
                normed: Normed::new(),
                regressor: Regressor::new(),
                binary: Binary::new(),
            },
        }
    }
}

impl Default for Api {
    fn default() -> Self {
        Self::new()
    }
}

/// Most operations one case runs.
const MAX_OPS: usize = 12;

impl Target for Api {
    fn name(&self) -> &'static str {
        "api"
    }

    fn mutate(&self, rng: &mut Rng, parent: &[u8], other: &[u8]) -> Vec<u8> {
        let mut out = parent.to_vec();
        mutate::bytes(rng, &mut out, other);
        out.truncate(256);
        out
    }

    fn run(&mut self, _config: &str, input: &[u8]) -> Outcome {
        let mut r = Reader { data: input, at: 0 };
        let mut m = self.models.clone();
        let mut opt: Box<dyn Optimizer> = Box::new(Sgd::new(0.01, 0.9).expect("valid"));
        let mut trace = Vec::new();
        for _ in 0..MAX_OPS {
            if r.done() {
                break;
            }
            let step = match r.byte() % 6 {
                0 => operate(&mut r, &mut m.small, &mut opt)?,
                1 => operate(&mut r, &mut m.normed, &mut opt)?,
                2 => operate(&mut r, &mut m.regressor, &mut opt)?,
                3 => operate(&mut r, &mut m.binary, &mut opt)?,
                4 => augment(&mut r),
                _ => {
                    let x: [f32; 64] = std::array::from_fn(|i| if i == 0 { r.pick(&FLOATS) } else { 0.5 });
                    let _ = m.small.probabilities(&x);
                    let class = m.small.classify(&x);
                    if class >= 10 {
                        return Err(Failure::new(Oracle::WrongResult, format!("classify gave class {class} of 10")));
                    }
                    "classified".into()
                }
            };
            trace.push(step);
        }
        Ok(trace.join(" "))
    }
}
