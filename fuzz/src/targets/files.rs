//! The safetensors loaders: `cnn::io::load_weights` and `cnn::io::load_checkpoint`.

use std::path::Path;

use cnn::io::{load_checkpoint_with, load_weights_with, Options, Progress};
use cnn::optim::MAX_STEPS;
use cnn::{Adam, AdamW, Model, Noise, Optimizer, Sgd};

use super::data::signature;
use crate::models::{batch, labels, Normed, Small};
use crate::mutate;
use crate::rng::Rng;
use crate::runner::{Failure, Oracle, Outcome, Target};
use crate::work::Work;

/// The loads' options: the defaults, under [`crate::LOAD_LIMIT`].
const OPTIONS: Options = Options { limit: crate::LOAD_LIMIT, allow_non_finite: false };

/// An optimizer of a kind checkpoints are written with, cloneable so that every case starts
/// from the same state.
#[derive(Clone, Debug)]
pub enum Opt {
    /// SGD, with or without momentum.
    Sgd(Sgd),
    /// Adam.
    Adam(Adam),
    /// AdamW.
    AdamW(AdamW),
}

impl Opt {
    /// The optimizer of a configuration's kind: `sgd`, `sgdm` (Nesterov momentum and weight
    /// decay), `adam` or `adamw`; Adam for anything else.
    pub fn of(kind: &str) -> Opt {
        let opt = match kind {
            "sgd" => Sgd::new(0.1, 0.0).map(Opt::Sgd),
            "sgdm" => Sgd::new(0.05, 0.9)
                .and_then(|o| o.with_nesterov(true))
                .and_then(|o| o.with_weight_decay(1e-4))
                .map(Opt::Sgd),
            "adamw" => AdamW::new(1e-3).map(Opt::AdamW),
            _ => Adam::new(1e-3).map(Opt::Adam),
        };
        opt.expect("valid hyperparameters")
    }

    /// As the trait object the loaders take.
    pub fn as_dyn(&mut self) -> &mut dyn Optimizer {
        match self {
            Opt::Sgd(o) => o,
            Opt::Adam(o) => o,
            Opt::AdamW(o) => o,
        }
    }

    /// As a shared trait object.
    pub fn as_shared(&self) -> &dyn Optimizer {
        match self {
            Opt::Sgd(o) => o,
            Opt::Adam(o) => o,
            Opt::AdamW(o) => o,
        }
    }
}

