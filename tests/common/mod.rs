//! Helpers shared by the integration tests.
#![allow(dead_code)]

use cnn::{Model, Network, Targets};

/// A tiny xorshift generator, so tests make their own data without dependencies.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [-1, 1).
    pub fn symmetric(&mut self) -> f32 {
        2.0 * self.next_f32() - 1.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_f32() * n as f32) as usize).min(n - 1)
    }

    pub fn vec(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.symmetric()).collect()
    }
}

/// A synthetic image task: `side x side` grey images with a bright line that is horizontal
/// (class 0), vertical (1), diagonal (2) or anti-diagonal (3), at a random place, over noise.
pub fn lines(n: usize, side: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
    let mut rng = Lcg(seed | 1);
    let mut x = vec![0.0; n * side * side];
    let mut labels = Vec::with_capacity(n);
    for (s, img) in x.chunks_exact_mut(side * side).enumerate() {
        let class = s % 4;
        labels.push(class);
        for v in img.iter_mut() {
            *v = 0.3 * rng.next_f32();
        }
        let at = 1 + rng.below(side - 2);
        for i in 0..side {
            let (r, c) = match class {
                0 => (at, i),
                1 => (i, at),
                2 => (i, i),
                _ => (i, side - 1 - i),
            };
            img[r * side + c] = 1.0;
        }
    }
    (x, labels)
}

/// Largest relative error between `loss_and_grad`'s gradient and central differences of the
/// loss, over every parameter; the dropout masks are the same for every evaluation.
pub fn gradient_error<M: Model>(model: &mut M, x: &[f32], targets: Targets<'_>) -> f64 {
    gradient_error_above(model, x, targets, 1e-2)
}

/// [`gradient_error`] where an error is relative to `|numeric| + |analytic|` but never to less
/// than `floor`. A deep network's f32 loss moves in steps of about 1e-7, which makes every
/// central difference uncertain by about 1e-4: `floor` keeps that noise from counting as a
/// relative error on the smallest gradients.
pub fn gradient_error_above<M: Model>(model: &mut M, x: &[f32], targets: Targets<'_>, floor: f64) -> f64 {
    gradient_error_of(model, floor, |model| model.loss_and_grad_targets_of(x, targets).unwrap())
}

/// [`gradient_error_above`] for any training pass `pass`, which leaves the gradient and returns
/// the loss (such as a multi-task model's `loss_and_grad`).
pub fn gradient_error_of<N: Network>(model: &mut N, floor: f64, mut pass: impl FnMut(&mut N) -> f32) -> f64 {
    let h = 1e-3f32;
    let noise = model.noise();
    let mut loss = |model: &mut N| {
        model.set_noise(noise);
        pass(model) as f64
    };
    let base = loss(model);
    let analytic = model.grads().to_vec();
    let (mut worst, mut kinks) = (0.0f64, 0);
    for (i, &a) in analytic.iter().enumerate() {
        let orig = model.params()[i];
        model.params_mut()[i] = orig + h;
        let up = loss(model);
        model.params_mut()[i] = orig - h;
        let down = loss(model);
        model.params_mut()[i] = orig;
        let (right, left) = ((up - base) / h as f64, (base - down) / h as f64);
        if (right - left).abs() > 0.1 * (right.abs() + left.abs()).max(1e-2) {
            kinks += 1;
            continue;
        }
        let numeric = (up - down) / (2.0 * h as f64);
        let a = a as f64;
        let err = (numeric - a).abs() / (numeric.abs() + a.abs()).max(floor);
        if err > 1e-2 {
            eprintln!("parameter {i}: numeric {numeric:e}, analytic {a:e}");
        }
        worst = worst.max(err);
    }
    assert!(kinks * 20 <= N::PARAM_COUNT, "{kinks} of {} parameters on a kink", N::PARAM_COUNT);
    worst
}
