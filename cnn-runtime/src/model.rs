//! The traits every generated model implements: [`Network`], its layers and parameters, and
//! [`Model`], its one output.

use core::ops::{Bound, RangeBounds};

use crate::compiled::{activations, backward_unchecked, forward_pair_unchecked, forward_unchecked, Compiled, State};
use crate::init::{rng, splitmix};
use crate::kernels::{in_pool, Loss, Targets};
use crate::optim::{check_count, first_non_finite, Segment, StepCheck};
use crate::prelude::*;
use crate::{Error, Optimizer, Result, Shape};

/// One row of a model's layer table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    /// The layer as written in the model, e.g. `conv(5x5, 6, pad=2)`; `residual` for the row
    /// that opens a block, whose layers follow it one level deeper.
    pub layer: &'static str,
    /// The name of the equivalent PyTorch module, such as `3` or `4.body.0` (empty for `input`).
    pub path: &'static str,
    /// How many `residual` blocks the layer is inside.
    pub depth: usize,
    /// Its output volume.
    pub output: Shape,
    /// Its number of parameters (a block's: all of its layers').
    pub params: usize,
    /// Where its parameters start in [`Network::params`] (and its gradient in [`Network::grads`]).
    pub offset: usize,
}

/// One tensor of a model's parameters, named and shaped as in the equivalent
/// `torch.nn.Sequential` (`0.weight`, `0.bias`, `3.weight`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The PyTorch `state_dict` name.
    pub name: &'static str,
    /// The PyTorch shape: `[K, D, FH, FW]` for convolution weights, `[out, in]` for fully
    /// connected ones, `[n]` for biases.
    pub shape: &'static [usize],
    /// Where it starts in [`Network::params`], or in [`Network::buffers`] for a buffer.
    pub offset: usize,
    /// What the tensor is.
    pub kind: TensorKind,
}

/// What a tensor of a model holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorKind {
    /// A convolution or fully connected weight: trained, and decayed by weight decay.
    Weight,
    /// A bias: trained, not decayed.
    Bias,
    /// Batch normalisation's scale or shift: trained, not decayed.
    Norm,
    /// A running statistic of batch normalisation: in [`Network::buffers`], not trained.
    Statistic,
    /// Batch normalisation's count of training batches: in [`Network::buffers`], saved as a
    /// 64-bit integer as PyTorch keeps it.
    Count,
}

impl TensorKind {
    /// Whether the tensor is a trained parameter (in [`Network::params`]).
    pub fn is_param(self) -> bool {
        matches!(self, TensorKind::Weight | TensorKind::Bias | TensorKind::Norm)
    }
}

impl TensorInfo {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether it holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What every generated model has: its layers, parameters, buffers and the state of training
/// (dropout masks, frozen layers), with what serves any model whatever its outputs: saving and
/// loading ([`crate::io`]), optimizer updates ([`apply`](Network::apply)) and freezing.
///
/// [`Model`] builds on it with the side of a model that has one output: the forward pass, the
/// loss and its gradient, training steps, predictions and evaluation. Both are implemented by
/// `cnn!` for each model, so a program calling methods of both brings both in scope
/// (`use cnn::{Model, Network}`, or `use cnn::prelude::*`).
///
/// Parameters, gradients and buffers are flat `f32` storage, layer after layer, each tensor in
/// PyTorch's layout, as [`TENSORS`](Network::TENSORS) places them.
///
/// Only `cnn!` implements it: the layers and their passes are generated with each model, every
/// method here is written once on top of them.
pub trait Network: Compiled + Clone + Send + Sync + 'static {
    /// The input volume, as written in `input(...)`.
    const INPUT: Shape;
    /// Values per input sample.
    const INPUT_LEN: usize;
    /// Number of trainable parameters.
    const PARAM_COUNT: usize;
    /// Number of non-trained values kept with the parameters (batch normalisation's running
    /// statistics).
    const BUFFER_COUNT: usize;
    /// The smallest batch a training step accepts: 2 when a `batchnorm` normalises single
    /// values per channel (after `fc`), whose batch variance one sample cannot give, else 1.
    const MIN_TRAIN_BATCH: usize;
    /// Floating-point operations of one sample's forward pass in its convolution and fully
    /// connected layers (multiply-adds count two).
    const FLOPS_PER_SAMPLE: u64;
    /// The layer table: each layer as written, its output shape and parameter count.
    const LAYERS: &'static [LayerInfo];
    /// The parameter and buffer tensors, in PyTorch's names, shapes and order.
    const TENSORS: &'static [TensorInfo];
    /// The model as a tree of operations with their shapes: its `input`, then each layer, a
    /// block holding its branches ([`crate::graph`]).
    const GRAPH: &'static [crate::graph::Node];
    /// The layer table as text, like Keras' `model.summary()`.
    const SUMMARY: &'static str;
    /// The equivalent PyTorch model: a `torch.nn.Sequential(...)` expression, preceded by the
    /// definition of a small `Residual` module when the model has residual blocks.
    const PYTORCH: &'static str;
    /// The layer list in the DSL's canonical spelling, such as `input(4) fc(2) softmax`.
    const DSL: &'static str;

