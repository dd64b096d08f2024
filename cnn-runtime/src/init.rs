//! Seeded parameter initialisation, following PyTorch's defaults.

use rand::{RngExt as _, SeedableRng};

/// The random number generator of the runtime: ChaCha8, reproducible across platforms and
/// versions of this crate from a `u64` seed.
pub type Rng = rand_chacha::ChaCha8Rng;

/// A generator seeded with `seed`.
pub fn rng(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// PyTorch's default initialisation of a convolution or linear layer whose parameters are
/// `p` = weights then biases: weights from kaiming-uniform with `a = √5`, which is
/// `U(-1/√fan_in, 1/√fan_in)`, and biases from the same uniform.
pub fn pytorch_default(p: &mut [f32], fan_in: usize, rng: &mut Rng) {
    let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
    for v in p {
        *v = rng.random_range(-bound..bound);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_init_is_bounded_seeded_and_spread() {
        let mut a = vec![0.0; 1000];
        pytorch_default(&mut a, 25, &mut rng(7));
        assert!(a.iter().all(|v| v.abs() < 0.2));
        let mean = a.iter().sum::<f32>() / 1000.0;
        let var = a.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 1000.0;
        // Uniform on (-0.2, 0.2): variance 0.04 / 3.
        assert!((var - 0.04 / 3.0).abs() < 0.002, "variance {var}");
        let mut b = vec![0.0; 1000];
        pytorch_default(&mut b, 25, &mut rng(7));
        assert_eq!(a, b);
        pytorch_default(&mut b, 25, &mut rng(8));
        assert_ne!(a, b);
    }
}
