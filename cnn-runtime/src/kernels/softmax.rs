//! Softmax and its fused cross-entropy gradient.

#[cfg(not(feature = "std"))]
use crate::math::Float;

use super::{chunk, chunk_count, chunk_len, for_each_chunk, ChunksMut, Loss, Targets};

/// Row-wise softmax of `n` rows of `classes` logits into `probs`, shifted by each row's
/// maximum so that no `exp` overflows.
pub fn softmax_forward(n: usize, classes: usize, logits: &[f32], probs: &mut [f32]) {
    let len = chunk_len(n) * classes;
    let ps = ChunksMut::new(&mut probs[..n * classes], len);
    let logits = &logits[..n * classes];
    for_each_chunk(chunk_count(n), &|c| {
        let (p, z) = (ps.take(c), chunk(logits, len, c));
        for (p, z) in p.chunks_exact_mut(classes).zip(z.chunks_exact(classes)) {
            softmax_row(z, p);
        }
    });
}

/// The softmax of one row of logits `z` into `p`, shifted by the row's maximum.
#[inline]
pub(crate) fn softmax_row(z: &[f32], p: &mut [f32]) {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for (p, &z) in p.iter_mut().zip(z) {
        *p = (z - max).exp();
        sum += *p;
    }
    p.iter_mut().for_each(|p| *p /= sum);
}

/// Mean cross-entropy of `n` samples and its gradient with respect to the logits, fused:
/// `dlogits = (softmax(z) - onehot(label)) / n`.
///
/// `probs` must hold `softmax(logits)` (from [`softmax_forward`]); the loss itself is computed
/// from the logits by log-sum-exp, so it stays finite when a probability underflows to 0.
/// Labels must be below `classes`. The same as [`Loss::CrossEntropy`]'s
/// [`loss_and_grad`](Loss::loss_and_grad) with [`Targets::Labels`].
pub fn softmax_cross_entropy(
    n: usize,
    classes: usize,
    logits: &[f32],
    probs: &[f32],
    labels: &[usize],
    dlogits: &mut [f32],
) -> f32 {
    Loss::CrossEntropy.loss_and_grad(n, classes, logits, probs, Targets::Labels(labels), dlogits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{assert_close, max_rel_error, random_vec};

    #[test]
    fn probabilities_sum_to_one_even_for_huge_logits() {
        let z = [1000.0, 1001.0, 999.0, -5.0, 0.0, 5.0];
        let mut p = [0.0; 6];
        softmax_forward(2, 3, &z, &mut p);
        assert!((p[..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p[3..].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[1] > p[0] && p[0] > p[2]);
    }

    #[test]
    fn loss_of_uniform_logits_is_ln_classes() {
        let z = [0.0; 10];
        let mut p = [0.0; 10];
        softmax_forward(1, 10, &z, &mut p);
        let mut d = [0.0; 10];
        let loss = softmax_cross_entropy(1, 10, &z, &p, &[3], &mut d);
        assert!((loss - 10f32.ln()).abs() < 1e-6);
        assert_close(&d[..3], &[0.1; 3], 1e-6, "p - t");
        assert!((d[3] + 0.9).abs() < 1e-6);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (n, c) = (4, 6);
        let mut z = random_vec(n * c, 3).iter().map(|v| v * 3.0).collect::<Vec<_>>();
        let labels = [0, 5, 2, 2];
        let mut p = vec![0.0; n * c];
        softmax_forward(n, c, &z, &mut p);
        let mut d = vec![0.0; n * c];
        softmax_cross_entropy(n, c, &z, &p, &labels, &mut d);
        let err = max_rel_error(&mut z, &d, |z| {
            let mut p = vec![0.0; n * c];
            softmax_forward(n, c, z, &mut p);
            softmax_cross_entropy(n, c, z, &p, &labels, &mut vec![0.0; n * c]) as f64
        });
        println!("softmax + cross-entropy: max relative error {err:e}");
        assert!(err < 1e-2, "max relative error {err}");
    }
}