    /// All parameters, layer after layer, each in PyTorch's layout (weights, then biases).
    fn params(&self) -> &[f32] {
        &self.state().params
    }

    /// All parameters, mutable.
    fn params_mut(&mut self) -> &mut [f32] {
        &mut self.state_mut().params
    }

    /// The gradient of the last [`loss_and_grad`](Model::loss_and_grad), same layout as the
    /// parameters.
    fn grads(&self) -> &[f32] {
        &self.state().grads
    }

    /// The buffers (batch normalisation's running mean, variance and batch count), layer after
    /// layer, as [`TENSORS`](Network::TENSORS) places them.
    fn buffers(&self) -> &[f32] {
        &self.state().buffers
    }

    /// The buffers, mutable.
    fn buffers_mut(&mut self) -> &mut [f32] {
        &mut self.state_mut().buffers
    }

    /// Re-initialises every parameter and buffer as PyTorch does by default, from `seed`, and
    /// restarts the dropout masks from `seed`.
    fn init(&mut self, seed: u64) {
        self.init_layers(rng(seed));
        self.state_mut().reset(seed);
    }

    /// Where the dropout masks stand: their seed and the number of training passes so far.
    fn noise(&self) -> Noise {
        self.state().noise
    }

    /// Sets where the dropout masks stand, for resuming training.
    fn set_noise(&mut self, noise: Noise) {
        self.state_mut().noise = noise;
    }

    /// The parameters of layer `index` of [`LAYERS`](Network::LAYERS) (weights, then biases;
    /// empty for a layer without parameters), or `None` past the last layer.
    fn layer_params(&self, index: usize) -> Option<&[f32]> {
        let info = Self::LAYERS.get(index)?;
        Some(&self.params()[info.offset..info.offset + info.params])
    }

    /// The gradient of the parameters of layer `index`, laid out as
    /// [`layer_params`](Network::layer_params).
    fn layer_grads(&self, index: usize) -> Option<&[f32]> {
        let info = Self::LAYERS.get(index)?;
        Some(&self.grads()[info.offset..info.offset + info.params])
    }

    /// Lets `opt` update the parameters not frozen from the current gradient.
    ///
    /// An update that would leave a parameter or the optimizer's state not finite is
    /// [`Error::Diverged`] and changes nothing. Optimizers that can tell beforehand
    /// ([`Optimizer::check_step`], as all of [`crate::optim`]'s) cost one read-only pass over the
    /// parameters for this; for others the model keeps a copy of the parameters and the
    /// optimizer's state to undo the update.
    fn apply<O: Optimizer + ?Sized>(&mut self, opt: &mut O) -> Result<()> {
        let state = self.state_mut();
        // The optimizers' passes over long runs of parameters are parallel: on the pool.
        in_pool(|| apply_update::<Self, O>(state, opt))
    }

    /// The parameter runs an optimizer updates: every tensor of the layers not frozen, with
    /// weight decay marked for the weights of `conv` and `fc` layers only.
    fn segments(&self) -> &[Segment] {
        &self.state().segments
    }

    /// Freezes the layers of `layers` (indices into [`LAYERS`](Network::LAYERS); a `residual` row
    /// covers its whole block): [`train_step`](Model::train_step) leaves their parameters
    /// unchanged, as for transfer learning. Batch normalisation's running statistics still
    /// follow the data in training mode.
    fn freeze(&mut self, layers: impl RangeBounds<usize>) -> Result<()> {
        self.set_frozen(layers, true)
    }

