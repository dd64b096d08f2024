//! Training losses and their gradients with respect to a model's final pre-activations.
//!
//! Each loss fixes the model's output function: softmax for cross-entropy, the sigmoid for
//! binary cross-entropy, none for the mean squared error. Losses are PyTorch's with the `'mean'`
//! reduction, computed from the pre-activations `z` so that they stay finite for any logits.

use super::{
    activation::sigmoid, argmax, chunk, chunk_count, chunk_len, for_each_chunk, softmax_forward, ChunksMut, MAX_CHUNKS,
};
#[cfg(not(feature = "std"))]
use crate::math::Float;
use crate::prelude::*;
use crate::{Error, Result};

/// The training loss of a model, fixed by its last layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// `torch.nn.CrossEntropyLoss` on the logits `z`; the outputs are `softmax(z)`.
    CrossEntropy,
    /// `torch.nn.BCEWithLogitsLoss` on `z`; the outputs are `sigmoid(z)`.
    BinaryCrossEntropy,
    /// `torch.nn.MSELoss` on `z`, which are the outputs themselves.
    MeanSquaredError,
}

/// What a batch is trained towards.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    /// One class index per sample. For binary cross-entropy with one output the label is the
    /// target itself (0 or 1); otherwise it stands for the one-hot row of that class.
    Labels(&'a [usize]),
    /// One row of target values per sample, as many as the model has outputs.
    Dense(&'a [f32]),
}

/// The targets of one sample.
#[derive(Clone, Copy)]
enum Target<'a> {
    Label(usize),
    Dense(&'a [f32]),
}

impl<'a> Targets<'a> {
    /// The targets of sample `s`, with `k` outputs per sample.
    #[inline]
    fn sample(self, s: usize, k: usize) -> Target<'a> {
        match self {
            Targets::Labels(labels) => Target::Label(labels[s]),
            Targets::Dense(t) => Target::Dense(&t[s * k..(s + 1) * k]),
        }
    }
}

impl Loss {
    /// The model's outputs from its final pre-activations `z` (`n·k` values): softmax per sample,
    /// sigmoid, or a copy.
    pub fn output(self, n: usize, k: usize, z: &[f32], out: &mut [f32]) {
        if n * k == 0 {
            return;
        }
        match self {
            Loss::CrossEntropy => softmax_forward(n, k, z, out),
            Loss::BinaryCrossEntropy => {
                let len = chunk_len(n) * k;
                let outs = ChunksMut::new(&mut out[..n * k], len);
                let z = &z[..n * k];
                for_each_chunk(chunk_count(n), &|c| {
                    outs.take(c).iter_mut().zip(chunk(z, len, c)).for_each(|(o, &z)| *o = sigmoid(z));
                });
            }
            Loss::MeanSquaredError => out[..n * k].copy_from_slice(&z[..n * k]),
        }
    }

    /// Mean loss of the batch, with `dz` (`n·k` values, overwritten) = its gradient w.r.t. `z`;
    /// `out` = [`output`](Self::output)`(z)`.
    ///
    /// The targets must pass [`check`](Self::check). An empty batch has loss 0.
    pub fn loss_and_grad(
        self,
        n: usize,
        k: usize,
        z: &[f32],
        out: &[f32],
        targets: Targets<'_>,
        dz: &mut [f32],
    ) -> f32 {
        if n * k == 0 {
            return 0.0;
        }
        (self.sum(n, k, z, out, targets, Some(dz)) / n as f64) as f32
    }

    /// [`loss_and_grad`](Self::loss_and_grad) times `weight`, the gradient in `dz` scaled
    /// alike: a head's share of a multi-task model's training loss.
    #[allow(clippy::too_many_arguments)]
    pub fn weighted_loss_and_grad(
        self,
        weight: f32,
        n: usize,
        k: usize,
        z: &[f32],
        out: &[f32],
        targets: Targets<'_>,
        dz: &mut [f32],
    ) -> f32 {
        let loss = self.loss_and_grad(n, k, z, out, targets, dz);
        dz[..n * k].iter_mut().for_each(|g| *g *= weight);
        weight * loss
    }

