//! Optimizers: update rules over a model's flat parameter and gradient buffers.
//!
//! [`Sgd`], [`Adam`] and [`AdamW`] follow the formulas of `torch.optim.SGD`, `torch.optim.Adam` and
//! `torch.optim.AdamW`, in PyTorch's order of operations. One difference: weight decay applies only
//! to the [`Segment`]s marked `decay` (a model marks its convolution and fully connected weights,
//! not its biases or normalisation parameters), where PyTorch's default decays every parameter.
//! Passing [`whole`] as the segments decays everything, as PyTorch does.
//!
//! ```
//! use cnn::optim::whole;
//! use cnn::{cnn, Adam, Model, Optimizer, Sgd};
//!
//! cnn! { struct Tiny < input(4) fc(8) relu fc(3) softmax > }
//!
//! // SGD with Nesterov momentum and L2 weight decay, which applies to the weights, not the biases.
//! let mut model = Tiny::with_seed(1);
//! let mut opt = Sgd::new(0.05, 0.9)?.with_nesterov(true)?.with_weight_decay(5e-4)?;
//! let loss = model.train_step(&mut opt, &[0.5, -1.0, 0.25, 2.0], &[2])?;
//! assert!(loss.is_finite());
//!
//! // Any optimizer also steps a plain slice: Adam's first step moves each value by about the
//! // learning rate, against its gradient.
//! let mut w = [1.0, -2.0];
//! let mut adam = Adam::new(0.1)?;
//! adam.step(&mut w, &[2.0, -4.0], &whole(2))?;
//! assert!((w[0] - 0.9).abs() < 1e-6 && (w[1] + 1.9).abs() < 1e-6);
//! # Ok::<(), cnn::Error>(())
//! ```

use core::ops::Range;

#[cfg(feature = "std")]
use rayon::prelude::*;

use crate::kernels::{for_each_chunk, ChunksMut, MAX_CHUNKS};
#[cfg(not(feature = "std"))]
use crate::math::Float;
use crate::prelude::*;
use crate::{Error, Result};

/// A run of parameters `start..end` that an optimizer updates, and whether weight decay applies to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Index of the first parameter of the run.
    pub start: usize,
    /// One past the index of the last parameter of the run.
    pub end: usize,
    /// Whether weight decay (L2, L1 or decoupled) applies to the run.
    pub decay: bool,
}

/// One segment covering all `len` parameters, with weight decay: the layout for a plain slice, under
/// which weight decay applies to every parameter as in PyTorch's default.
pub fn whole(len: usize) -> [Segment; 1] {
    [Segment { start: 0, end: len, decay: true }]
}

/// The largest value of every step counter: [`Adam`]'s step count and a model's count of
/// training passes ([`Noise::step`](crate::Noise::step)). Up to 2^53 an `f64` counts exactly;
/// a step that would pass it is an `Err`, and a checkpoint holding a larger count does not load.
pub const MAX_STEPS: u64 = 1 << 53;

/// What an optimizer can tell about a step before taking it, from [`Optimizer::check_step`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepCheck {
    /// The step leaves every parameter and every state value finite.
    Finite,
    /// The step would make parameter `index`, or its state, non-finite (NaN or infinite).
    NonFinite {
        /// Index of the first such parameter.
        index: usize,
    },
    /// The optimizer cannot tell without taking the step.
    Unknown,
}

/// An update rule applied to a model's parameters from their gradient.
///
/// Optimizers see the flat buffers of [`Network`](crate::Network), so one implementation serves
/// every generated model. State buffers (such as momentum) span all the parameters; they are
/// allocated on the first step, or when the number of parameters changes, and reused otherwise.
///
/// Every hyperparameter is checked where it is set, with the same rules: by the constructors,
/// by [`set_learning_rate`](Optimizer::set_learning_rate) and by checkpoint loads
/// ([`check_learning_rate`] for the rate).
///
/// An optimizer is `Send`: a model runs its update on the model's rayon pool, where the
/// optimizers of this module split long runs of parameters between the threads.
pub trait Optimizer: Send {
    /// Updates the parameters of `segments` in place from `grads` (same length as `params`);
    /// parameters outside every segment (frozen ones) are left alone, state included.
    ///
    /// Fails, changing nothing, when `grads` and `params` differ in length, when the segments
    /// are not in increasing order, disjoint and within `params`, or when a step counter would
    /// pass [`MAX_STEPS`].
    fn step(&mut self, params: &mut [f32], grads: &[f32], segments: &[Segment]) -> Result<()>;

    /// Whether [`step`](Optimizer::step) with the same arguments would leave every parameter
    /// and state value finite, found without changing anything. A model's training step asks
    /// this before it lets the optimizer update the parameters, so that a diverging step is
    /// refused without a copy of the parameters. The default answers [`StepCheck::Unknown`]:
    /// the model then keeps a copy of the parameters and of the optimizer's
    /// [`state`](Optimizer::state) and [`counters`](Optimizer::counters) to undo a step that
    /// goes wrong.
    fn check_step(&self, params: &[f32], grads: &[f32], segments: &[Segment]) -> StepCheck {
        let _ = (params, grads, segments);
        StepCheck::Unknown
    }

    /// The current learning rate.
    fn learning_rate(&self) -> f32;

    /// Sets the learning rate, for decay schedules. Fails, changing nothing, unless `lr` is
    /// finite and positive ([`check_learning_rate`]).
    fn set_learning_rate(&mut self, lr: f32) -> Result<()>;

    /// Forgets all state (momentum, moments, step count): the optimizer continues as a newly
    /// built one with the same hyperparameters.
    fn reset(&mut self);

    /// A description with every hyperparameter, such as `Sgd(lr=0.05, momentum=0.9, ...)`, kept in
    /// checkpoints.
    fn describe(&self) -> String;

    /// The optimizer's state buffers by name (empty before the first step), for checkpoints.
    fn state(&self) -> Vec<(&'static str, &[f32])> {
        Vec::new()
    }

    /// The names of the state buffers the optimizer holds after its first step, which
    /// [`load_state`](Optimizer::load_state) accepts.
    fn state_names(&self) -> Vec<&'static str> {
        Vec::new()
    }

    /// The names [`load_counter`](Optimizer::load_counter) accepts.
    fn counter_names(&self) -> Vec<&'static str> {
        Vec::new()
    }

    /// Restores the state buffer `name` from a checkpoint. Fails, changing nothing, on a name
    /// the optimizer does not know or a value that is not finite.
    fn load_state(&mut self, name: &str, values: &[f32]) -> Result<()> {
        let _ = values;
        Err(Error::InvalidArgument {
            name: "optimizer state",
            reason: format!("`{name}` is not part of this optimizer"),
        })
    }

    /// Scalars of the state (Adam's step count), for checkpoints. Default: none.
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// Restores the state scalar `name` from a checkpoint. Fails, changing nothing, on a name
    /// the optimizer does not know or a count above [`MAX_STEPS`].
    fn load_counter(&mut self, name: &str, value: u64) -> Result<()> {
        let _ = value;
        Err(Error::InvalidArgument {
            name: "optimizer counter",
            reason: format!("`{name}` is not part of this optimizer"),
        })
    }
}

/// Checks the arguments of [`Optimizer::step`].
fn check_layout(params: usize, grads: usize, segments: &[Segment]) -> Result<()> {
    if params != grads {
        return Err(Error::InvalidArgument {
            name: "gradients",
            reason: format!("{grads} gradient values for {params} parameters"),
        });
    }
    let mut end = 0;
    for s in segments {
        if !(end <= s.start && s.start <= s.end && s.end <= params) {
            return Err(Error::InvalidArgument {
                name: "segments",
                reason: format!(
                    "segment {}..{} is out of order, overlaps another or lies beyond the {params} parameters",
                    s.start, s.end
                ),
            });
        }
        end = s.end;
    }
    Ok(())
}