    /// Undoes [`freeze`](Network::freeze) for `layers`.
    fn unfreeze(&mut self, layers: impl RangeBounds<usize>) -> Result<()> {
        self.set_frozen(layers, false)
    }

    /// Freezes (`true`) or unfreezes the layers of `layers`.
    fn set_frozen(&mut self, layers: impl RangeBounds<usize>, frozen: bool) -> Result<()> {
        let count = Self::LAYERS.len();
        let start = match layers.start_bound() {
            Bound::Included(&s) => Some(s),
            Bound::Excluded(&s) => s.checked_add(1),
            Bound::Unbounded => Some(0),
        };
        let (start, end) = match (start, layers.end_bound()) {
            (Some(s), Bound::Included(&e)) => (s, e.checked_add(1)),
            (Some(s), Bound::Excluded(&e)) => (s, Some(e)),
            (Some(s), Bound::Unbounded) => (s, Some(count)),
            (None, _) => (usize::MAX, None),
        };
        let Some(end) = end.filter(|&e| start <= e && e <= count) else {
            return Err(Error::InvalidArgument {
                name: "layers",
                reason: format!(
                    "{:?}..{:?} is not a range of this model's {count} layers",
                    layers.start_bound(),
                    layers.end_bound()
                ),
            });
        };
        self.state_mut().set_frozen(Self::LAYERS, Self::TENSORS, start..end, frozen);
        Ok(())
    }

    /// Whether layer `index` of [`LAYERS`](Network::LAYERS) is frozen, on its own or inside a
    /// frozen `residual` block.
    fn is_frozen(&self, index: usize) -> bool {
        let frozen = &self.state().frozen;
        let Some(row) = Self::LAYERS.get(index) else { return false };
        if frozen[index] {
            return true;
        }
        // The nearest row above with a smaller depth opens the enclosing block.
        let mut depth = row.depth;
        for i in (0..index).rev() {
            if depth == 0 {
                break;
            }
            if Self::LAYERS[i].depth < depth {
                if frozen[i] {
                    return true;
                }
                depth = Self::LAYERS[i].depth;
            }
        }
        false
    }
}

/// A network generated by `cnn!` with one output: fixed shapes, batched forward and backward
/// passes, training steps, predictions and evaluation, on top of the layers, parameters and
/// training state of [`Network`].
///
/// Batches are `n` samples stored one after the other, each in NCHW order (channels, rows,
/// columns), so `x.len()` must be a multiple of [`Network::INPUT_LEN`]. Training loops, optimizers
/// and metrics are written once against this trait and work with every generated model.
///
/// Training and evaluation differ where the model has dropout or batch normalisation: the
/// training methods ([`loss_and_grad`](Model::loss_and_grad), [`train_step`](Model::train_step)
/// and their `_targets` forms) run in training mode (dropout active, batch statistics, running
/// statistics updated); every other method evaluates (no dropout, running statistics).
///
/// Only `cnn!` implements it: the layers and their passes are generated with each model, every
/// method here is written once on top of them.
pub trait Model: Network {
    /// Values per output sample: the number of classes of a classifier.
    const OUTPUT_LEN: usize;
    /// The training loss, fixed by the last layer (or a final `loss(...)`).
    const LOSS: Loss;

    /// The outputs of a batch (class probabilities for a classifier), in evaluation mode:
    /// `n * OUTPUT_LEN` values, sample after sample.
    fn forward(&mut self, x: &[f32]) -> Result<&[f32]> {
        let n = batch_len::<Self>(x)?;
        Ok(in_pool(|| forward_unchecked(self, n, x)))
    }

    /// Mean loss of a batch against class labels, in training mode; leaves its gradient in
    /// [`grads`](Network::grads).
    ///
    /// A label is a class index below [`classes`](Model::classes). For a mean-squared-error
    /// model it stands for the one-hot vector; for a sigmoid model with one output, for 0 or 1.
    ///
    /// A pass whose loss, gradient or running statistics are not finite is
    /// [`Error::Diverged`], naming the first layer whose values went non-finite; the running
    /// statistics and the dropout counter are then put back as they were.
    fn loss_and_grad(&mut self, x: &[f32], labels: &[usize]) -> Result<f32> {
        self.loss_and_grad_targets_of(x, Targets::Labels(labels))
    }