    /// Sum over the batch of the per-sample loss (f64), from `z`/`out`, for evaluation.
    ///
    /// The per-sample loss of binary cross-entropy and the mean squared error is the mean over
    /// the sample's outputs, so that dividing the sum by `n` gives the batch's mean loss.
    pub fn loss_sum(self, n: usize, k: usize, z: &[f32], out: &[f32], targets: Targets<'_>) -> f64 {
        if n * k == 0 {
            return 0.0;
        }
        self.sum(n, k, z, out, targets, None)
    }

    /// Number of classes a label may name for `k` outputs: `k`, except 2 for binary
    /// cross-entropy with `k = 1`.
    pub fn classes(self, k: usize) -> usize {
        match (self, k) {
            (Loss::BinaryCrossEntropy, 1) => 2,
            _ => k,
        }
    }

    /// The class one output row predicts: argmax, or `row[0] > 0.5` for binary cross-entropy
    /// with one output.
    pub fn classify(self, row: &[f32]) -> usize {
        match (self, row) {
            (Loss::BinaryCrossEntropy, [p]) => usize::from(*p > 0.5),
            _ => argmax(row),
        }
    }

    /// Checks targets for a batch of `n` samples with `k` outputs: label count and range, dense
    /// length, dense values finite (and in `[0, 1]` for binary cross-entropy, `≥ 0` for
    /// cross-entropy).
    pub fn check(self, n: usize, k: usize, targets: Targets<'_>) -> Result<()> {
        match targets {
            Targets::Labels(labels) => {
                if labels.len() != n {
                    return Err(Error::LabelCount { samples: n, labels: labels.len() });
                }
                let classes = self.classes(k);
                match labels.iter().position(|&l| l >= classes) {
                    Some(index) => Err(Error::LabelOutOfRange { index, label: labels[index], classes }),
                    None => Ok(()),
                }
            }
            Targets::Dense(t) => {
                if n.checked_mul(k) != Some(t.len()) {
                    return Err(Error::TargetLength { samples: n, outputs: k, found: t.len() });
                }
                for (i, &v) in t.iter().enumerate() {
                    let reason = if !v.is_finite() {
                        format!("{v} is not a finite number")
                    } else if self == Loss::BinaryCrossEntropy && !(0.0..=1.0).contains(&v) {
                        format!("{v} is outside [0, 1], the range of binary cross-entropy targets")
                    } else if self == Loss::CrossEntropy && v < 0.0 {
                        format!("{v} is negative, but cross-entropy targets are class probabilities")
                    } else {
                        continue;
                    };
                    return Err(Error::InvalidTarget { sample: i / k, output: i % k, reason });
                }
                Ok(())
            }
        }
    }

    /// Sum of the per-sample losses, writing the gradient of the mean loss to `dz` when given.
    ///
    /// Each chunk of samples sums its losses in order, and the chunk sums are added in chunk
    /// order, so the result does not depend on the number of threads.
    fn sum(self, n: usize, k: usize, z: &[f32], out: &[f32], targets: Targets<'_>, dz: Option<&mut [f32]>) -> f64 {
        let (len, count) = (chunk_len(n), chunk_count(n));
        let scale = match self {
            Loss::CrossEntropy => 1.0 / n as f32,
            Loss::BinaryCrossEntropy | Loss::MeanSquaredError => 1.0 / (n * k) as f32,
        };
        let mut sums = [0.0f64; MAX_CHUNKS];
        let chunk_sums = ChunksMut::new(&mut sums[..count], 1);
        let dzs = dz.map(|dz| ChunksMut::new(&mut dz[..n * k], len * k));
        let (z, out) = (&z[..n * k], &out[..n * k]);
        for_each_chunk(count, &|c| {
            let (sum, z, out) = (&mut chunk_sums.take(c)[0], chunk(z, len * k, c), chunk(out, len * k, c));
            let mut dz = dzs.as_ref().map(|d| d.take(c));
            for (s, (z, out)) in z.chunks_exact(k).zip(out.chunks_exact(k)).enumerate() {
                let t = targets.sample(c * len + s, k);
                let dz = dz.as_deref_mut().map(|dz| &mut dz[s * k..(s + 1) * k]);
                *sum += self.sample_loss(z, out, t, dz, scale);
            }
        });
        sums[..count].iter().sum()
    }