/// The one rule for a learning rate, shared by the optimizers' constructors,
/// [`Optimizer::set_learning_rate`], the schedules and checkpoint loads: finite and positive.
pub fn check_learning_rate(lr: f32) -> Result<()> {
    if lr.is_finite() && lr > 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidArgument { name: "learning rate", reason: format!("must be finite and positive, got {lr}") })
    }
}

/// Fails unless `value` is a step count no larger than [`MAX_STEPS`].
pub(crate) fn check_count(name: &'static str, value: u64) -> Result<()> {
    if value <= MAX_STEPS {
        Ok(())
    } else {
        Err(Error::InvalidArgument { name, reason: format!("{value} is above the largest step count, {MAX_STEPS}") })
    }
}

/// Fails unless every value of state buffer `name` is finite.
fn check_finite_state(kind: &str, name: &str, values: &[f32]) -> Result<()> {
    match first_non_finite(values) {
        None => Ok(()),
        Some(i) => Err(Error::InvalidArgument {
            name: "optimizer state",
            reason: format!("{kind} state `{name}` holds {} at index {i}: state values must be finite", values[i]),
        }),
    }
}

/// Values per block of the finiteness scans: each block is tested without branches, so that
/// the test vectorises, and searched only when it fails.
const SCAN_BLOCK: usize = 256;

/// The index of the first value of `values` that is NaN or infinite. Long slices are scanned
/// in parallel blocks on the current rayon pool.
pub fn first_non_finite(values: &[f32]) -> Option<usize> {
    #[cfg(feature = "std")]
    if parallel(values.len()) {
        let block = values.par_chunks(PAR_BLOCK).position_first(|b| first_non_finite_serial(b).is_some())?;
        return first_non_finite_serial(&values[block * PAR_BLOCK..]).map(|i| block * PAR_BLOCK + i);
    }
    first_non_finite_serial(values)
}

fn first_non_finite_serial(values: &[f32]) -> Option<usize> {
    let finite = |block: &[f32]| block.iter().fold(true, |ok, v| ok & v.is_finite());
    let block = values.chunks(SCAN_BLOCK).position(|b| !finite(b))?;
    let start = block * SCAN_BLOCK;
    values[start..].iter().position(|v| !v.is_finite()).map(|i| start + i)
}

/// Values per task of the optimizers' parallel passes: shorter runs stay on one thread, where
/// handing them out would cost more than it saves. The updates work value by value, so how
/// the values are split between threads changes no result.
const PAR_BLOCK: usize = 1 << 15;

/// Whether a pass over `len` values is split between threads: when it is two blocks long or
/// more and the current pool has more than one thread (one thread would gain nothing and lose
/// the scheduling).
#[cfg(feature = "std")]
fn parallel(len: usize) -> bool {
    len >= 2 * PAR_BLOCK && rayon::current_num_threads() > 1
}

/// Without the `std` feature, never: there is one thread.
#[cfg(not(feature = "std"))]
fn parallel(_: usize) -> bool {
    false
}

/// Runs `update` over blocks of the parameters `w` and of the `S` state buffers as long (the
/// same range of each), in parallel on the current rayon pool when `w` is long; `update` also
/// gets where its block starts within `w`.
fn update_blocks<const S: usize>(
    w: &mut [f32],
    states: [&mut [f32]; S],
    update: impl Fn(usize, &mut [f32], [&mut [f32]; S]) + Sync,
) {
    let len = w.len();
    if !parallel(len) {
        update(0, w, states);
        return;
    }
    let block = len.div_ceil(MAX_CHUNKS).max(PAR_BLOCK);
    let ws = ChunksMut::new(w, block);
    let ss = states.map(|s| ChunksMut::new(s, block));
    for_each_chunk(len.div_ceil(block), &|c| update(c * block, ws.take(c), core::array::from_fn(|i| ss[i].take(c))));
}

/// The largest magnitude among the values of `segments` in `values`, as an `f64`, or `None`
/// when one of them is not finite. It compares the values' bits as integers (without the sign,
/// the order of magnitudes, with NaN and infinities above every finite value): one pass that
/// vectorises and does no floating-point arithmetic, which subnormal values would slow down.
fn max_abs(values: &[f32], segments: &[Segment]) -> Option<f64> {
    let most = |v: &[f32]| v.iter().fold(0u32, |m, v| m.max(v.to_bits() & 0x7fff_ffff));
    let most = segments
        .iter()
        .map(|s| {
            let v = &values[s.start..s.end];
            #[cfg(feature = "std")]
            if parallel(v.len()) {
                return v.par_chunks(PAR_BLOCK).map(most).max().unwrap_or(0);
            }
            most(v)
        })
        .max()
        .unwrap_or(0);
    (most < f32::INFINITY.to_bits()).then(|| f64::from(f32::from_bits(most)))
}

/// Magnitudes below which every `f32` operation of an update is finite: a quarter of the
/// largest `f32` leaves room for the rounding of the few operations between the bounds below
/// and the values they bound.
const SAFE: f64 = f32::MAX as f64 / 4.0;

/// The first index in `segments` at which `finite(i)` fails, for an update rule computed
/// element by element: each segment is visited in blocks whose results are combined without
/// branching, and a failing block is searched.
fn first_failing(segments: &[Segment], finite: impl Fn(&Segment, Range<usize>) -> bool) -> Option<usize> {
    for s in segments {
        let mut start = s.start;
        while start < s.end {
            let end = (start + SCAN_BLOCK).min(s.end);
            if !finite(s, start..end) {
                return (start..end).find(|&i| !finite(s, i..i + 1));
            }
            start = end;
        }
    }
    None
}

/// Fails unless `value` is finite and not negative.
fn check_non_negative(name: &'static str, value: f32) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidArgument { name, reason: format!("must be finite and not negative, got {value}") })
    }
}

/// Fails unless `value` is in `[0, 1)`.
fn check_unit(name: &'static str, value: f32) -> Result<()> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(Error::InvalidArgument { name, reason: format!("must be in [0, 1), got {value}") })
    }
}