    /// Mean loss of a batch against target values (`n * OUTPUT_LEN` of them: regression targets,
    /// multi-label 0/1 vectors, class probabilities), in training mode; leaves its gradient in
    /// [`grads`](Network::grads). Diverging passes are refused as by
    /// [`loss_and_grad`](Model::loss_and_grad).
    fn loss_and_grad_targets(&mut self, x: &[f32], targets: &[f32]) -> Result<f32> {
        self.loss_and_grad_targets_of(x, Targets::Dense(targets))
    }

    /// [`loss_and_grad`](Model::loss_and_grad) for either kind of target.
    fn loss_and_grad_targets_of(&mut self, x: &[f32], targets: Targets<'_>) -> Result<f32> {
        training_pass(
            self,
            x,
            |n| Self::LOSS.check(n, Self::OUTPUT_LEN, targets),
            |model, n| backward_unchecked(model, n, x, &|_| targets),
        )
    }

    /// One step of mini-batch training against class labels: loss and gradient of the batch,
    /// then the optimizer's update of every parameter not frozen. Returns the batch's mean loss
    /// (before the update).
    ///
    /// A step that would leave any value not finite (the loss, a gradient, a running statistic,
    /// a parameter or the optimizer's state: a diverging run) is [`Error::Diverged`], naming the
    /// step and the first layer whose values went non-finite, and is undone: the parameters,
    /// running statistics, dropout counter and optimizer state are as before the step.
    fn train_step<O: Optimizer + ?Sized>(&mut self, opt: &mut O, x: &[f32], labels: &[usize]) -> Result<f32> {
        self.train_step_of(opt, x, Targets::Labels(labels))
    }

    /// [`train_step`](Model::train_step) against target values, as
    /// [`loss_and_grad_targets`](Model::loss_and_grad_targets) takes them.
    fn train_step_targets<O: Optimizer + ?Sized>(&mut self, opt: &mut O, x: &[f32], targets: &[f32]) -> Result<f32> {
        self.train_step_of(opt, x, Targets::Dense(targets))
    }

    /// [`train_step`](Model::train_step) for either kind of target.
    fn train_step_of<O: Optimizer + ?Sized>(&mut self, opt: &mut O, x: &[f32], targets: Targets<'_>) -> Result<f32> {
        training_step(self, opt, |model| model.loss_and_grad_targets_of(x, targets))
    }

    /// Number of classes a label may name: [`OUTPUT_LEN`](Model::OUTPUT_LEN), or 2 for a model
    /// with one sigmoid output.
    fn classes() -> usize {
        Self::LOSS.classes(Self::OUTPUT_LEN)
    }

    /// The most probable class of each sample, written into `out` (one per sample).
    fn predict_into(&mut self, x: &[f32], out: &mut [usize]) -> Result<()> {
        let n = batch_len::<Self>(x)?;
        if out.len() != n {
            return Err(Error::OutputLength { expected: n, found: out.len() });
        }
        let probs = in_pool(|| forward_unchecked(self, n, x));
        for (o, p) in out.iter_mut().zip(probs.chunks_exact(Self::OUTPUT_LEN)) {
            *o = Self::LOSS.classify(p);
        }
        Ok(())
    }

    /// The most probable class of each sample.
    fn predict(&mut self, x: &[f32]) -> Result<Vec<usize>> {
        let mut out = vec![0; batch_len::<Self>(x)?];
        self.predict_into(x, &mut out)?;
        Ok(out)
    }

    /// Mean loss and accuracy over a whole labelled data set, in evaluation mode, in batches of
    /// `batch` samples.
    fn evaluate(&mut self, x: &[f32], labels: &[usize], batch: usize) -> Result<Evaluation> {
        self.evaluate_of(x, Targets::Labels(labels), batch)
    }