    /// The loss of one sample, writing `scale` times its gradient w.r.t. `z` to `dz` when given.
    #[inline]
    fn sample_loss(self, z: &[f32], out: &[f32], t: Target<'_>, dz: Option<&mut [f32]>, scale: f32) -> f64 {
        match self {
            Loss::CrossEntropy => {
                let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                let lse = max + z.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
                match t {
                    Target::Label(label) => {
                        if let Some(dz) = dz {
                            dz.iter_mut().zip(out).for_each(|(d, &p)| *d = p * scale);
                            dz[label] -= scale;
                        }
                        lse - z[label] as f64
                    }
                    Target::Dense(t) => {
                        if let Some(dz) = dz {
                            let mass = t.iter().sum::<f32>();
                            for ((d, &p), &t) in dz.iter_mut().zip(out).zip(t) {
                                *d = (p * mass - t) * scale;
                            }
                        }
                        z.iter().zip(t).map(|(&z, &t)| t as f64 * (lse - z as f64)).sum()
                    }
                }
            }
            Loss::BinaryCrossEntropy => {
                let (k, mut total, mut dz) = (z.len(), 0.0, dz);
                for (j, (&z, &p)) in z.iter().zip(out).enumerate() {
                    let t = self.target(t, j, k);
                    if let Some(dz) = dz.as_deref_mut() {
                        dz[j] = (p - t) * scale;
                    }
                    let (z, t) = (z as f64, t as f64);
                    total += z.max(0.0) - z * t + (-z.abs()).exp().ln_1p();
                }
                total / k as f64
            }
            Loss::MeanSquaredError => {
                let mut total = 0.0;
                let mut dz = dz;
                for (j, &z_j) in z.iter().enumerate() {
                    let t = self.target(t, j, z.len());
                    if let Some(dz) = dz.as_deref_mut() {
                        dz[j] = 2.0 * (z_j - t) * scale;
                    }
                    total += (z_j as f64 - t as f64).powi(2);
                }
                total / z.len() as f64
            }
        }
    }