/// Everything a load may change, with floats as bits so that NaN equals itself.
#[derive(Clone, Debug, PartialEq)]
struct Snapshot {
    params: Vec<u32>,
    buffers: Vec<u32>,
    noise: Noise,
    state: Vec<(&'static str, Vec<u32>)>,
    counters: Vec<(&'static str, u64)>,
    learning_rate: u32,
    describe: String,
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

impl Snapshot {
    fn of<M: Model>(model: &M, opt: &dyn Optimizer) -> Snapshot {
        Snapshot {
            params: bits(model.params()),
            buffers: bits(model.buffers()),
            noise: model.noise(),
            state: opt.state().into_iter().map(|(name, values)| (name, bits(values))).collect(),
            counters: opt.counters(),
            learning_rate: opt.learning_rate().to_bits(),
            describe: opt.describe(),
        }
    }

    /// The first part that differs from `other`.
    fn diff(&self, other: &Snapshot) -> Option<String> {
        let state = |s: &Snapshot| s.state.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
        if self.params != other.params {
            Some("the parameters".into())
        } else if self.buffers != other.buffers {
            Some("the buffers".into())
        } else if self.noise != other.noise {
            Some(format!("the noise ({:?} vs {:?})", self.noise, other.noise))
        } else if self.state != other.state {
            let differs = self.state.iter().zip(&other.state).find(|(a, b)| a != b).map(|(a, _)| a.0);
            match differs.filter(|_| state(self) == state(other)) {
                Some(name) => Some(format!("the optimizer state `{name}`")),
                None => Some(format!("the optimizer state ([{}] vs [{}])", state(self), state(other))),
            }
        } else if self.counters != other.counters {
            Some(format!("the optimizer counters ({:?} vs {:?})", self.counters, other.counters))
        } else if self.learning_rate != other.learning_rate {
            Some("the learning rate".into())
        } else if self.describe != other.describe {
            Some(format!("the optimizer ({} vs {})", self.describe, other.describe))
        } else {
            None
        }
    }
}

/// The first value of `values` that is not finite.
fn non_finite(values: &[f32]) -> Option<f32> {
    values.iter().copied().find(|v| !v.is_finite())
}

/// A model and optimizers that have trained on data unlike the corpus's, so that a load that
/// keeps part of the old state is told from one that replaces it.
struct Rig<M: Model> {
    fresh: M,
    model: M,
    opts: Vec<(&'static str, Opt)>,
}

const KINDS: [&str; 4] = ["sgd", "sgdm", "adam", "adamw"];

impl<M: Model> Rig<M> {
    fn new(fresh: M) -> Rig<M> {
        let x: Vec<f32> = batch(4, M::INPUT_LEN).iter().map(|v| 1.0 - v).collect();
        let y: Vec<usize> = labels(4, M::OUTPUT_LEN).iter().map(|l| (l + 1) % M::OUTPUT_LEN).collect();
        let mut model = fresh.clone();
        let opts = KINDS
            .iter()
            .map(|&kind| {
                let mut opt = Opt::of(kind);
                let mut m = fresh.clone();
                for _ in 0..3 {
                    m.train_step(opt.as_dyn(), &x, &y).expect("a valid batch");
                }
                model = m;
                (kind, opt)
            })
            .collect();
        Rig { fresh, model, opts }
    }

    fn opt(&self, kind: &str) -> Opt {
        self.opts.iter().find(|(k, _)| *k == kind).map_or_else(|| Opt::of(kind), |(_, o)| o.clone())
    }

    /// A successful load must leave finite parameters and buffers.
    fn check_finite(model: &M, what: &str) -> Result<(), Failure> {
        for (part, values) in [("parameter", model.params()), ("buffer", model.buffers())] {
            if let Some(v) = non_finite(values) {
                return Err(Failure::new(Oracle::NonFiniteWeights, format!("{what} loaded a {part} of {v}")));
            }
        }
        Ok(())
    }

    fn weights(&self, path: &Path, dir: &Path) -> Outcome {
        let mut model = self.model.clone();
        let before = Snapshot::of(&model, Opt::of("sgd").as_shared());
        if let Err(e) = load_weights_with(&mut model, path, OPTIONS) {
            if let Some(what) = before.diff(&Snapshot::of(&model, Opt::of("sgd").as_shared())) {
                return Err(Failure::new(
                    Oracle::FailedLoadChanged,
                    format!("a failed weights load changed {what}: {e}"),
                ));
            }
            return Ok(signature(&e, dir));
        }
        Self::check_finite(&model, "load_weights")?;
        model.evaluate(&batch(2, M::INPUT_LEN), &labels(2, M::OUTPUT_LEN), 2).map_err(|e| {
            Failure::new(Oracle::WrongResult, format!("evaluation of a valid batch after load_weights failed: {e}"))
        })?;
        Ok("loaded".into())
    }

    fn checkpoint(&self, kind: &str, path: &Path, dir: &Path) -> Outcome {
        let (mut model, mut opt) = (self.model.clone(), self.opt(kind));
        let before = Snapshot::of(&model, opt.as_shared());
        let loaded = load_checkpoint_with(&mut model, opt.as_dyn(), path, OPTIONS);
        let after = Snapshot::of(&model, opt.as_shared());
        let progress = match loaded {
            Ok(progress) => progress,
            Err(e) => {
                if let Some(what) = before.diff(&after) {
                    return Err(Failure::new(
                        Oracle::FailedLoadChanged,
                        format!("a failed checkpoint load changed {what}: {e}"),
                    ));
                }
                return Ok(signature(&e, dir));
            }
        };
        check_state(opt.as_shared())?;
        Self::check_finite(&model, "load_checkpoint")?;
        let (mut fresh_model, mut fresh_opt) = (self.fresh.clone(), Opt::of(kind));
        match load_checkpoint_with(&mut fresh_model, fresh_opt.as_dyn(), path, OPTIONS) {
            Err(e) => {
                return Err(Failure::new(
                    Oracle::LoadDependsOnPrevious,
                    format!("the checkpoint loads after training steps but not into a fresh model and optimizer: {e}"),
                ))
            }
            Ok(again) => {
                let diff = Snapshot::of(&fresh_model, fresh_opt.as_shared()).diff(&after);
                if let Some(what) = diff.or_else(|| (again != progress).then(|| "the progress".to_string())) {
                    return Err(Failure::new(
                        Oracle::LoadDependsOnPrevious,
                        format!("loaded into a fresh model and optimizer and into trained ones, {what} differ"),
                    ));
                }
            }
        }
        train_after_load(&mut model, &mut opt, progress)
    }
}

/// The optimizer's state after a successful checkpoint load must be one training can go on
/// from.
fn check_state(opt: &dyn Optimizer) -> Result<(), Failure> {
    let lr = opt.learning_rate();
    if !(lr.is_finite() && lr > 0.0) {
        return Err(Failure::new(Oracle::LoadedState, format!("learning rate {lr} after a successful load")));
    }
    for (name, values) in opt.state() {
        if let Some(v) = non_finite(values) {
            return Err(Failure::new(Oracle::LoadedState, format!("optimizer state `{name}` holds {v}")));
        }
    }
    for (name, value) in opt.counters() {
        if value > MAX_STEPS {
            return Err(Failure::new(
                Oracle::LoadedState,
                format!("optimizer counter `{name}` is {value}, past {MAX_STEPS}"),
            ));
        }
    }
    Ok(())
}

/// Words for a value's size, so that findings differing only in magnitudes stay apart.
fn magnitude(values: &[f32]) -> &'static str {
    let max = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    if max > 1e18 {
        "huge"
    } else if max > 1e3 {
        "large"
    } else {
        "moderate"
    }
}

/// One training step after a successful load must fail or give a finite loss and finite
/// parameters.
fn train_after_load<M: Model>(model: &mut M, opt: &mut Opt, progress: Progress) -> Outcome {
    let (x, y) = (batch(4, M::INPUT_LEN), labels(4, M::OUTPUT_LEN));
    let describe = |opt: &Opt, model: &M| {
        let o = opt.as_shared();
        let mut parts = vec![format!("lr {}", magnitude(&[o.learning_rate()]))];
        for (name, values) in o.state() {
            let negative = if values.iter().any(|v| *v < 0.0) { ", negative values" } else { "" };
            parts.push(format!("{name} {}{negative}", magnitude(values)));
        }
        parts.push(format!("parameters {}", magnitude(model.params())));
        parts.extend(o.counters().iter().map(|(n, v)| format!("{n} {v}")));
        parts.join("; ")
    };
    let state = describe(opt, model);
    match model.train_step(opt.as_dyn(), &x, &y) {
        Ok(loss) if !loss.is_finite() => Err(Failure::new(
            Oracle::TrainAfterLoad,
            format!("loss {loss} on the first step after a load ({state}; progress {progress:?})"),
        )),
        Ok(_) => match non_finite(model.params()) {
            Some(v) => Err(Failure::new(
                Oracle::TrainAfterLoad,
                format!("a parameter of {v} after the first step after a load ({state})"),
            )),
            None => Ok("loaded and trained".into()),
        },
        Err(e) => Ok(format!("loaded; training fails: {e}")),
    }
}

/// Mutates safetensors files structurally or byte by byte.
fn mutate_safetensors(rng: &mut Rng, parent: &[u8], other: &[u8]) -> Vec<u8> {
    if rng.one_in(4) {
        let mut out = parent.to_vec();
        mutate::bytes(rng, &mut out, other);
        out
    } else {
        mutate::safetensors(rng, parent, other)
    }
}

/// `cnn::io::load_weights` into [`Small`] or [`Normed`] (the configuration `small` or
/// `normed`).
pub struct Weights {
    work: Work,
    small: Rig<Small>,
    normed: Rig<Normed>,
}

impl Weights {
    /// A target with trained models and its scratch directory.
    pub fn new() -> Self {
        Weights { work: Work::new("weights"), small: Rig::new(Small::new()), normed: Rig::new(Normed::new()) }
    }
}

impl Default for Weights {
    fn default() -> Self {
        Self::new()
    }
}

impl Target for Weights {
    fn name(&self) -> &'static str {
        "weights"
    }

    fn mutate(&self, rng: &mut Rng, parent: &[u8], other: &[u8]) -> Vec<u8> {
        mutate_safetensors(rng, parent, other)
    }

    fn run(&mut self, config: &str, input: &[u8]) -> Outcome {
        let path = self.work.write("model.safetensors", input);
        match config {
            "normed" => self.normed.weights(&path, self.work.dir()),
            _ => self.small.weights(&path, self.work.dir()),
        }
    }

    fn configs(&self) -> &'static [&'static str] {
        &["small", "normed"]
    }
}

/// `cnn::io::load_checkpoint` into a model and optimizer named by the configuration, such as
/// `small-adam` or `normed-sgdm` (see [`Opt::of`]).
pub struct Checkpoint {
    work: Work,
    small: Rig<Small>,
    normed: Rig<Normed>,
}

impl Checkpoint {
    /// A target with trained models and optimizers and its scratch directory.
    pub fn new() -> Self {
        Checkpoint { work: Work::new("checkpoint"), small: Rig::new(Small::new()), normed: Rig::new(Normed::new()) }
    }
}

impl Default for Checkpoint {
    fn default() -> Self {
        Self::new()
    }
}

/// The checkpoint configurations: each model with each optimizer kind.
pub const CHECKPOINT_CONFIGS: [&str; 8] = [
    "small-sgd",
    "small-sgdm",
    "small-adam",
    "small-adamw",
    "normed-sgd",
    "normed-sgdm",
    "normed-adam",
    "normed-adamw",
];

impl Target for Checkpoint {
    fn name(&self) -> &'static str {
        "checkpoint"
    }

    fn mutate(&self, rng: &mut Rng, parent: &[u8], other: &[u8]) -> Vec<u8> {
        mutate_safetensors(rng, parent, other)
    }

    fn run(&mut self, config: &str, input: &[u8]) -> Outcome {
        let path = self.work.write("model.ckpt", input);
        let (model, kind) = config.split_once('-').unwrap_or(("small", "adam"));
        match model {
            "normed" => self.normed.checkpoint(kind, &path, self.work.dir()),
            _ => self.small.checkpoint(kind, &path, self.work.dir()),
        }
    }

    fn configs(&self) -> &'static [&'static str] {
        &CHECKPOINT_CONFIGS
    }
}
