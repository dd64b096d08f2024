//! Learning-rate schedules: the learning rate as a function of the step, in the closed forms of
//! PyTorch's `torch.optim.lr_scheduler`.
//!
//! A step may be an epoch or a batch; the caller decides, and sets the rate with
//! [`Schedule::apply`] before the optimizer's steps:
//!
//! ```
//! use cnn::schedule::{Schedule, StepDecay};
//! use cnn::{Optimizer, Sgd};
//!
//! let schedule = StepDecay::new(0.1, 30, 0.1)?;
//! let mut opt = Sgd::new(0.1, 0.9)?;
//! for epoch in 0..90 {
//!     schedule.apply(&mut opt, epoch)?;
//!     // ... train one epoch with `opt` ...
//! }
//! assert!((opt.learning_rate() - 0.001).abs() < 1e-9);
//! # Ok::<(), cnn::Error>(())
//! ```

#[cfg(not(feature = "std"))]
use crate::math::Float;
use crate::optim::check_learning_rate;
use crate::prelude::*;
use crate::{Error, Optimizer, Result};

/// A learning rate for every step.
pub trait Schedule {
    /// The learning rate at step `t` (0-based; a step may be an epoch or a batch, the user decides).
    fn lr(&self, t: usize) -> f32;

    /// Sets `opt`'s learning rate to the rate at step `t`. Fails, leaving the rate as it was,
    /// when that rate is not finite and positive (a decay that has reached 0).
    fn apply(&self, opt: &mut dyn Optimizer, t: usize) -> Result<()> {
        opt.set_learning_rate(self.lr(t))
    }
}

impl<S: Schedule + ?Sized> Schedule for &S {
    fn lr(&self, t: usize) -> f32 {
        (**self).lr(t)
    }
}

impl<S: Schedule + ?Sized> Schedule for Box<S> {
    fn lr(&self, t: usize) -> f32 {
        (**self).lr(t)
    }
}

/// Fails unless `lr` is a learning rate ([`check_learning_rate`]), naming it `name`.
fn check_rate(name: &'static str, lr: f32) -> Result<()> {
    check_learning_rate(lr)
        .map_err(|_| Error::InvalidArgument { name, reason: format!("must be finite and positive, got {lr}") })
}

/// Fails unless `gamma` is in `(0, 1]`.
fn check_gamma(gamma: f32) -> Result<()> {
    if gamma > 0.0 && gamma <= 1.0 {
        Ok(())
    } else {
        Err(Error::InvalidArgument { name: "gamma", reason: format!("must be in (0, 1], got {gamma}") })
    }
}

/// Fails when `steps` is zero.
fn check_steps(name: &'static str, steps: usize) -> Result<()> {
    if steps > 0 {
        Ok(())
    } else {
        Err(Error::InvalidArgument { name, reason: "must be at least 1".into() })
    }
}

/// The same learning rate at every step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Constant {
    lr: f32,
}

impl Constant {
    /// The rate `lr` at every step. Fails unless `lr` is finite and positive.
    pub fn new(lr: f32) -> Result<Self> {
        check_rate("learning rate", lr)?;
        Ok(Constant { lr })
    }
}

impl Schedule for Constant {
    fn lr(&self, _t: usize) -> f32 {
        self.lr
    }
}

/// `base·gamma^⌊t / every⌋`: the rate is multiplied by `gamma` every `every` steps, as PyTorch's
/// `StepLR(step_size=every, gamma=gamma)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepDecay {
    base: f32,
    every: usize,
    gamma: f32,
}

impl StepDecay {
    /// Starts at `base` and multiplies by `gamma` every `every` steps. Fails unless `base` is finite
    /// and positive, `every` at least 1 and `gamma` in `(0, 1]`.
    pub fn new(base: f32, every: usize, gamma: f32) -> Result<Self> {
        check_rate("base learning rate", base)?;
        check_steps("decay period", every)?;
        check_gamma(gamma)?;
        Ok(StepDecay { base, every, gamma })
    }
}

impl Schedule for StepDecay {
    fn lr(&self, t: usize) -> f32 {
        let k = (t / self.every) as f64;
        (f64::from(self.base) * f64::from(self.gamma).powf(k)) as f32
    }
}