    /// Target value of output `j` of `k` for the element-wise losses.
    #[inline(always)]
    fn target(self, t: Target<'_>, j: usize, k: usize) -> f32 {
        match t {
            Target::Dense(t) => t[j],
            Target::Label(label) if self == Loss::BinaryCrossEntropy && k == 1 => label as f32,
            Target::Label(label) => f32::from(u8::from(j == label)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{max_rel_error, random_vec};

    const LOSSES: [Loss; 3] = [Loss::CrossEntropy, Loss::BinaryCrossEntropy, Loss::MeanSquaredError];

    /// Dense targets of `n·k` values suiting `loss`: probability rows for cross-entropy, values
    /// in [0, 1] for binary cross-entropy, any values for the squared error.
    fn dense_targets(loss: Loss, n: usize, k: usize, seed: u64) -> Vec<f32> {
        let r = random_vec(n * k, seed);
        match loss {
            Loss::CrossEntropy => r
                .chunks(k)
                .flat_map(|row| {
                    let row: Vec<f32> = row.iter().map(|v| v + 1.0).collect();
                    let sum: f32 = row.iter().sum();
                    row.into_iter().map(move |v| v / sum)
                })
                .collect(),
            Loss::BinaryCrossEntropy => r.iter().map(|v| (v + 1.0) / 2.0).collect(),
            Loss::MeanSquaredError => r.iter().map(|v| 2.0 * v).collect(),
        }
    }

    /// The dense rows labels stand for.
    fn label_rows(loss: Loss, k: usize, labels: &[usize]) -> Vec<f64> {
        labels
            .iter()
            .flat_map(|&l| {
                (0..k).map(move |j| if loss == Loss::BinaryCrossEntropy && k == 1 { l } else { usize::from(j == l) })
            })
            .map(|v| v as f64)
            .collect()
    }

    /// The mean loss from PyTorch's definitions, directly in f64.
    fn reference(loss: Loss, n: usize, k: usize, z: &[f32], t: &[f64]) -> f64 {
        let z: Vec<f64> = z.iter().map(|&v| v as f64).collect();
        let total: f64 = match loss {
            Loss::CrossEntropy => z
                .chunks(k)
                .zip(t.chunks(k))
                .map(|(z, t)| {
                    let norm: f64 = z.iter().map(|v| v.exp()).sum();
                    -z.iter().zip(t).map(|(z, t)| t * (z.exp() / norm).ln()).sum::<f64>()
                })
                .sum(),
            Loss::BinaryCrossEntropy => z
                .iter()
                .zip(t)
                .map(|(z, t)| {
                    let s = 1.0 / (1.0 + (-z).exp());
                    -(t * s.ln() + (1.0 - t) * (1.0 - s).ln())
                })
                .sum(),
            Loss::MeanSquaredError => z.iter().zip(t).map(|(z, t)| (z - t).powi(2)).sum(),
        };
        match loss {
            Loss::CrossEntropy => total / n as f64,
            _ => total / (n * k) as f64,
        }
    }

    /// Outputs, mean loss and gradient of `loss` on `z`.
    fn evaluate(loss: Loss, n: usize, k: usize, z: &[f32], targets: Targets<'_>) -> (Vec<f32>, f32, Vec<f32>) {
        let mut out = vec![0.0; n * k];
        loss.output(n, k, z, &mut out);
        let mut dz = vec![f32::NAN; n * k];
        let value = loss.loss_and_grad(n, k, z, &out, targets, &mut dz);
        (out, value, dz)
    }

    /// The batches every loss is tested on: labels and dense targets, one and several outputs.
    fn cases(loss: Loss) -> Vec<(usize, usize, Vec<usize>, Vec<f32>)> {
        let mut cases = vec![(5, 4, vec![0, 3, 1, 3, 2], dense_targets(loss, 5, 4, 20))];
        if loss == Loss::BinaryCrossEntropy {
            cases.push((6, 1, vec![0, 1, 1, 0, 1, 0], dense_targets(loss, 6, 1, 21)));
        }
        cases.push((19, 3, (0..19).map(|i| i * 7 % 3).collect(), dense_targets(loss, 19, 3, 22)));
        cases
    }

    #[test]
    fn losses_match_their_definitions() {
        for loss in LOSSES {
            for (n, k, labels, dense) in cases(loss) {
                let z: Vec<f32> = random_vec(n * k, 3).iter().map(|v| 4.0 * v).collect();
                let dense64: Vec<f64> = dense.iter().map(|&v| v as f64).collect();
                for (targets, t) in
                    [(Targets::Labels(&labels), label_rows(loss, k, &labels)), (Targets::Dense(&dense), dense64)]
                {
                    let want = reference(loss, n, k, &z, &t);
                    let (out, value, _) = evaluate(loss, n, k, &z, targets);
                    let sum = loss.loss_sum(n, k, &z, &out, targets);
                    assert!(
                        (value as f64 - want).abs() <= 1e-6 * want.abs().max(1.0),
                        "{loss:?} {targets:?}: {value} vs {want}"
                    );
                    assert!((sum / n as f64 - want).abs() <= 1e-12 * want.abs().max(1.0), "{loss:?}: sum {sum}");
                }
            }
        }
    }

    #[test]
    fn a_weighted_loss_scales_the_loss_and_its_gradient() {
        for loss in LOSSES {
            let (n, k, labels, _) = cases(loss).remove(0);
            let z: Vec<f32> = random_vec(n * k, 7).iter().map(|v| 2.0 * v).collect();
            let (out, value, dz) = evaluate(loss, n, k, &z, Targets::Labels(&labels));
            let mut scaled = vec![f32::NAN; n * k];
            let weighted = loss.weighted_loss_and_grad(0.25, n, k, &z, &out, Targets::Labels(&labels), &mut scaled);
            assert_eq!(weighted, 0.25 * value, "{loss:?}");
            assert_eq!(scaled, dz.iter().map(|g| 0.25 * g).collect::<Vec<_>>(), "{loss:?}");
        }
    }

    #[test]
    fn outputs_are_softmax_sigmoid_or_identity() {
        let z = [-2.0f32, 0.0, 3.0, 1.0, 1.0, 1.0];
        let mut out = [0.0; 6];
        Loss::MeanSquaredError.output(2, 3, &z, &mut out);
        assert_eq!(out, z);
        Loss::BinaryCrossEntropy.output(2, 3, &z, &mut out);
        assert_eq!(out, z.map(sigmoid));
        Loss::CrossEntropy.output(2, 3, &z, &mut out);
        assert!((out[..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(out[3..], [1.0 / 3.0; 3]);
    }

    #[test]
    fn gradients_match_finite_differences() {
        for loss in LOSSES {
            for (n, k, labels, dense) in cases(loss) {
                for targets in [Targets::Labels(&labels), Targets::Dense(&dense)] {
                    let mut z: Vec<f32> = random_vec(n * k, 5).iter().map(|v| 3.0 * v).collect();
                    let (_, _, dz) = evaluate(loss, n, k, &z, targets);
                    let err = max_rel_error(&mut z, &dz, |z| {
                        let mut out = vec![0.0; n * k];
                        loss.output(n, k, z, &mut out);
                        loss.loss_sum(n, k, z, &out, targets) / n as f64
                    });
                    let kind = if matches!(targets, Targets::Labels(_)) { "labels" } else { "dense" };
                    println!("{loss:?}, {kind}, n = {n}, k = {k}: max relative error {err:e}");
                    assert!(err < 1e-2, "{loss:?}, {kind}, k = {k}: max relative error {err}");
                }
            }
        }
    }

    #[test]
    fn extreme_logits_give_finite_losses_and_gradients() {
        let z = [100.0f32, -100.0, -100.0, 100.0, 100.0, 100.0, -100.0, -100.0, -100.0];
        for loss in LOSSES {
            let labels = [1, 0, 2];
            let dense = dense_targets(loss, 3, 3, 8);
            for targets in [Targets::Labels(&labels), Targets::Dense(&dense)] {
                let (out, value, dz) = evaluate(loss, 3, 3, &z, targets);
                assert!(value.is_finite() && value > 0.0, "{loss:?} {targets:?}: loss {value}");
                assert!(dz.iter().all(|d| d.is_finite()), "{loss:?} {targets:?}: gradient {dz:?}");
                assert!(loss.loss_sum(3, 3, &z, &out, targets).is_finite());
            }
        }
        // A confident wrong answer costs the logit gap, not infinity.
        let (_, value, dz) = evaluate(Loss::CrossEntropy, 1, 2, &[100.0, -100.0], Targets::Labels(&[1]));
        assert_eq!((value, dz), (200.0, vec![1.0, -1.0]));
        let (_, value, dz) = evaluate(Loss::BinaryCrossEntropy, 1, 1, &[-100.0], Targets::Labels(&[1]));
        assert_eq!((value, dz), (100.0, vec![-1.0]));
    }

    #[test]
    fn the_loss_is_the_same_for_any_number_of_threads() {
        let (n, k) = (45, 7);
        let z = random_vec(n * k, 9);
        for loss in LOSSES {
            let dense = dense_targets(loss, n, k, 10);
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    let (out, value, dz) = evaluate(loss, n, k, &z, Targets::Dense(&dense));
                    (value.to_bits(), loss.loss_sum(n, k, &z, &out, Targets::Dense(&dense)).to_bits(), dz)
                })
            };
            assert_eq!(run(1), run(3), "{loss:?}");
        }
    }

    #[test]
    fn check_reports_each_bad_target() {
        use Loss::*;
        assert_eq!(CrossEntropy.check(3, 4, Targets::Labels(&[0, 3, 2])), Ok(()));
        assert_eq!(
            CrossEntropy.check(3, 4, Targets::Labels(&[0, 3])),
            Err(Error::LabelCount { samples: 3, labels: 2 })
        );
        assert_eq!(
            CrossEntropy.check(3, 4, Targets::Labels(&[0, 4, 9])),
            Err(Error::LabelOutOfRange { index: 1, label: 4, classes: 4 })
        );
        assert_eq!(BinaryCrossEntropy.check(2, 1, Targets::Labels(&[1, 0])), Ok(()));
        assert_eq!(
            BinaryCrossEntropy.check(2, 1, Targets::Labels(&[1, 2])),
            Err(Error::LabelOutOfRange { index: 1, label: 2, classes: 2 })
        );
        assert_eq!(
            MeanSquaredError.check(2, 3, Targets::Labels(&[3, 0])),
            Err(Error::LabelOutOfRange { index: 0, label: 3, classes: 3 })
        );
        let length = MeanSquaredError.check(2, 3, Targets::Dense(&[0.0; 5])).unwrap_err();
        assert_eq!(length, Error::TargetLength { samples: 2, outputs: 3, found: 5 });
        assert_eq!(length.to_string(), "5 target values for 2 samples of 3 outputs: expected 6");
        assert_eq!(MeanSquaredError.check(2, 3, Targets::Dense(&[-7.0, 0.0, 3.5, 1e30, 0.0, 0.0])), Ok(()));
        assert_eq!(CrossEntropy.check(1, 3, Targets::Dense(&[0.5, 0.0, 0.5])), Ok(()));
        assert_eq!(BinaryCrossEntropy.check(1, 3, Targets::Dense(&[0.0, 1.0, 0.25])), Ok(()));
        let invalid = |loss: Loss, t: &[f32]| match loss.check(2, 2, Targets::Dense(t)) {
            Err(Error::InvalidTarget { sample, output, reason }) => (sample, output, reason),
            other => panic!("{loss:?} {t:?}: {other:?}"),
        };
        for loss in LOSSES {
            assert_eq!(invalid(loss, &[0.0, 0.0, f32::NAN, 0.0]), (1, 0, "NaN is not a finite number".into()));
            assert_eq!(invalid(loss, &[0.0, f32::INFINITY, 0.0, 0.0]), (0, 1, "inf is not a finite number".into()));
        }
        let (sample, output, reason) = invalid(BinaryCrossEntropy, &[0.0, 1.0, 0.5, 1.5]);
        assert_eq!((sample, output), (1, 1));
        assert!(reason.contains("1.5 is outside [0, 1]"), "{reason}");
        let (sample, output, reason) = invalid(CrossEntropy, &[0.5, 0.5, -0.25, 1.25]);
        assert_eq!((sample, output), (1, 0));
        assert!(reason.contains("-0.25 is negative"), "{reason}");
        let message = BinaryCrossEntropy.check(2, 2, Targets::Dense(&[0.0, 1.0, 0.5, 1.5])).unwrap_err().to_string();
        assert!(message.starts_with("invalid target 1 of sample 1: 1.5 is outside [0, 1]"), "{message}");
    }

    #[test]
    fn classes_and_classification() {
        assert_eq!(Loss::CrossEntropy.classes(10), 10);
        assert_eq!(Loss::MeanSquaredError.classes(1), 1);
        assert_eq!(Loss::BinaryCrossEntropy.classes(1), 2);
        assert_eq!(Loss::BinaryCrossEntropy.classes(4), 4);
        assert_eq!(Loss::CrossEntropy.classify(&[0.1, 0.7, 0.2]), 1);
        assert_eq!(Loss::CrossEntropy.classify(&[0.4, 0.4, 0.2]), 0);
        assert_eq!(Loss::MeanSquaredError.classify(&[-3.0, 2.0]), 1);
        assert_eq!(Loss::BinaryCrossEntropy.classify(&[0.2, 0.9]), 1);
        assert_eq!(Loss::BinaryCrossEntropy.classify(&[0.51]), 1);
        assert_eq!(Loss::BinaryCrossEntropy.classify(&[0.5]), 0);
        assert_eq!(Loss::MeanSquaredError.classify(&[0.9]), 0);
    }

    #[test]
    fn an_empty_batch_has_zero_loss() {
        let mut dz = [];
        assert_eq!(Loss::CrossEntropy.loss_and_grad(0, 3, &[], &[], Targets::Labels(&[]), &mut dz), 0.0);
        assert_eq!(Loss::MeanSquaredError.loss_sum(0, 3, &[], &[], Targets::Dense(&[])), 0.0);
        assert_eq!(Loss::CrossEntropy.check(0, 3, Targets::Labels(&[])), Ok(()));
    }
}