    /// Mean loss over a whole data set with target values, in evaluation mode, in batches of
    /// `batch` samples. The accuracy compares the predicted class with the target's largest
    /// value; for a sigmoid model it is the fraction of outputs on the same side of 0.5 as their
    /// targets (multi-label, per-pixel).
    fn evaluate_targets(&mut self, x: &[f32], targets: &[f32], batch: usize) -> Result<Evaluation> {
        self.evaluate_of(x, Targets::Dense(targets), batch)
    }

    /// [`evaluate`](Model::evaluate) for either kind of target.
    fn evaluate_of(&mut self, x: &[f32], targets: Targets<'_>, batch: usize) -> Result<Evaluation> {
        let n = batch_len::<Self>(x)?;
        Self::LOSS.check(n, Self::OUTPUT_LEN, targets)?;
        if batch == 0 {
            return Err(Error::InvalidArgument { name: "batch", reason: "must be at least 1".into() });
        }
        // No batch holds more than the whole set, which also keeps `batch * INPUT_LEN` in range.
        let batch = batch.min(n);
        let k = Self::OUTPUT_LEN;
        let (loss, hits) = in_pool(|| {
            let (mut loss, mut hits) = (0.0f64, 0.0f64);
            for (b, xs) in x.chunks(batch * Self::INPUT_LEN).enumerate() {
                let m = xs.len() / Self::INPUT_LEN;
                let range = b * batch..b * batch + m;
                let part = match targets {
                    Targets::Labels(l) => Targets::Labels(&l[range.clone()]),
                    Targets::Dense(t) => Targets::Dense(&t[range.start * k..range.end * k]),
                };
                let (z, out) = forward_pair_unchecked(self, m, xs);
                loss += Self::LOSS.loss_sum(m, k, z, out, part);
                hits += hits_of(Self::LOSS, k, out, part);
            }
            (loss, hits)
        });
        Ok(Evaluation { loss: (loss / n as f64) as f32, accuracy: (hits / n as f64) as f32 })
    }
}

/// Correct answers among the outputs `out` of a batch against `targets`: samples whose class is
/// right, or for a sigmoid model with target values the fraction of outputs on the right side
/// of 0.5, summed over the batch.
pub(crate) fn hits_of(loss: Loss, k: usize, out: &[f32], targets: Targets<'_>) -> f64 {
    let mut hits = 0.0;
    for (i, row) in out.chunks_exact(k).enumerate() {
        match targets {
            Targets::Dense(t) if loss == Loss::BinaryCrossEntropy => {
                let t = &t[i * k..(i + 1) * k];
                hits += row.iter().zip(t).filter(|(p, t)| (**p > 0.5) == (**t > 0.5)).count() as f64 / k as f64;
            }
            Targets::Dense(t) => {
                hits += f64::from(u8::from(loss.classify(row) == loss.classify(&t[i * k..(i + 1) * k])))
            }
            Targets::Labels(l) => hits += f64::from(u8::from(loss.classify(row) == l[i])),
        }
    }
    hits
}

/// A training pass of `model` over the batch `x` with every check that does not depend on its
/// outputs: the batch's length and values, `check` of the targets against the number of samples,
/// the smallest training batch and the pass counter. `pass` then runs the pass over the `n`
/// samples unchecked and returns the loss. A pass whose loss, gradient or running statistics
/// are not finite is [`Error::Diverged`], and its running statistics and dropout counter are put
/// back.
pub(crate) fn training_pass<N: Network>(
    model: &mut N,
    x: &[f32],
    check: impl FnOnce(usize) -> Result<()>,
    pass: impl FnOnce(&mut N, usize) -> f32 + Send,
) -> Result<f32> {
    let n = batch_len::<N>(x)?;
    check(n)?;
    if n < N::MIN_TRAIN_BATCH {
        return Err(Error::InvalidArgument {
            name: "batch",
            reason: format!(
                "a training batch of this model needs at least {} samples: batch normalisation after `fc` normalises each feature over the batch",
                N::MIN_TRAIN_BATCH
            ),
        });
    }
    let noise = model.noise();
    check_count("training pass count", noise.step.saturating_add(1))?;
    keep_buffers(model);
    // The checks scan the gradient in parallel: on the pool, as the pass.
    let checked = in_pool(|| {
        let loss = pass(model, n);
        check_pass(model, n, loss, noise.step).map(|()| loss)
    });
    if checked.is_err() {
        undo_pass(model, noise);
    }
    checked
}