/// `base·gamma^t`, as PyTorch's `ExponentialLR(gamma=gamma)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exponential {
    base: f32,
    gamma: f32,
}

impl Exponential {
    /// Starts at `base` and multiplies by `gamma` every step. Fails unless `base` is finite and
    /// positive and `gamma` in `(0, 1]`.
    pub fn new(base: f32, gamma: f32) -> Result<Self> {
        check_rate("base learning rate", base)?;
        check_gamma(gamma)?;
        Ok(Exponential { base, gamma })
    }
}

impl Schedule for Exponential {
    fn lr(&self, t: usize) -> f32 {
        (f64::from(self.base) * f64::from(self.gamma).powf(t as f64)) as f32
    }
}

/// Cosine annealing from `base` down to `min` over `steps` steps:
/// `min + (base − min)·(1 + cos(π·t / steps)) / 2`, the closed form of PyTorch's
/// `CosineAnnealingLR(T_max=steps, eta_min=min)`. From step `steps` on the rate stays at `min`,
/// where PyTorch's keeps following the cosine back up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cosine {
    base: f32,
    min: f32,
    steps: usize,
}

impl Cosine {
    /// Anneals from `base` to `min` over `steps` steps. Fails unless `base` is finite and positive,
    /// `min` finite and in `[0, base]`, and `steps` at least 1.
    pub fn new(base: f32, min: f32, steps: usize) -> Result<Self> {
        check_rate("base learning rate", base)?;
        if !(min.is_finite() && (0.0..=base).contains(&min)) {
            return Err(Error::InvalidArgument {
                name: "minimum learning rate",
                reason: format!("must be in [0, {base}] (the base rate), got {min}"),
            });
        }
        check_steps("annealing steps", steps)?;
        Ok(Cosine { base, min, steps })
    }
}

impl Schedule for Cosine {
    fn lr(&self, t: usize) -> f32 {
        if t >= self.steps {
            return self.min;
        }
        let (base, min) = (f64::from(self.base), f64::from(self.min));
        let cos = (core::f64::consts::PI * t as f64 / self.steps as f64).cos();
        (min + (base - min) * (1.0 + cos) / 2.0) as f32
    }
}

/// Linear warm-up before another schedule: `inner.lr(0)·(t + 1) / steps` for `t < steps`, then
/// `inner.lr(t − steps)`, so the inner schedule starts once the warm-up is over.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WarmUp<S: Schedule> {
    steps: usize,
    inner: S,
}

impl<S: Schedule> WarmUp<S> {
    /// Warms up over `steps` steps, then follows `inner`. Fails when `steps` is zero.
    pub fn new(steps: usize, inner: S) -> Result<Self> {
        check_steps("warm-up steps", steps)?;
        Ok(WarmUp { steps, inner })
    }