/// `x` as Python prints a float in PyTorch's descriptions: `0.001`, but `1e-8`.
fn num(x: f32) -> String {
    if x != 0.0 && (x.abs() < 1e-4 || x.abs() >= 1e16) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

/// The `f64` of the shortest decimal that reads back as `x`: `0.9f32` gives `0.9`, the Python float a
/// PyTorch user writes, where `f64::from` gives `0.899999976…`. Adam's bias correction works in `f64`
/// on these, as PyTorch's does on Python floats.
fn widen(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// The sign of `w`, with `sign(0) = 0`.
fn sign(w: f32) -> f32 {
    if w > 0.0 {
        1.0
    } else if w < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Mini-batch stochastic gradient descent with momentum, as `torch.optim.SGD` (dampening 0):
///
/// `g ← ∇L + λ₂·w + λ₁·sign(w)` (the decay terms on decaying segments only), then with momentum
/// `μ > 0`: `b ← μ·b + g` (`b = g` on the first step), `g ← g + μ·b` with Nesterov or `g ← b`
/// without; finally `w ← w − γ·g`.
///
/// The course's form `Δ ← κ·Δ + ∇L`, `w ← w − γ·Δ` is the momentum case. Without momentum the
/// optimizer keeps no state.
#[derive(Clone, Debug)]
pub struct Sgd {
    lr: f32,
    momentum: f32,
    nesterov: bool,
    weight_decay: f32,
    l1: f32,
    velocity: Vec<f32>,
}

impl Sgd {
    /// SGD with learning rate `lr` and momentum `momentum`.
    ///
    /// Fails when `lr` is not finite and positive, or `momentum` is not in `[0, 1)`.
    pub fn new(lr: f32, momentum: f32) -> Result<Self> {
        check_learning_rate(lr)?;
        check_unit("momentum", momentum)?;
        Ok(Sgd { lr, momentum, nesterov: false, weight_decay: 0.0, l1: 0.0, velocity: Vec::new() })
    }

    /// Turns Nesterov momentum on or off. Fails when turning it on without momentum.
    pub fn with_nesterov(mut self, nesterov: bool) -> Result<Self> {
        if nesterov && self.momentum == 0.0 {
            return Err(Error::InvalidArgument { name: "nesterov", reason: "requires a momentum above 0".into() });
        }
        self.nesterov = nesterov;
        Ok(self)
    }

    /// Adds L2 weight decay `λ`: the gradient becomes `∇L + λ·w` on decaying segments (PyTorch's
    /// `weight_decay`). Fails unless `λ` is finite and not negative.
    pub fn with_weight_decay(mut self, weight_decay: f32) -> Result<Self> {
        check_non_negative("weight decay", weight_decay)?;
        self.weight_decay = weight_decay;
        Ok(self)
    }

    /// Adds L1 regularisation `λ` ("gradual forgetting"): the gradient becomes `∇L + λ·sign(w)`
    /// on decaying segments, with `sign(0) = 0`. Fails unless `λ` is finite and not negative.
    pub fn with_l1(mut self, l1: f32) -> Result<Self> {
        check_non_negative("L1 regularisation", l1)?;
        self.l1 = l1;
        Ok(self)
    }

    /// The momentum `μ`.
    pub fn momentum(&self) -> f32 {
        self.momentum
    }
}

/// SGD's update of one parameter on one segment: the decay terms (on decaying segments only),
/// then the momentum buffer and the step.
#[derive(Clone, Copy)]
struct SgdRule {
    lr: f32,
    momentum: f32,
    nesterov: bool,
    l2: f32,
    l1: f32,
}

impl SgdRule {
    /// The new weight and momentum buffer from weight `w`, gradient `g` and buffer `b`.
    #[inline(always)]
    fn update(self, w: f32, g: f32, b: f32) -> (f32, f32) {
        let g = if self.l2 != 0.0 { g + self.l2 * w } else { g };
        let g = if self.l1 != 0.0 { g + self.l1 * sign(w) } else { g };
        if self.momentum == 0.0 {
            return (w - self.lr * g, b);
        }
        // The buffer starts at zero, so the first step sets it to `g`, as PyTorch's.
        let b = self.momentum * b + g;
        let d = if self.nesterov { g + self.momentum * b } else { b };
        (w - self.lr * d, b)
    }
}

impl Sgd {
    /// Whether bounds on the magnitudes of the weights, gradients and momentum show that the
    /// step stays finite: one read of each, far cheaper than the update itself, so that only
    /// steps near overflow need the exact dry run.
    fn bounded(&self, params: &[f32], grads: &[f32], velocity: Option<&[f32]>, segments: &[Segment]) -> bool {
        let (Some(w), Some(g)) = (max_abs(params, segments), max_abs(grads, segments)) else { return false };
        let Some(b) = velocity.map_or(Some(0.0), |v| max_abs(v, segments)) else { return false };
        let (lr, mu) = (f64::from(self.lr), f64::from(self.momentum));
        let g = g + f64::from(self.weight_decay) * w + f64::from(self.l1);
        let b = mu * b + g;
        let d = if mu == 0.0 {
            g
        } else if self.nesterov {
            g + mu * b
        } else {
            b
        };
        [g, b, d, lr * d, w + lr * d].iter().all(|&x| x < SAFE)
    }

    fn rule(&self, decay: bool) -> SgdRule {
        let (l2, l1) = if decay { (self.weight_decay, self.l1) } else { (0.0, 0.0) };
        SgdRule { lr: self.lr, momentum: self.momentum, nesterov: self.nesterov, l2, l1 }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, params: &mut [f32], grads: &[f32], segments: &[Segment]) -> Result<()> {
        check_layout(params.len(), grads.len(), segments)?;
        if self.momentum != 0.0 && self.velocity.len() != params.len() {
            self.velocity.clear();
            self.velocity.resize(params.len(), 0.0);
        }
        for s in segments {
            let rule = self.rule(s.decay);
            let (w, g) = (&mut params[s.start..s.end], &grads[s.start..s.end]);
            if self.momentum == 0.0 {
                update_blocks(w, [], |at, w, []| {
                    for (w, &g) in w.iter_mut().zip(&g[at..]) {
                        *w = rule.update(*w, g, 0.0).0;
                    }
                });
            } else {
                update_blocks(w, [&mut self.velocity[s.start..s.end]], |at, w, [v]| {
                    for ((w, &g), b) in w.iter_mut().zip(&g[at..]).zip(v) {
                        (*w, *b) = rule.update(*w, g, *b);
                    }
                });
            }
        }
        Ok(())
    }

    fn check_step(&self, params: &[f32], grads: &[f32], segments: &[Segment]) -> StepCheck {
        if check_layout(params.len(), grads.len(), segments).is_err() {
            return StepCheck::Unknown;
        }
        let velocity = (self.velocity.len() == params.len()).then_some(self.velocity.as_slice());
        if self.bounded(params, grads, velocity, segments) {
            return StepCheck::Finite;
        }
        let finite = |s: &Segment, r: Range<usize>| {
            let rule = self.rule(s.decay);
            let (w, g) = (&params[r.clone()], &grads[r.clone()]);
            let ok = |ok: bool, (w, b): (f32, f32)| ok & w.is_finite() & b.is_finite();
            match velocity {
                Some(v) => w.iter().zip(g).zip(&v[r]).map(|((&w, &g), &b)| rule.update(w, g, b)).fold(true, ok),
                None => w.iter().zip(g).map(|(&w, &g)| rule.update(w, g, 0.0)).fold(true, ok),
            }
        };
        match first_failing(segments, finite) {
            Some(index) => StepCheck::NonFinite { index },
            None => StepCheck::Finite,
        }
    }

    fn learning_rate(&self) -> f32 {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: f32) -> Result<()> {
        check_learning_rate(lr)?;
        self.lr = lr;
        Ok(())
    }

    fn reset(&mut self) {
        self.velocity = Vec::new();
    }

    fn describe(&self) -> String {
        format!(
            "Sgd(lr={}, momentum={}, nesterov={}, weight_decay={}, l1={})",
            num(self.lr),
            num(self.momentum),
            self.nesterov,
            num(self.weight_decay),
            num(self.l1)
        )
    }

    fn state(&self) -> Vec<(&'static str, &[f32])> {
        if self.velocity.is_empty() {
            Vec::new()
        } else {
            vec![("momentum_buffer", &self.velocity)]
        }
    }

    fn state_names(&self) -> Vec<&'static str> {
        if self.momentum == 0.0 {
            Vec::new()
        } else {
            vec!["momentum_buffer"]
        }
    }

    fn load_state(&mut self, name: &str, values: &[f32]) -> Result<()> {
        if name != "momentum_buffer" || self.momentum == 0.0 {
            return Err(Error::InvalidArgument {
                name: "optimizer state",
                reason: format!("{} has no state `{name}`", self.describe()),
            });
        }
        check_finite_state("Sgd", name, values)?;
        self.velocity = values.to_vec();
        Ok(())
    }
}

/// Adam's update of one parameter at one step: the constants of the step's bias correction and
/// whether the parameter's segment decays.
#[derive(Clone, Copy)]
struct AdamRule {
    step_size: f32,
    bias_correction2_sqrt: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    shrink: f32,
    eps: f32,
    l2: f32,
    decay: bool,
    decoupled: bool,
}

impl AdamRule {
    /// The new weight and moments from weight `w`, gradient `g` and moments `m`, `v`.
    #[inline(always)]
    fn update(self, w: f32, g: f32, m: f32, v: f32) -> (f32, f32, f32) {
        let g = if self.decay && !self.decoupled { g + self.l2 * w } else { g };
        let w = if self.decay && self.decoupled { w * self.shrink } else { w };
        // `lerp(m, g, 1 − β₁)` with PyTorch's formula for a weight below 0.5.
        let m = m + self.one_minus_beta1 * (g - m);
        let v = v * self.beta2 + self.one_minus_beta2 * g * g;
        let denom = v.sqrt() / self.bias_correction2_sqrt + self.eps;
        (w - self.step_size * m / denom, m, v)
    }
}

/// The state and hyperparameters shared by [`Adam`] and [`AdamW`].
#[derive(Clone, Debug)]
struct AdamCore {
    lr: f32,
    betas: (f32, f32),
    eps: f32,
    weight_decay: f32,
    /// `lr`, `betas` and `weight_decay` widened to `f64`, for the bias correction.
    wide: (f64, f64, f64, f64),
    step: u64,
    exp_avg: Vec<f32>,
    exp_avg_sq: Vec<f32>,
}

impl AdamCore {
    fn new(lr: f32, weight_decay: f32) -> Result<Self> {
        check_learning_rate(lr)?;
        let mut core = AdamCore {
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay,
            wide: (0.0, 0.0, 0.0, 0.0),
            step: 0,
            exp_avg: Vec::new(),
            exp_avg_sq: Vec::new(),
        };
        core.widen();
        Ok(core)
    }

    fn widen(&mut self) {
        self.wide = (widen(self.lr), widen(self.betas.0), widen(self.betas.1), widen(self.weight_decay));
    }

    fn set_betas(&mut self, beta1: f32, beta2: f32) -> Result<()> {
        check_unit("beta1", beta1)?;
        check_unit("beta2", beta2)?;
        self.betas = (beta1, beta2);
        self.widen();
        Ok(())
    }

    fn set_eps(&mut self, eps: f32) -> Result<()> {
        if !(eps.is_finite() && eps > 0.0) {
            return Err(Error::InvalidArgument {
                name: "eps",
                reason: format!("must be finite and positive, got {eps}"),
            });
        }
        self.eps = eps;
        Ok(())
    }

    fn set_weight_decay(&mut self, weight_decay: f32) -> Result<()> {
        check_non_negative("weight decay", weight_decay)?;
        self.weight_decay = weight_decay;
        self.widen();
        Ok(())
    }

    fn set_lr(&mut self, lr: f32) -> Result<()> {
        check_learning_rate(lr)?;
        self.lr = lr;
        self.widen();
        Ok(())
    }

    fn reset(&mut self) {
        self.step = 0;
        self.exp_avg = Vec::new();
        self.exp_avg_sq = Vec::new();
    }

    fn describe(&self, kind: &str) -> String {
        format!(
            "{kind}(lr={}, betas=({}, {}), eps={}, weight_decay={})",
            num(self.lr),
            num(self.betas.0),
            num(self.betas.1),
            num(self.eps),
            num(self.weight_decay)
        )
    }

    /// The step count of the next step (1 when the buffers do not fit `n` parameters, which
    /// restarts them), or an error past [`MAX_STEPS`].
    fn next_step(&self, n: usize) -> Result<u64> {
        let fresh = self.exp_avg.len() != n || self.exp_avg_sq.len() != n;
        let t = if fresh { 1 } else { self.step.saturating_add(1) };
        check_count("Adam step count", t)?;
        Ok(t)
    }

    /// The update of step `t` on segments without decay.
    fn rule(&self, t: u64, decoupled: bool) -> AdamRule {
        let (lr, beta1, beta2, weight_decay) = self.wide;
        // Python floats in PyTorch, cast to `f32` where they meet the tensors.
        let t = t as f64;
        let bias_correction1 = 1.0 - beta1.powf(t);
        let bias_correction2 = 1.0 - beta2.powf(t);
        AdamRule {
            step_size: (lr / bias_correction1) as f32,
            bias_correction2_sqrt: bias_correction2.powf(0.5) as f32,
            one_minus_beta1: (1.0 - beta1) as f32,
            beta2: beta2 as f32,
            one_minus_beta2: (1.0 - beta2) as f32,
            shrink: (1.0 - lr * weight_decay) as f32,
            eps: self.eps,
            l2: self.weight_decay,
            decay: false,
            decoupled,
        }
    }

    /// One step of `torch.optim.Adam` (single-tensor, without amsgrad), with the weight decay
    /// added to the gradient, or `decoupled` as in `torch.optim.AdamW`.
    fn step(&mut self, params: &mut [f32], grads: &[f32], segments: &[Segment], decoupled: bool) -> Result<()> {
        check_layout(params.len(), grads.len(), segments)?;
        let n = params.len();
        let t = self.next_step(n)?;
        if t == 1 {
            for buffer in [&mut self.exp_avg, &mut self.exp_avg_sq] {
                buffer.clear();
                buffer.resize(n, 0.0);
            }
        }
        self.step = t;
        let base = self.rule(t, decoupled);
        for s in segments {
            let rule = AdamRule { decay: s.decay && base.l2 != 0.0, ..base };
            let (range, g) = (s.start..s.end, &grads[s.start..s.end]);
            let moments = [&mut self.exp_avg[range.clone()], &mut self.exp_avg_sq[range.clone()]];
            update_blocks(&mut params[range], moments, |at, w, [m, v]| {
                for ((w, &g), (m, v)) in w.iter_mut().zip(&g[at..]).zip(m.iter_mut().zip(v)) {
                    (*w, *m, *v) = rule.update(*w, g, *m, *v);
                }
            });
        }
        Ok(())
    }

    /// Whether bounds on the magnitudes of the weights, gradients and moments show that step
    /// `t` (with `rule`) stays finite, as for [`Sgd`]; the exact dry run decides otherwise.
    fn bounded(&self, params: &[f32], grads: &[f32], segments: &[Segment], t: u64, rule: &AdamRule) -> bool {
        let (Some(w), Some(g)) = (max_abs(params, segments), max_abs(grads, segments)) else { return false };
        let (m, v) = if t == 1 {
            (Some(0.0), Some(0.0))
        } else {
            (max_abs(&self.exp_avg, segments), max_abs(&self.exp_avg_sq, segments))
        };
        let (Some(m), Some(v)) = (m, v) else { return false };
        let g = g + f64::from(rule.l2) * w;
        let m = m + g;
        let v = v + g * g;
        let denom = v.sqrt() / f64::from(rule.bias_correction2_sqrt);
        let moved = f64::from(rule.step_size) * m;
        let w = w * f64::from(rule.shrink).abs().max(1.0) + moved / f64::from(rule.eps);
        [g, g * g, m, v, denom, moved, w].iter().all(|&x| x < SAFE)
    }

    /// [`Optimizer::check_step`] for [`step`](AdamCore::step).
    fn check_step(&self, params: &[f32], grads: &[f32], segments: &[Segment], decoupled: bool) -> StepCheck {
        if check_layout(params.len(), grads.len(), segments).is_err() {
            return StepCheck::Unknown;
        }
        let Ok(t) = self.next_step(params.len()) else { return StepCheck::Unknown };
        let base = self.rule(t, decoupled);
        if self.bounded(params, grads, segments, t, &base) {
            return StepCheck::Finite;
        }
        let finite = |s: &Segment, r: Range<usize>| {
            let rule = AdamRule { decay: s.decay && base.l2 != 0.0, ..base };
            let (w, g) = (&params[r.clone()], &grads[r.clone()]);
            let ok = |ok: bool, (w, m, v): (f32, f32, f32)| ok & w.is_finite() & m.is_finite() & v.is_finite();
            if t == 1 {
                w.iter().zip(g).map(|(&w, &g)| rule.update(w, g, 0.0, 0.0)).fold(true, ok)
            } else {
                let moments = self.exp_avg[r.clone()].iter().zip(&self.exp_avg_sq[r]);
                w.iter().zip(g).zip(moments).map(|((&w, &g), (&m, &v))| rule.update(w, g, m, v)).fold(true, ok)
            }
        };
        match first_failing(segments, finite) {
            Some(index) => StepCheck::NonFinite { index },
            None => StepCheck::Finite,
        }
    }

    fn state(&self) -> Vec<(&'static str, &[f32])> {
        if self.exp_avg.is_empty() {
            Vec::new()
        } else {
            vec![("exp_avg", &self.exp_avg), ("exp_avg_sq", &self.exp_avg_sq)]
        }
    }

    fn load_state(&mut self, kind: &str, name: &str, values: &[f32]) -> Result<()> {
        let len = self.exp_avg.len();
        if !self.exp_avg.is_empty() && values.len() != len {
            return Err(Error::InvalidArgument {
                name: "optimizer state",
                reason: format!("{kind} state `{name}` has {} values, the other buffers {len}", values.len()),
            });
        }
        let (target, other) = match name {
            "exp_avg" => (&mut self.exp_avg, &mut self.exp_avg_sq),
            "exp_avg_sq" => (&mut self.exp_avg_sq, &mut self.exp_avg),
            _ => {
                return Err(Error::InvalidArgument {
                    name: "optimizer state",
                    reason: format!("{kind} has no state `{name}` (it has `exp_avg` and `exp_avg_sq`)"),
                })
            }
        };
        check_finite_state(kind, name, values)?;
        if name == "exp_avg_sq" {
            if let Some(i) = values.iter().position(|&v| v < 0.0) {
                return Err(Error::InvalidArgument {
                    name: "optimizer state",
                    reason: format!(
                        "{kind} state `{name}` holds {} at index {i}: a mean of squares is not negative",
                        values[i]
                    ),
                });
            }
        }
        target.clear();
        target.extend_from_slice(values);
        // A buffer not loaded yet starts at zero, as on a first step.
        other.resize(values.len(), 0.0);
        Ok(())
    }

    fn load_counter(&mut self, kind: &str, name: &str, value: u64) -> Result<()> {
        if name != "step" {
            return Err(Error::InvalidArgument {
                name: "optimizer counter",
                reason: format!("{kind} has no counter `{name}` (it has `step`)"),
            });
        }
        check_count("Adam step count", value)?;
        self.step = value;
        Ok(())
    }
}

/// Adam, as `torch.optim.Adam` (without amsgrad), in PyTorch's order of operations:
///
/// `g ← ∇L + λ·w` (on decaying segments), `t ← t + 1`, `m ← m + (1 − β₁)(g − m)`,
/// `v ← β₂·v + (1 − β₂)·g²`, then `w ← w − (γ / (1 − β₁ᵗ))·m / (√v / √(1 − β₂ᵗ) + ε)`.
///
/// The bias corrections are computed in `f64`, the rest in `f32`. The step count `t` is one
/// counter for all parameters (PyTorch keeps one per tensor, which differs only for tensors
/// that were frozen for a while and then trained).
#[derive(Clone, Debug)]
pub struct Adam(AdamCore);

impl Adam {
    /// Adam with learning rate `lr`, betas `(0.9, 0.999)`, `eps = 1e-8` and no weight decay.
    /// Fails unless `lr` is finite and positive.
    pub fn new(lr: f32) -> Result<Self> {
        AdamCore::new(lr, 0.0).map(Adam)
    }

    /// Adds L2 weight decay `λ` to the gradient (`∇L + λ·w`) on decaying segments, as
    /// `torch.optim.Adam`'s `weight_decay`. Fails unless `λ` is finite and not negative.
    pub fn with_weight_decay(mut self, weight_decay: f32) -> Result<Self> {
        self.0.set_weight_decay(weight_decay)?;
        Ok(self)
    }
}

/// AdamW, as `torch.optim.AdamW`: Adam whose weight decay is decoupled from the gradient.
/// On decaying segments, `w ← w·(1 − γ·λ)` comes before the [`Adam`] update, which then runs
/// without weight decay.
#[derive(Clone, Debug)]
pub struct AdamW(AdamCore);

impl AdamW {
    /// AdamW with learning rate `lr` and PyTorch's defaults: weight decay `0.01`, betas
    /// `(0.9, 0.999)`, `eps = 1e-8`. Fails unless `lr` is finite and positive.
    pub fn new(lr: f32) -> Result<Self> {
        AdamCore::new(lr, 0.01).map(AdamW)
    }

    /// Sets the decoupled weight decay `λ`. Fails unless it is finite and not negative.
    pub fn with_weight_decay(mut self, weight_decay: f32) -> Result<Self> {
        self.0.set_weight_decay(weight_decay)?;
        Ok(self)
    }
}

/// Implements the shared builders and [`Optimizer`] for a wrapper of [`AdamCore`].
macro_rules! adam_optimizer {
    ($kind:ident, $decoupled:expr) => {
        impl $kind {
            /// Sets the decay rates of the moment estimates. Fails unless both are in `[0, 1)`.
            pub fn with_betas(mut self, beta1: f32, beta2: f32) -> Result<Self> {
                self.0.set_betas(beta1, beta2)?;
                Ok(self)
            }

            /// Sets `ε`, added to the denominator. Fails unless it is finite and positive.
            pub fn with_eps(mut self, eps: f32) -> Result<Self> {
                self.0.set_eps(eps)?;
                Ok(self)
            }

            /// The step count `t`.
            pub fn steps(&self) -> u64 {
                self.0.step
            }
        }

        impl Optimizer for $kind {
            fn step(&mut self, params: &mut [f32], grads: &[f32], segments: &[Segment]) -> Result<()> {
                self.0.step(params, grads, segments, $decoupled)
            }

            fn check_step(&self, params: &[f32], grads: &[f32], segments: &[Segment]) -> StepCheck {
                self.0.check_step(params, grads, segments, $decoupled)
            }

            fn learning_rate(&self) -> f32 {
                self.0.lr
            }

            fn set_learning_rate(&mut self, lr: f32) -> Result<()> {
                self.0.set_lr(lr)
            }

            fn reset(&mut self) {
                self.0.reset();
            }

            fn describe(&self) -> String {
                self.0.describe(stringify!($kind))
            }

            fn state(&self) -> Vec<(&'static str, &[f32])> {
                self.0.state()
            }

            fn load_state(&mut self, name: &str, values: &[f32]) -> Result<()> {
                self.0.load_state(stringify!($kind), name, values)
            }

            fn counters(&self) -> Vec<(&'static str, u64)> {
                vec![("step", self.0.step)]
            }

            fn state_names(&self) -> Vec<&'static str> {
                vec!["exp_avg", "exp_avg_sq"]
            }

            fn counter_names(&self) -> Vec<&'static str> {
                vec!["step"]
            }

            fn load_counter(&mut self, name: &str, value: u64) -> Result<()> {
                self.0.load_counter(stringify!($kind), name, value)
            }
        }
    };
}

