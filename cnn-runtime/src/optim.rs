//! Optimizers: update rules over a model's flat parameter and gradient buffers.

use crate::{Error, Result};

/// An update rule applied to a model's parameters from their gradient.
///
/// Optimizers see the flat buffers of [`Model`](crate::Model), so one implementation serves
/// every generated model. State (such as momentum) is allocated on the first step and reused.
pub trait Optimizer {
    /// Updates `params` in place from `grads` (both the same length).
    fn step(&mut self, params: &mut [f32], grads: &[f32]);

    /// The current learning rate.
    fn learning_rate(&self) -> f32;

    /// Sets the learning rate, for decay schedules.
    fn set_learning_rate(&mut self, lr: f32);

    /// A description with every hyperparameter, such as `Sgd(lr=0.05, momentum=0.9)`, kept in
    /// checkpoints.
    fn describe(&self) -> String;

    /// The optimizer's state buffers by name (empty before the first step), for checkpoints.
    fn state(&self) -> Vec<(&'static str, &[f32])> {
        Vec::new()
    }

    /// Restores the state buffer `name` from a checkpoint.
    fn load_state(&mut self, name: &str, values: &[f32]) -> Result<()> {
        let _ = values;
        Err(Error::InvalidArgument {
            name: "optimizer state",
            reason: format!("`{name}` is not part of this optimizer"),
        })
    }
}

/// Mini-batch stochastic gradient descent with momentum, as the course writes it:
///
/// `Δ ← κ·Δ + ∇L`, then `w ← w − γ·Δ`,
///
/// with learning rate `γ` and momentum `κ` (`κ = 0` is plain SGD). This is PyTorch's
/// `torch.optim.SGD(lr=γ, momentum=κ)` update.
#[derive(Clone, Debug)]
pub struct Sgd {
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    velocity: Vec<f32>,
}

impl Sgd {
    /// SGD with learning rate `lr` and momentum `momentum`.
    ///
    /// Fails when `lr` is not finite and positive, or `momentum` is not in `[0, 1)`.
    pub fn new(lr: f32, momentum: f32) -> Result<Self> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::InvalidArgument {
                name: "learning rate",
                reason: format!("must be finite and positive, got {lr}"),
            });
        }
        if !(0.0..1.0).contains(&momentum) {
            return Err(Error::InvalidArgument {
                name: "momentum",
                reason: format!("must be in [0, 1), got {momentum}"),
            });
        }
        Ok(Sgd { lr, momentum, weight_decay: 0.0, velocity: Vec::new() })
    }

    /// Adds L2 weight decay `λ`: the gradient becomes `∇L + λ·w` before the momentum step
    /// (PyTorch's `weight_decay`, applied to every parameter). Fails unless `λ` is finite and
    /// not negative.
    pub fn with_weight_decay(mut self, weight_decay: f32) -> Result<Self> {
        if !(weight_decay.is_finite() && weight_decay >= 0.0) {
            return Err(Error::InvalidArgument {
                name: "weight decay",
                reason: format!("must be finite and not negative, got {weight_decay}"),
            });
        }
        self.weight_decay = weight_decay;
        Ok(self)
    }

    /// The momentum `κ`.
    pub fn momentum(&self) -> f32 {
        self.momentum
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        assert_eq!(params.len(), grads.len(), "parameters and gradients differ in length");
        let (lr, momentum, decay) = (self.lr, self.momentum, self.weight_decay);
        if momentum == 0.0 {
            params.iter_mut().zip(grads).for_each(|(w, g)| *w -= lr * (g + decay * *w));
            return;
        }
        let first = self.velocity.len() != params.len();
        if first {
            self.velocity.clear();
            self.velocity.resize(params.len(), 0.0);
        }
        for ((w, g), v) in params.iter_mut().zip(grads).zip(&mut self.velocity) {
            let g = g + decay * *w;
            // The buffer starts at the first gradient, as PyTorch's does.
            *v = if first { g } else { momentum * *v + g };
            *w -= lr * *v;
        }
    }

    fn learning_rate(&self) -> f32 {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.lr = lr;
    }

    fn describe(&self) -> String {
        format!("Sgd(lr={}, momentum={}, weight_decay={})", self.lr, self.momentum, self.weight_decay)
    }

    fn state(&self) -> Vec<(&'static str, &[f32])> {
        if self.velocity.is_empty() {
            Vec::new()
        } else {
            vec![("momentum_buffer", &self.velocity)]
        }
    }

    fn load_state(&mut self, name: &str, values: &[f32]) -> Result<()> {
        if name != "momentum_buffer" {
            return Err(Error::InvalidArgument {
                name: "optimizer state",
                reason: format!("Sgd has no state `{name}`"),
            });
        }
        self.velocity = values.to_vec();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn momentum_follows_the_update_formula_step_by_step() {
        let mut opt = Sgd::new(0.1, 0.9).unwrap();
        let mut w = vec![1.0f32, -2.0];
        let g1 = [0.5, 1.0];
        let g2 = [-1.0, 2.0];
        opt.step(&mut w, &g1);
        // Δ = g1; w = w - 0.1 g1
        assert_eq!(w, vec![1.0 - 0.1 * 0.5, -2.0 - 0.1 * 1.0]);
        opt.step(&mut w, &g2);
        // Δ = 0.9 g1 + g2
        let d = [0.9f32 * 0.5 - 1.0, 0.9 * 1.0 + 2.0];
        assert_eq!(w, vec![1.0 - 0.1 * 0.5 - 0.1 * d[0], -2.0 - 0.1 * 1.0 - 0.1 * d[1]]);
    }

    #[test]
    fn plain_sgd_without_momentum() {
        let mut opt = Sgd::new(0.5, 0.0).unwrap();
        let mut w = vec![1.0f32];
        opt.step(&mut w, &[2.0]);
        opt.step(&mut w, &[2.0]);
        assert_eq!(w, vec![-1.0]);
        opt.set_learning_rate(0.25);
        assert_eq!(opt.learning_rate(), 0.25);
    }

    #[test]
    fn weight_decay_adds_lambda_w_to_the_gradient() {
        let mut opt = Sgd::new(0.1, 0.9).unwrap().with_weight_decay(0.01).unwrap();
        let mut w = vec![2.0f32];
        opt.step(&mut w, &[0.5]);
        // Δ = 0.5 + 0.01·2 = 0.52
        assert_eq!(w, vec![2.0 - 0.1 * 0.52]);
        let w1 = w[0];
        opt.step(&mut w, &[0.5]);
        let d = 0.9 * 0.52 + (0.5 + 0.01 * w1);
        assert!((w[0] - (w1 - 0.1 * d)).abs() < 1e-7);
        assert!(Sgd::new(0.1, 0.0).unwrap().with_weight_decay(-1.0).is_err());
    }

    #[test]
    fn rejects_bad_hyperparameters() {
        assert!(Sgd::new(0.0, 0.9).unwrap_err().to_string().contains("learning rate"));
        assert!(Sgd::new(f32::NAN, 0.9).is_err());
        assert!(Sgd::new(0.1, 1.0).unwrap_err().to_string().contains("momentum"));
        assert!(Sgd::new(0.1, -0.5).is_err());
    }
}