    /// The schedule that follows the warm-up.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: Schedule> Schedule for WarmUp<S> {
    fn lr(&self, t: usize) -> f32 {
        if t < self.steps {
            (f64::from(self.inner.lr(0)) * (t as f64 + 1.0) / self.steps as f64) as f32
        } else {
            self.inner.lr(t - self.steps)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sgd;

    fn assert_close(found: f32, expected: f64) {
        assert!(
            (f64::from(found) - expected).abs() <= 1e-6 * expected.abs().max(1e-3),
            "found {found}, expected {expected}"
        );
    }

    #[test]
    fn constant_is_constant() {
        let s = Constant::new(0.01).unwrap();
        assert_eq!((s.lr(0), s.lr(1_000_000)), (0.01, 0.01));
    }

    #[test]
    fn step_decay_matches_pytorch_step_lr() {
        // PyTorch's StepLR example: 0.05 for epochs 0..30, 0.005 for 30..60, 0.0005 for 60..90.
        let s = StepDecay::new(0.05, 30, 0.1).unwrap();
        for (t, expected) in [(0, 0.05), (29, 0.05), (30, 0.005), (59, 0.005), (60, 0.0005), (89, 0.0005)] {
            assert_close(s.lr(t), expected);
        }
    }

    #[test]
    fn exponential_matches_pytorch_exponential_lr() {
        let s = Exponential::new(0.1, 0.9).unwrap();
        for (t, expected) in [(0, 0.1), (1, 0.09), (3, 0.1 * 0.729), (10, 0.1 * 0.9f64.powi(10))] {
            assert_close(s.lr(t), expected);
        }
    }

    #[test]
    fn cosine_matches_pytorch_cosine_annealing_and_then_holds_the_minimum() {
        let s = Cosine::new(0.1, 0.001, 10).unwrap();
        let pi = core::f64::consts::PI;
        for (t, expected) in [
            (0, 0.1),
            (2, 0.001 + 0.099 * (1.0 + (pi / 5.0).cos()) / 2.0),
            (5, 0.0505),
            (9, 0.001 + 0.099 * (1.0 + (0.9 * pi).cos()) / 2.0),
            (10, 0.001),
            (15, 0.001),
            (1000, 0.001),
        ] {
            assert_close(s.lr(t), expected);
        }
        assert_eq!(Cosine::new(0.1, 0.0, 4).unwrap().lr(4), 0.0);
    }

    #[test]
    fn warm_up_boundaries() {
        let s = WarmUp::new(4, StepDecay::new(0.1, 2, 0.5).unwrap()).unwrap();
        for (t, expected) in [(0, 0.025), (1, 0.05), (3, 0.1), (4, 0.1), (5, 0.1), (6, 0.05), (7, 0.05), (8, 0.025)] {
            assert_close(s.lr(t), expected);
        }
        let one = WarmUp::new(1, Constant::new(0.2).unwrap()).unwrap();
        assert_eq!((one.lr(0), one.lr(1)), (0.2, 0.2));
        assert_eq!(s.inner().lr(0), 0.1);
    }

    #[test]
    fn schedules_behind_references_and_boxes_apply_to_optimizers() {
        let schedules: Vec<Box<dyn Schedule>> = vec![
            Box::new(Exponential::new(0.1, 0.5).unwrap()),
            Box::new(WarmUp::new(2, Constant::new(0.4).unwrap()).unwrap()),
        ];
        let mut opt = Sgd::new(1.0, 0.0).unwrap();
        schedules[0].apply(&mut opt, 2).unwrap();
        assert_close(opt.learning_rate(), 0.025);
        schedules[1].apply(&mut opt, 0).unwrap();
        assert_close(opt.learning_rate(), 0.2);
        let warm = WarmUp::new(3, &schedules[0]).unwrap();
        assert_close(warm.lr(4), 0.05);
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(Constant::new(0.0).unwrap_err().to_string().contains("learning rate"));
        assert!(StepDecay::new(0.1, 0, 0.1).unwrap_err().to_string().contains("decay period"));
        assert!(StepDecay::new(0.1, 10, 1.5).unwrap_err().to_string().contains("gamma"));
        assert!(Exponential::new(f32::NAN, 0.9).is_err());
        assert!(Exponential::new(0.1, 0.0).is_err());
        assert!(Cosine::new(0.1, 0.2, 10).unwrap_err().to_string().contains("minimum"));
        assert!(Cosine::new(0.1, -0.1, 10).is_err());
        assert!(Cosine::new(0.1, 0.0, 0).is_err());
        assert!(WarmUp::new(0, Constant::new(0.1).unwrap()).unwrap_err().to_string().contains("warm-up"));
    }

    #[test]
    fn extreme_steps_give_rates_without_overflow() {
        let warm = WarmUp::new(usize::MAX, Constant::new(0.1).unwrap()).unwrap();
        assert!(warm.lr(usize::MAX - 1) > 0.0 && warm.lr(usize::MAX) == 0.1);
        let cos = Cosine::new(0.1, 0.0, usize::MAX).unwrap();
        assert!(cos.lr(usize::MAX - 1) >= 0.0);
        assert_eq!(StepDecay::new(0.1, usize::MAX, 0.5).unwrap().lr(usize::MAX), 0.05);
        // A rate that decays to 0 is refused by the optimizer, which keeps its rate.
        let mut opt = Sgd::new(0.1, 0.0).unwrap();
        let exp = Exponential::new(0.1, 0.5).unwrap();
        assert_eq!(exp.lr(usize::MAX), 0.0);
        assert!(exp.apply(&mut opt, usize::MAX).is_err());
        assert_eq!(opt.learning_rate(), 0.1);
    }
}