/// A training step of `model`: `pass` (a checked training pass, as [`training_pass`] runs it)
/// leaves the gradient and returns the loss, then `opt` updates the parameters not frozen. An
/// update that fails is undone with the pass: running statistics and dropout counter as before.
pub(crate) fn training_step<N: Network, O: Optimizer + ?Sized>(
    model: &mut N,
    opt: &mut O,
    pass: impl FnOnce(&mut N) -> Result<f32> + Send,
) -> Result<f32> {
    let noise = model.noise();
    // One entry into the pool for the pass and the update.
    in_pool(|| {
        let loss = pass(model)?;
        if let Err(e) = model.apply(opt) {
            undo_pass(model, noise);
            return Err(e);
        }
        Ok(loss)
    })
}

/// Copies `values` into `into`, reusing its allocation.
fn keep(into: &mut Vec<f32>, values: &[f32]) {
    into.clear();
    into.extend_from_slice(values);
}

/// Keeps the running statistics before a training pass, to put back if it diverges.
fn keep_buffers<N: Network>(model: &mut N) {
    let state = model.state_mut();
    keep(&mut state.undo.buffers, &state.buffers);
}

/// Puts back what a training pass changed besides the gradient: the running statistics kept
/// before it and the dropout counter `noise`.
fn undo_pass<N: Network>(model: &mut N, noise: Noise) {
    let state = model.state_mut();
    state.buffers.copy_from_slice(&state.undo.buffers);
    state.noise = noise;
}

/// `Ok` when the pass over `n` samples left a finite loss, gradient and running statistics;
/// otherwise the error naming the first layer whose values went non-finite.
fn check_pass<N: Network>(model: &N, n: usize, loss: f32, step: u64) -> Result<()> {
    let bad_grad = first_non_finite(model.grads());
    let bad_buffer = first_non_finite(model.buffers());
    if loss.is_finite() && bad_grad.is_none() && bad_buffer.is_none() {
        return Ok(());
    }
    let diverged = |row: Option<usize>, reason: String| Error::Diverged { step, layer: layer_name::<N>(row), reason };
    // Forward first: the first layer whose outputs are not finite is where it began.
    let acts = activations(model);
    let mut at = 0;
    for &(row, len) in N::ACTIVATIONS {
        let Some(values) = acts.get(at..at + n * len) else { break };
        if let Some(i) = first_non_finite(values) {
            let reason = format!("its output {} of sample {} is {}", i % len, i / len, values[i]);
            return Err(diverged(Some(row), reason));
        }
        at += n * len;
    }
    if !loss.is_finite() {
        return Err(diverged(None, format!("the loss is {loss}")));
    }
    if bad_grad.is_some() {
        // The backward pass runs from the last layer, so the last row with a non-finite gradient
        // is the first one it reached.
        let row = N::LAYERS
            .iter()
            .rposition(|l| l.params > 0 && first_non_finite(&model.grads()[l.offset..l.offset + l.params]).is_some());
        return Err(diverged(row, "its parameters' gradient is not finite".into()));
    }
    let index = bad_buffer.unwrap_or_default();
    let tensor = N::TENSORS.iter().find(|t| !t.kind.is_param() && (t.offset..t.offset + t.len()).contains(&index));
    let path = tensor.map_or("", |t| t.name.rsplit_once('.').map_or(t.name, |(path, _)| path));
    let row = N::LAYERS.iter().position(|l| !l.path.is_empty() && l.path == path);
    Err(diverged(row, format!("its running statistics hold {}", model.buffers()[index])))
}

/// Row `row` of the layer table as a message names it; the loss for `None`.
fn layer_name<N: Network>(row: Option<usize>) -> String {
    match row.and_then(|r| N::LAYERS.get(r).map(|l| (r, l))) {
        Some((r, l)) if l.path.is_empty() => format!("layer {r} `{}`", l.layer),
        Some((r, l)) => format!("layer {r} `{}` (PyTorch module `{}`)", l.layer, l.path),
        None => "the loss".into(),
    }
}

/// The innermost row of the layer table that holds parameter `index`.
fn row_of_param<N: Network>(index: usize) -> Option<usize> {
    N::LAYERS.iter().rposition(|l| l.params > 0 && (l.offset..l.offset + l.params).contains(&index))
}

