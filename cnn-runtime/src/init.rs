//! Seeded parameter initialisation, following PyTorch's defaults.
//!
//! Every generated model starts as PyTorch initialises it, from a seed; [`he_uniform`] redraws
//! the weights for deep stacks of ReLU layers without batch normalisation:
//!
//! ```
//! use cnn::{cnn, init, Network};
//!
//! cnn! { struct Deep < input(16) fc(64) relu fc(64) relu fc(64) relu fc(4) softmax > }
//!
//! let mut model = Deep::with_seed(3);
//! assert_eq!(model.params(), Deep::with_seed(3).params()); // the seed decides everything
//! init::he_uniform(&mut model, 3);
//! assert_ne!(model.params(), Deep::with_seed(3).params());
//! ```

#[cfg(not(feature = "std"))]
use crate::math::Float;

use rand::{RngExt as _, SeedableRng};

/// The random number generator of the runtime: ChaCha8, reproducible across platforms and
/// versions of this crate from a `u64` seed.
pub type Rng = rand_chacha::ChaCha8Rng;

/// A generator seeded with `seed`.
pub fn rng(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// The splitmix64 increment (2⁶⁴ divided by the golden ratio).
pub(crate) const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// splitmix64's output function: a bijective mix of all 64 bits.
#[inline(always)]
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The first splitmix64 output from state `seed`: a well-mixed hash of it, for deriving
/// independent seeds without a generator.
#[inline]
pub(crate) fn splitmix(seed: u64) -> u64 {
    mix(seed.wrapping_add(GOLDEN_GAMMA))
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

/// He's initialisation for networks of ReLU layers: redraws every convolution and fully
/// connected weight of `model` from `U(−√(6/fan_in), √(6/fan_in))` (PyTorch's
/// `torch.nn.init.kaiming_uniform_` with its defaults), from `seed`; biases, normalisation
/// parameters and buffers stay as they are.
///
/// PyTorch's default bound is √6 times smaller, which shrinks the signal layer after layer: a
/// deep stack of ReLU layers without batch normalisation (an AlexNet) may then not learn at all.
pub fn he_uniform<M: crate::Network>(model: &mut M, seed: u64) {
    let mut rng = rng(seed);
    for t in M::TENSORS.iter().filter(|t| t.kind == crate::TensorKind::Weight) {
        let fan_in = t.len() / t.shape[0].max(1);
        let bound = (6.0 / fan_in.max(1) as f32).sqrt();
        for v in &mut model.params_mut()[t.offset..t.offset + t.len()] {
            *v = rng.random_range(-bound..bound);
        }
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