adam_optimizer!(Adam, false);
adam_optimizer!(AdamW, true);

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(found: &[f32], expected: &[f64], tolerance: f64) {
        assert_eq!(found.len(), expected.len());
        for (i, (&f, &e)) in found.iter().zip(expected).enumerate() {
            assert!((f64::from(f) - e).abs() <= tolerance * e.abs().max(1.0), "parameter {i}: found {f}, expected {e}");
        }
    }

    const GRADS: [[f32; 4]; 3] = [[0.5, -1.0, 0.25, 2.0], [-0.3, 0.8, 0.0, 1.5], [0.1, -0.2, -0.7, -0.4]];
    const START: [f32; 4] = [1.0, -2.0, 0.0, 0.5];

    /// Runs `opt` over `GRADS` from `START` and returns the parameters after each step.
    fn run(opt: &mut dyn Optimizer, segments: &[Segment]) -> Vec<Vec<f32>> {
        let mut w = START.to_vec();
        GRADS
            .iter()
            .map(|g| {
                opt.step(&mut w, g, segments).unwrap();
                w.clone()
            })
            .collect()
    }

    #[test]
    fn plain_sgd_without_momentum_is_stateless() {
        let mut opt = Sgd::new(0.5, 0.0).unwrap();
        let mut w = vec![1.0f32];
        opt.step(&mut w, &[2.0], &whole(1)).unwrap();
        opt.step(&mut w, &[2.0], &whole(1)).unwrap();
        assert_eq!(w, vec![-1.0]);
        assert!(opt.state().is_empty());
        assert!(opt.load_state("momentum_buffer", &[0.0]).is_err());
        opt.set_learning_rate(0.25).unwrap();
        assert_eq!(opt.learning_rate(), 0.25);
    }

    #[test]
    fn sgd_momentum_follows_the_update_formula_step_by_step() {
        let (lr, mu) = (0.1, 0.9);
        let mut opt = Sgd::new(lr as f32, mu as f32).unwrap();
        let steps = run(&mut opt, &whole(4));
        let mut w: Vec<f64> = START.iter().map(|&x| x.into()).collect();
        let mut b = [0.0f64; 4];
        for (t, g) in GRADS.iter().enumerate() {
            for i in 0..4 {
                let g = f64::from(g[i]);
                b[i] = if t == 0 { g } else { mu * b[i] + g };
                w[i] -= lr * b[i];
            }
            assert_close(&steps[t], &w, 1e-6);
        }
    }

    #[test]
    fn sgd_nesterov_follows_the_update_formula_step_by_step() {
        let (lr, mu) = (0.05, 0.8);
        let mut opt = Sgd::new(lr as f32, mu as f32).unwrap().with_nesterov(true).unwrap();
        let steps = run(&mut opt, &whole(4));
        let mut w: Vec<f64> = START.iter().map(|&x| x.into()).collect();
        let mut b = [0.0f64; 4];
        for (t, g) in GRADS.iter().enumerate() {
            for i in 0..4 {
                let g = f64::from(g[i]);
                b[i] = if t == 0 { g } else { mu * b[i] + g };
                w[i] -= lr * (g + mu * b[i]);
            }
            assert_close(&steps[t], &w, 1e-6);
        }
    }

    #[test]
    fn sgd_l2_and_l1_regularise_the_gradient() {
        let (lr, mu, l2, l1) = (0.1, 0.5, 0.01, 0.02);
        let mut opt =
            Sgd::new(lr as f32, mu as f32).unwrap().with_weight_decay(l2 as f32).unwrap().with_l1(l1 as f32).unwrap();
        assert_eq!(opt.describe(), "Sgd(lr=0.1, momentum=0.5, nesterov=false, weight_decay=0.01, l1=0.02)");
        let steps = run(&mut opt, &whole(4));
        let mut w: Vec<f64> = START.iter().map(|&x| x.into()).collect();
        let mut b = [0.0f64; 4];
        for (t, g) in GRADS.iter().enumerate() {
            for i in 0..4 {
                let sign = if w[i] > 0.0 {
                    1.0
                } else if w[i] < 0.0 {
                    -1.0
                } else {
                    0.0
                };
                let g = f64::from(g[i]) + l2 * w[i] + l1 * sign;
                b[i] = if t == 0 { g } else { mu * b[i] + g };
                w[i] -= lr * b[i];
            }
            assert_close(&steps[t], &w, 1e-6);
        }
        // The zero weight gets no L1 (nor L2) pull on the first step: only its gradient moves it.
        assert_eq!(steps[0][2], -(0.1f32 * 0.25));
    }

    #[test]
    fn sgd_respects_segments() {
        let mut opt = Sgd::new(0.1, 0.9).unwrap().with_weight_decay(0.5).unwrap().with_l1(0.1).unwrap();
        let mut plain = Sgd::new(0.1, 0.9).unwrap();
        let segments = [Segment { start: 0, end: 1, decay: true }, Segment { start: 2, end: 4, decay: false }];
        let steps = run(&mut opt, &segments);
        let undecayed = run(&mut plain, &whole(4));
        for (with, without) in steps.iter().zip(&undecayed) {
            assert_eq!(with[1], START[1], "a frozen parameter moved");
            assert_eq!(&with[2..], &without[2..], "a non-decaying segment was decayed");
            assert!(with[0] < without[0], "the decaying weight was not pulled towards zero");
        }
        assert_eq!(opt.state()[0].1[1], 0.0, "a frozen parameter's state changed");
    }

    #[test]
    fn sgd_state_round_trip_continues_identically() {
        let new = || Sgd::new(0.1, 0.9).unwrap().with_nesterov(true).unwrap();
        let mut a = new();
        let mut w = START.to_vec();
        a.step(&mut w, &GRADS[0], &whole(4)).unwrap();
        a.step(&mut w, &GRADS[1], &whole(4)).unwrap();
        let mut b = new();
        for (name, values) in a.state() {
            b.load_state(name, values).unwrap();
        }
        let mut w2 = w.clone();
        a.step(&mut w, &GRADS[2], &whole(4)).unwrap();
        b.step(&mut w2, &GRADS[2], &whole(4)).unwrap();
        assert_eq!(w, w2);
        assert!(b.load_state("exp_avg", &[0.0; 4]).is_err());
    }

    #[test]
    fn sgd_rejects_bad_hyperparameters() {
        assert!(Sgd::new(0.0, 0.9).unwrap_err().to_string().contains("learning rate"));
        assert!(Sgd::new(f32::NAN, 0.9).is_err());
        assert!(Sgd::new(0.1, 1.0).unwrap_err().to_string().contains("momentum"));
        assert!(Sgd::new(0.1, -0.5).is_err());
        assert!(Sgd::new(0.1, 0.0).unwrap().with_nesterov(true).unwrap_err().to_string().contains("nesterov"));
        assert!(Sgd::new(0.1, 0.0).unwrap().with_weight_decay(-1.0).is_err());
        assert!(Sgd::new(0.1, 0.0).unwrap().with_l1(f32::INFINITY).is_err());
        assert_eq!(
            Sgd::new(0.05, 0.9).unwrap().with_nesterov(true).unwrap().describe(),
            "Sgd(lr=0.05, momentum=0.9, nesterov=true, weight_decay=0, l1=0)"
        );
    }

    /// Adam as the paper writes it, in `f64`: bias-corrected moments `m̂ = m / (1 − β₁ᵗ)` and
    /// `v̂ = v / (1 − β₂ᵗ)`, then `w ← w − γ·m̂ / (√v̂ + ε)`; `decay` is `(λ, decoupled)`.
    fn adam_reference(lr: f64, (b1, b2): (f64, f64), eps: f64, decay: (f64, bool)) -> Vec<Vec<f64>> {
        let mut w: Vec<f64> = START.iter().map(|&x| x.into()).collect();
        let (mut m, mut v) = ([0.0f64; 4], [0.0f64; 4]);
        let mut out = Vec::new();
        for (t, g) in GRADS.iter().enumerate() {
            let t = t as i32 + 1;
            for i in 0..4 {
                let mut g = f64::from(g[i]);
                if decay.1 {
                    w[i] *= 1.0 - lr * decay.0;
                } else {
                    g += decay.0 * w[i];
                }
                m[i] = b1 * m[i] + (1.0 - b1) * g;
                v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                let m_hat = m[i] / (1.0 - b1.powi(t));
                let v_hat = v[i] / (1.0 - b2.powi(t));
                w[i] -= lr * m_hat / (v_hat.sqrt() + eps);
            }
            out.push(w.clone());
        }
        out
    }

    #[test]
    fn adam_bias_correction_moves_each_early_step_by_the_learning_rate() {
        // With a constant gradient, m̂ = g and v̂ = g², so every step moves by γ·g / (|g| + ε).
        let mut opt = Adam::new(0.01).unwrap();
        let mut w = vec![1.0f32, -1.0, 0.0];
        let g = [0.5f32, -2.0, 1e-3];
        for t in 1..=3 {
            opt.step(&mut w, &g, &whole(3)).unwrap();
            let moved = |g: f64| 0.01 * t as f64 * g / (g.abs() + 1e-8);
            assert_close(&w, &[1.0 - moved(0.5), -1.0 - moved(-2.0), -moved(1e-3)], 1e-6);
        }
        assert_eq!(opt.steps(), 3);
    }

    #[test]
    fn adam_follows_the_update_formula_step_by_step() {
        let mut opt = Adam::new(0.01).unwrap();
        assert_eq!(opt.describe(), "Adam(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)");
        let steps = run(&mut opt, &whole(4));
        let reference = adam_reference(0.01, (0.9, 0.999), 1e-8, (0.0, false));
        for (found, expected) in steps.iter().zip(&reference) {
            assert_close(found, expected, 1e-6);
        }
        // Hand-computed first step: m̂ = g and v̂ = g², so w − 0.01·g/(|g| + 1e-8).
        assert_close(&steps[0], &[0.99, -1.99, -0.01, 0.49], 1e-6);
    }

    #[test]
    fn adam_l2_weight_decay_and_custom_hyperparameters() {
        let mut opt = Adam::new(0.05)
            .unwrap()
            .with_betas(0.8, 0.99)
            .unwrap()
            .with_eps(1e-3)
            .unwrap()
            .with_weight_decay(0.1)
            .unwrap();
        assert_eq!(opt.describe(), "Adam(lr=0.05, betas=(0.8, 0.99), eps=0.001, weight_decay=0.1)");
        let steps = run(&mut opt, &whole(4));
        let reference = adam_reference(0.05, (0.8, 0.99), 1e-3, (0.1, false));
        for (found, expected) in steps.iter().zip(&reference) {
            assert_close(found, expected, 1e-6);
        }
        assert!(Adam::new(0.1).unwrap().state().is_empty());
    }

    #[test]
    fn adamw_decays_weights_decoupled_from_the_gradient() {
        let mut opt = AdamW::new(0.01).unwrap().with_weight_decay(0.5).unwrap();
        let steps = run(&mut opt, &whole(4));
        let reference = adam_reference(0.01, (0.9, 0.999), 1e-8, (0.5, true));
        for (found, expected) in steps.iter().zip(&reference) {
            assert_close(found, expected, 1e-6);
        }
        assert_eq!(
            AdamW::new(0.001).unwrap().describe(),
            "AdamW(lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)"
        );
    }

    #[test]
    fn adam_and_adamw_respect_segments() {
        let segments = [Segment { start: 0, end: 1, decay: true }, Segment { start: 2, end: 4, decay: false }];
        let optimizers: [(Box<dyn Optimizer>, Box<dyn Optimizer>); 2] = [
            (Box::new(Adam::new(0.01).unwrap().with_weight_decay(0.5).unwrap()), Box::new(Adam::new(0.01).unwrap())),
            (
                Box::new(AdamW::new(0.01).unwrap().with_weight_decay(0.5).unwrap()),
                Box::new(AdamW::new(0.01).unwrap().with_weight_decay(0.0).unwrap()),
            ),
        ];
        for (mut opt, mut plain) in optimizers {
            let steps = run(opt.as_mut(), &segments);
            let undecayed = run(plain.as_mut(), &whole(4));
            for (with, without) in steps.iter().zip(&undecayed) {
                assert_eq!(with[1], START[1], "a frozen parameter moved");
                assert_eq!(&with[2..], &without[2..], "a non-decaying segment was decayed");
            }
            // Adam's first step is scale-free, so the decay shows from the second step on.
            assert_ne!(steps[2][0], undecayed[2][0], "the decaying weight was not decayed");
            for (_, buffer) in opt.state() {
                assert_eq!(buffer[1], 0.0, "a frozen parameter's state changed");
            }
        }
    }

    #[test]
    fn adam_state_round_trip_continues_identically() {
        let mut a = AdamW::new(0.01).unwrap();
        let mut w = START.to_vec();
        a.step(&mut w, &GRADS[0], &whole(4)).unwrap();
        a.step(&mut w, &GRADS[1], &whole(4)).unwrap();
        let mut b = AdamW::new(0.01).unwrap();
        for (name, values) in a.state() {
            b.load_state(name, values).unwrap();
        }
        for (name, value) in a.counters() {
            b.load_counter(name, value).unwrap();
        }
        assert_eq!(b.steps(), 2);
        let mut w2 = w.clone();
        a.step(&mut w, &GRADS[2], &whole(4)).unwrap();
        b.step(&mut w2, &GRADS[2], &whole(4)).unwrap();
        assert_eq!(w, w2);
        assert_eq!(a.state(), b.state());
    }

    #[test]
    fn adam_rejects_bad_state() {
        let mut opt = Adam::new(0.01).unwrap();
        assert!(opt.load_state("momentum_buffer", &[0.0; 4]).unwrap_err().to_string().contains("exp_avg"));
        opt.load_state("exp_avg_sq", &[0.0; 4]).unwrap();
        let err = opt.load_state("exp_avg", &[0.0; 3]).unwrap_err().to_string();
        assert!(err.contains("3 values") && err.contains("4"), "{err}");
        assert!(opt.load_counter("steps", 1).is_err());
        assert!(Sgd::new(0.1, 0.9).unwrap().load_counter("step", 1).is_err());
    }

    #[test]
    fn adam_rejects_bad_hyperparameters() {
        assert!(Adam::new(-0.1).unwrap_err().to_string().contains("learning rate"));
        assert!(AdamW::new(f32::INFINITY).is_err());
        assert!(Adam::new(0.1).unwrap().with_betas(1.0, 0.999).unwrap_err().to_string().contains("beta1"));
        assert!(Adam::new(0.1).unwrap().with_betas(0.9, -0.1).unwrap_err().to_string().contains("beta2"));
        assert!(Adam::new(0.1).unwrap().with_eps(0.0).unwrap_err().to_string().contains("eps"));
        assert!(AdamW::new(0.1).unwrap().with_eps(f32::NAN).is_err());
        assert!(Adam::new(0.1).unwrap().with_weight_decay(-0.1).is_err());
        assert!(AdamW::new(0.1).unwrap().with_weight_decay(f32::NAN).is_err());
    }

    #[test]
    fn overlapping_segments_and_unequal_lengths_are_refused() {
        let segments = [Segment { start: 0, end: 3, decay: true }, Segment { start: 2, end: 4, decay: true }];
        let mut w = [1.0; 4];
        let err = Sgd::new(0.1, 0.9).unwrap().step(&mut w, &[1.0; 4], &segments).unwrap_err();
        assert!(err.to_string().contains("out of order"), "{err}");
        let err = Adam::new(0.1).unwrap().step(&mut w, &[1.0; 3], &whole(4)).unwrap_err();
        assert!(err.to_string().contains("3 gradient values for 4 parameters"), "{err}");
        assert_eq!(w, [1.0; 4]);
    }

    #[test]
    fn widen_reads_the_decimal_the_user_wrote() {
        assert_eq!(widen(0.9), 0.9);
        assert_eq!(widen(0.999), 0.999);
        assert_eq!(widen(1e-8), 1e-8);
        assert_eq!(num(1e-8), "1e-8");
        assert_eq!(num(0.001), "0.001");
    }

    /// Every optimizer of this module, with momentum or moments where it has them.
    fn all_optimizers(lr: f32) -> Vec<Box<dyn Optimizer>> {
        vec![
            Box::new(Sgd::new(lr, 0.0).unwrap()),
            Box::new(Sgd::new(lr, 0.9).unwrap().with_nesterov(true).unwrap().with_weight_decay(0.1).unwrap()),
            Box::new(Sgd::new(lr, 0.5).unwrap().with_l1(0.01).unwrap()),
            Box::new(Adam::new(lr).unwrap().with_weight_decay(0.1).unwrap()),
            Box::new(AdamW::new(lr).unwrap()),
        ]
    }

    #[test]
    fn a_bad_learning_rate_is_refused_by_the_setter_and_changes_nothing() {
        for mut opt in all_optimizers(0.1) {
            for lr in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -1.0, 0.0, -0.0] {
                let err = opt.set_learning_rate(lr).unwrap_err();
                assert!(err.to_string().contains("learning rate"), "{err}");
                assert_eq!(opt.learning_rate(), 0.1, "{}", opt.describe());
            }
            opt.set_learning_rate(1e-30).unwrap();
            assert_eq!(opt.learning_rate(), 1e-30);
        }
        assert!(check_learning_rate(f32::MIN_POSITIVE).is_ok());
    }

    #[test]
    fn check_step_tells_exactly_whether_the_step_stays_finite() {
        // Gradients and rates from harmless to overflowing; the dry run must agree with the
        // step itself on every parameter and state value.
        let huge = [1e-3f32, 1.0, 1e20, 3e38, f32::MAX];
        for (k, &lr) in [1e-2f32, 1e10, 1e30].iter().enumerate() {
            for &scale in &huge {
                for mut opt in all_optimizers(lr) {
                    let mut w: Vec<f32> = (0..600).map(|i| (i as f32 * 0.37).sin()).collect();
                    let mut g: Vec<f32> = (0..600).map(|i| (i as f32 * 0.11).cos() * scale).collect();
                    let segments =
                        [Segment { start: 0, end: 300, decay: true }, Segment { start: 310, end: 600, decay: false }];
                    // A first step fills the state, so the second check reads it.
                    for round in 0..2 {
                        let check = opt.check_step(&w, &g, &segments);
                        let before = (w.clone(), opt.state().iter().map(|(_, v)| v.to_vec()).collect::<Vec<_>>());
                        opt.step(&mut w, &g, &segments).unwrap();
                        let state: Vec<f32> = opt.state().iter().flat_map(|(_, v)| v.to_vec()).collect();
                        let bad = (0..600).find(|&i| !w[i].is_finite() || state.chunks(600).any(|s| !s[i].is_finite()));
                        let expected = match bad {
                            Some(index) => StepCheck::NonFinite { index },
                            None => StepCheck::Finite,
                        };
                        assert_eq!(check, expected, "{} lr {lr} scale {scale} round {round} case {k}", opt.describe());
                        if bad.is_some() {
                            break;
                        }
                        let _ = before;
                        g.iter_mut().for_each(|g| *g *= -0.5);
                    }
                }
            }
        }
    }

    #[test]
    fn check_step_changes_nothing_and_defers_layout_errors_to_step() {
        for mut opt in all_optimizers(0.1) {
            let mut w = START.to_vec();
            opt.step(&mut w, &GRADS[0], &whole(4)).unwrap();
            let (state, counters) =
                (opt.state().iter().map(|(n, v)| (*n, v.to_vec())).collect::<Vec<_>>(), opt.counters());
            assert_eq!(opt.check_step(&w, &[f32::NAN; 4], &whole(4)), StepCheck::NonFinite { index: 0 });
            assert_eq!(opt.check_step(&w, &GRADS[1][..3], &whole(4)), StepCheck::Unknown);
            let after: Vec<_> = opt.state().iter().map(|(n, v)| (*n, v.to_vec())).collect();
            assert_eq!((after, opt.counters()), (state, counters));
        }
    }

    #[test]
    fn reset_forgets_the_state_as_a_new_optimizer() {
        for (mut used, mut fresh) in all_optimizers(0.1).into_iter().zip(all_optimizers(0.1)) {
            let mut w = START.to_vec();
            used.step(&mut w, &GRADS[0], &whole(4)).unwrap();
            used.reset();
            let (mut a, mut b) = (START.to_vec(), START.to_vec());
            used.step(&mut a, &GRADS[1], &whole(4)).unwrap();
            fresh.step(&mut b, &GRADS[1], &whole(4)).unwrap();
            assert_eq!(a, b, "{}", used.describe());
            assert_eq!(used.counters(), fresh.counters());
        }
    }

    #[test]
    fn counters_and_state_are_checked_when_loaded() {
        let mut adam = Adam::new(0.1).unwrap();
        let err = adam.load_counter("step", u64::MAX).unwrap_err().to_string();
        assert!(err.contains("18446744073709551615") && err.contains(&MAX_STEPS.to_string()), "{err}");
        adam.load_counter("step", MAX_STEPS).unwrap();
        assert!(adam.load_state("exp_avg", &[0.0, f32::NAN]).unwrap_err().to_string().contains("NaN at index 1"));
        assert!(adam.state().is_empty(), "a refused state was kept");
        let err = adam.load_state("exp_avg_sq", &[0.0, -1e-3]).unwrap_err().to_string();
        assert!(err.contains("not negative"), "{err}");
        let mut sgd = Sgd::new(0.1, 0.9).unwrap();
        assert!(sgd.load_state("momentum_buffer", &[f32::INFINITY]).is_err());
        assert!(sgd.state().is_empty());
    }

    #[test]
    fn a_step_past_the_largest_count_is_refused_and_changes_nothing() {
        let mut opt = Adam::new(0.1).unwrap();
        let mut w = START.to_vec();
        opt.step(&mut w, &GRADS[0], &whole(4)).unwrap();
        opt.load_counter("step", MAX_STEPS).unwrap();
        let before = w.clone();
        let err = opt.step(&mut w, &GRADS[1], &whole(4)).unwrap_err();
        assert!(err.to_string().contains("largest step count"), "{err}");
        assert_eq!((w, opt.steps()), (before, MAX_STEPS));
    }

    #[test]
    fn first_non_finite_finds_the_first_bad_value_in_any_block() {
        let mut v = vec![1.0f32; 1000];
        assert_eq!(first_non_finite(&v), None);
        v[777] = f32::NEG_INFINITY;
        v[900] = f32::NAN;
        assert_eq!(first_non_finite(&v), Some(777));
        assert_eq!(first_non_finite(&[]), None);
    }

    /// Long runs split between threads: each value is stepped as on its own, so the results are
    /// the same bits on 1 and 3 threads and equal to stepping the values one by one; checks find
    /// the same first bad value past the first block.
    #[test]
    fn long_runs_step_the_same_on_any_number_of_threads() {
        let len = 5 * PAR_BLOCK + 77;
        let segments = [
            Segment { start: 0, end: 10, decay: false },
            Segment { start: 10, end: len - 5, decay: true },
            Segment { start: len - 5, end: len, decay: false },
        ];
        let w0: Vec<f32> = (0..len).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let g: Vec<f32> = (0..len).map(|i| ((i * 104_729) % 997) as f32 / 400.0 - 1.2).collect();
        let run = |threads: usize, opt: &mut dyn Optimizer| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut w = w0.clone();
            pool.install(|| {
                for _ in 0..3 {
                    assert_eq!(opt.check_step(&w, &g, &segments), StepCheck::Finite);
                    opt.step(&mut w, &g, &segments).unwrap();
                }
            });
            w
        };
        for (mut one, mut three) in all_optimizers(0.01).into_iter().zip(all_optimizers(0.01)) {
            let (a, b) = (run(1, one.as_mut()), run(3, three.as_mut()));
            assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{}", one.describe());
            // The same steps on each value alone.
            for i in [0, 11, PAR_BLOCK + 3, 4 * PAR_BLOCK + 1, len - 1] {
                let decay = segments.iter().any(|s| s.decay && (s.start..s.end).contains(&i));
                let mut v = [w0[i]];
                let mut alone = all_optimizers(0.01).into_iter().find(|o| o.describe() == one.describe()).unwrap();
                for _ in 0..3 {
                    alone.step(&mut v, &[g[i]], &[Segment { start: 0, end: 1, decay }]).unwrap();
                }
                assert_eq!(v[0].to_bits(), a[i].to_bits(), "{} at {i}", one.describe());
            }
        }
        let mut bad = w0.clone();
        bad[3 * PAR_BLOCK + 5] = f32::INFINITY;
        bad[4 * PAR_BLOCK] = f32::NAN;
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        pool.install(|| {
            assert_eq!(first_non_finite(&bad), Some(3 * PAR_BLOCK + 5));
            assert_eq!(max_abs(&bad, &segments), None);
            let most = w0.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert_eq!(max_abs(&w0, &segments), Some(f64::from(most)));
            let mut opt = Sgd::new(0.01, 0.9).unwrap();
            let check = opt.check_step(&bad, &g, &segments);
            assert_eq!(check, StepCheck::NonFinite { index: 3 * PAR_BLOCK + 5 });
            opt.step(&mut bad.clone(), &g, &segments).unwrap();
        });
    }
}