/// [`Network::apply`] on the values `state` of an `N`, refusing an update that leaves values not
/// finite.
fn apply_update<N: Network, O: Optimizer + ?Sized>(state: &mut State, opt: &mut O) -> Result<()> {
    let step = state.noise.step.saturating_sub(1);
    let diverged = |index: usize| Error::Diverged {
        step,
        layer: layer_name::<N>(row_of_param::<N>(index)),
        reason: format!("the update would make parameter {index} or its optimizer state non-finite"),
    };
    let State { params, grads, segments, undo, .. } = state;
    match opt.check_step(params, grads, segments) {
        StepCheck::Finite => opt.step(params, grads, segments),
        StepCheck::NonFinite { index } => Err(diverged(index)),
        StepCheck::Unknown => {
            // Keep what the step changes, take it, and put it back if anything went non-finite.
            keep(&mut undo.params, params);
            undo.state.clear();
            undo.state.extend(opt.state().into_iter().map(|(name, values)| (name, values.to_vec())));
            let counters = opt.counters();
            let mut result = opt.step(params, grads, segments);
            let bad = first_non_finite(params)
                .or_else(|| opt.state().iter().find_map(|(_, values)| first_non_finite(values)));
            if let (Ok(()), Some(index)) = (&result, bad) {
                params.copy_from_slice(&undo.params);
                opt.reset();
                for (name, values) in &undo.state {
                    opt.load_state(name, values)?;
                }
                for (name, value) in counters {
                    opt.load_counter(name, value)?;
                }
                result = Err(diverged(index));
            }
            result
        }
    }
}

/// Where a model's dropout masks stand: the seed they are drawn from and the number of
/// training passes so far. Each training pass draws new masks from both. The count goes up to
/// [`MAX_STEPS`](crate::optim::MAX_STEPS): a training pass past it is an `Err`, and a
/// checkpoint holding a larger count does not load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Noise {
    /// The seed of every mask.
    pub seed: u64,
    /// Training passes so far.
    pub step: u64,
}

impl Noise {
    /// Masks from `seed`, before the first training pass.
    pub const fn new(seed: u64) -> Self {
        Noise { seed, step: 0 }
    }

    /// The seed of the next training pass; counts the pass.
    pub fn next_step(&mut self) -> u64 {
        let seed = splitmix(self.seed ^ splitmix(self.step.wrapping_add(0x5851_f42d_4c95_7f2d)));
        self.step += 1;
        seed
    }
}

/// Mean loss and accuracy of a model on a data set, from [`Model::evaluate`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean loss, as [`Model::LOSS`] computes it.
    pub loss: f32,
    /// Fraction of samples classified correctly (for a sigmoid model with target values: of
    /// outputs on the right side of 0.5), in `[0, 1]`.
    pub accuracy: f32,
}

/// Fraction of `predictions` equal to `labels`, in `[0, 1]`.
pub fn accuracy(predictions: &[usize], labels: &[usize]) -> Result<f32> {
    if predictions.len() != labels.len() {
        return Err(Error::LabelCount { samples: predictions.len(), labels: labels.len() });
    }
    if labels.is_empty() {
        return Err(Error::EmptyBatch);
    }
    let hits = predictions.iter().zip(labels).filter(|(p, l)| p == l).count();
    Ok(hits as f32 / labels.len() as f32)
}

/// Number of samples in `x`, or an error naming the model's input shape or the first value
/// that is not finite (which ReLU and max pooling would otherwise hide).
pub(crate) fn batch_len<N: Network>(x: &[f32]) -> Result<usize> {
    samples(N::INPUT, x)
}

/// [`batch_len`] for samples of `shape`.
pub(crate) fn samples(shape: Shape, x: &[f32]) -> Result<usize> {
    let per = shape.len();
    if x.is_empty() {
        return Err(Error::EmptyBatch);
    }
    if !x.len().is_multiple_of(per) {
        return Err(Error::InputLength { shape, per_sample: per, found: x.len() });
    }
    if let Some(i) = first_non_finite(x) {
        return Err(Error::NonFiniteInput { sample: i / per, index: i % per, value: x[i].to_string() });
    }
    Ok(x.len() / per)
}
