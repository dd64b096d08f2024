//! Mini-batches over a [`Dataset`]: shuffled per epoch, augmented and standardised in parallel,
//! gathered into buffers that are reused from batch to batch.

use rand::SeedableRng;
use rayon::prelude::*;

use super::{epoch_order, Dataset};
use crate::augment::Transform;
use crate::init::Rng;
use crate::{Error, Result};

/// What an epoch does with the samples left over when the batch size does not divide the set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LastBatch {
    /// They make a last, smaller batch.
    Keep,
    /// They are left out of the epoch (a different few each epoch, as the order changes), so
    /// that every batch has the same size.
    Drop,
}

impl LastBatch {
    /// Batches per epoch of `samples` samples in batches of `batch`.
    pub(super) fn batches(self, samples: usize, batch: usize) -> usize {
        match self {
            LastBatch::Keep => samples.div_ceil(batch),
            LastBatch::Drop => samples / batch,
        }
    }

    /// Samples per epoch of `samples` samples in batches of `batch`.
    pub(super) fn samples(self, samples: usize, batch: usize) -> usize {
        match self {
            LastBatch::Keep => samples,
            LastBatch::Drop => samples / batch * batch,
        }
    }
}

/// Batches over a [`Dataset`], epoch after epoch: a lending iterator whose batches borrow its
/// buffers, so that a training loop allocates nothing after the first batch.
///
/// Epoch `e` visits the samples in the order [`epoch_order`] gives for `(seed, e)` (or in
/// their stored order without shuffling). Augmentation draws each sample's randomness from
/// `(seed, epoch, the sample's index in the set)`, never from its place in the batch or the
/// thread that handles it, so the same seed gives the same batches on any number of threads and
/// with any batch size.
///
/// ```
/// use cnn::augment::Shift;
/// use cnn::data::{Batches, Dataset, LastBatch};
/// use cnn::Shape;
///
/// let set = Dataset {
///     images: (0..10 * 4).map(|v| v as f32 / 40.0).collect(),
///     labels: (0..10).map(|i| i % 2).collect(),
///     shape: Shape::volume(2, 2, 1),
///     classes: 2,
///     source: "ten squares".into(),
/// };
/// let shift = Shift { max: 1 };
/// let mut batches = Batches::new(&set, 4, 7)?.last(LastBatch::Drop).augment(&shift).standardise(&[0.5], &[0.25])?;
/// for epoch in 0..3 {
///     batches.start_epoch(epoch)?;
///     let mut seen = 0;
///     while let Some(batch) = batches.next_batch()? {
///         assert_eq!((batch.images.len(), batch.labels.len()), (4 * 4, 4));
///         seen += batch.labels.len();
///         // model.train_step(&mut opt, batch.images, batch.labels)?;
///     }
///     assert_eq!(seen, 8); // two whole batches; the last two samples wait for another epoch
/// }
/// # Ok::<(), cnn::Error>(())
/// ```
pub struct Batches<'a> {
    set: &'a Dataset,
    batch: usize,
    seed: u64,
    shuffle: bool,
    last: LastBatch,
    augment: Option<&'a dyn Transform>,
    /// Per channel: `(mean, 1 / std)`.
    standardise: Vec<(f32, f32)>,
    epoch: u64,
    order: Vec<usize>,
    next: usize,
    images: Vec<f32>,
    labels: Vec<usize>,
    scratch: Vec<f32>,
}

/// One batch: the images side by side (NCHW), their labels and their indices in the set.
#[derive(Debug)]
pub struct Batch<'b> {
    /// The images, augmented and standardised as asked.
    pub images: &'b [f32],
    /// One class per image.
    pub labels: &'b [usize],
    /// Where each image is in the set.
    pub indices: &'b [usize],
}

impl<'a> Batches<'a> {
    /// Batches of `batch` samples of `set` (all of them when the set is smaller), shuffled from
    /// `seed`, the last one kept even when smaller, neither augmented nor standardised; epoch 0
    /// is started.
    ///
    /// Fails when `batch` is 0 or the set's images do not hold one image of its shape per label.
    pub fn new(set: &'a Dataset, batch: usize, seed: u64) -> Result<Self> {
        if batch == 0 {
            return Err(Error::InvalidArgument { name: "batch", reason: "must be at least 1".into() });
        }
        let per = set.whole_images()?;
        let batch = batch.min(set.len().max(1));
        let mut images = Vec::new();
        images.try_reserve_exact(batch * per).map_err(|e| Error::InvalidArgument {
            name: "batch",
            reason: format!("{batch} images of {} do not fit in memory: {e}", set.shape),
        })?;
        let mut batches = Batches {
            set,
            batch,
            seed,
            shuffle: true,
            last: LastBatch::Keep,
            augment: None,
            standardise: Vec::new(),
            epoch: 0,
            order: Vec::new(),
            next: 0,
            images,
            labels: Vec::with_capacity(batch),
            scratch: Vec::new(),
        };
        batches.start_epoch(0)?;
        Ok(batches)
    }

    /// Visits the samples in their stored order (`false`) or shuffled per epoch (`true`, the
    /// default); restarts the current epoch.
    pub fn shuffle(mut self, shuffle: bool) -> Result<Self> {
        self.shuffle = shuffle;
        self.start_epoch(self.epoch)?;
        Ok(self)
    }

    /// What to do with the samples left over at the end of an epoch.
    pub fn last(mut self, last: LastBatch) -> Self {
        self.last = last;
        self
    }

    /// Applies `transform` to every image of every batch, in parallel.
    pub fn augment(mut self, transform: &'a dyn Transform) -> Self {
        self.augment = Some(transform);
        self
    }

    /// Standardises every image after augmentation, `(x - mean) / std`, with one `mean` and
    /// `std` for all channels or one per channel (as torchvision's `Normalize`).
    ///
    /// Fails when the lengths fit neither, or a `std` is not positive and finite or a `mean`
    /// not finite.
    pub fn standardise(mut self, mean: &[f32], std: &[f32]) -> Result<Self> {
        self.standardise = standardisation(mean, std, self.set.shape.d)?;
        Ok(self)
    }

    /// Starts epoch `epoch` (any, in any order): its sample order is drawn again.
    pub fn start_epoch(&mut self, epoch: u64) -> Result<()> {
        self.epoch = epoch;
        self.next = 0;
        if self.shuffle {
            epoch_order(self.set.len(), self.seed, epoch, &mut self.order)
        } else {
            self.order.clear();
            self.order.extend(0..self.set.len());
            Ok(())
        }
    }

    /// Batches per epoch.
    pub fn len(&self) -> usize {
        self.last.batches(self.set.len(), self.batch)
    }

    /// Whether an epoch has no batch (an empty set).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Samples per epoch.
    pub fn samples(&self) -> usize {
        self.last.samples(self.set.len(), self.batch)
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The next batch of the epoch, or `None` at its end. Fails when the augmentation refuses
    /// its parameters.
    pub fn next_batch(&mut self) -> Result<Option<Batch<'_>>> {
        let left = self.set.len() - self.next;
        let take = left.min(self.batch);
        if take == 0 || (take < self.batch && self.last == LastBatch::Drop) {
            self.next = self.set.len();
            return Ok(None);
        }
        let indices = &self.order[self.next..self.next + take];
        self.next += take;
        let per = self.set.shape.len();
        self.images.clear();
        self.labels.clear();
        for &i in indices {
            self.images.extend_from_slice(&self.set.images[i * per..(i + 1) * per]);
            self.labels.push(self.set.labels[i]);
        }
        if let Some(transform) = self.augment {
            if self.scratch.len() < self.images.len() {
                self.scratch.resize(self.images.len(), 0.0);
            }
            let (shape, seed, epoch) = (self.set.shape, self.seed, self.epoch);
            let scratch = &mut self.scratch[..self.images.len()];
            self.images.par_chunks_mut(per).zip(scratch.par_chunks_mut(per)).zip(indices.par_iter()).try_for_each(
                |((image, scratch), &i)| transform.apply(image, shape, &mut sample_rng(seed, epoch, i), scratch),
            )?;
        }
        if !self.standardise.is_empty() {
            let plane = self.set.shape.w * self.set.shape.h;
            let standardise = &self.standardise;
            self.images.par_chunks_mut(per).for_each(|image| {
                for (channel, &(mean, inv)) in image.chunks_mut(plane.max(1)).zip(standardise) {
                    channel.iter_mut().for_each(|v| *v = (*v - mean) * inv);
                }
            });
        }
        Ok(Some(Batch { images: &self.images, labels: &self.labels, indices }))
    }
}

/// Per channel of images of `depth` channels, `(mean, 1 / std)` from one `mean` and `std` for
/// all channels or one per channel; `Err` when the lengths fit neither, or a `std` is not
/// positive and finite or a `mean` not finite.
pub(super) fn standardisation(mean: &[f32], std: &[f32], depth: usize) -> Result<Vec<(f32, f32)>> {
    if mean.len() != std.len() || !(mean.len() == 1 || mean.len() == depth) {
        return Err(Error::InvalidArgument {
            name: "standardise",
            reason: format!(
                "{} means and {} standard deviations for images of {depth} channels: give 1 or {depth} of each",
                mean.len(),
                std.len()
            ),
        });
    }
    if let Some((m, s)) = mean.iter().zip(std).find(|(m, s)| !(m.is_finite() && s.is_finite() && **s > 0.0)) {
        return Err(Error::InvalidArgument {
            name: "standardise",
            reason: format!("mean {m} and standard deviation {s}: the mean must be finite, the deviation positive"),
        });
    }
    let pick = |c: usize| if mean.len() == 1 { 0 } else { c };
    Ok((0..depth).map(|c| (mean[pick(c)], 1.0 / std[pick(c)])).collect())
}

/// The generator of sample `index`'s augmentation in `epoch`, shared with the streamed batches
/// of an image folder.
pub(super) fn sample_rng(seed: u64, epoch: u64, index: usize) -> Rng {
    let mix = |v: u64, k: u64| (v ^ k).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
    Rng::seed_from_u64(mix(mix(seed, epoch.wrapping_add(0x5851_f42d_4c95_7f2d)), index as u64))
}

impl Dataset {
    /// Values per image, when `images` holds exactly one image of `shape` per label.
    fn whole_images(&self) -> Result<usize> {
        let per = self.values_per_sample().filter(|&per| Some(self.images.len()) == per.checked_mul(self.len()));
        per.ok_or_else(|| {
            self.error(format!("{} values for {} images of {}", self.images.len(), self.len(), self.shape))
        })
    }

    /// Splits the set in two at random (from `seed`): `len - validation` samples to train on
    /// and `validation` held out, each part in the set's order. The split is the same for the
    /// same seed and set size.
    ///
    /// Fails when `validation` is larger than the set.
    pub fn split(&self, validation: usize, seed: u64) -> Result<(Dataset, Dataset)> {
        if validation > self.len() {
            return Err(Error::InvalidArgument {
                name: "validation",
                reason: format!("{validation} samples held out of a set of {}", self.len()),
            });
        }
        let per = self.whole_images()?;
        let mut order = Vec::new();
        // Epoch `u64::MAX`: an order of its own, not one of the training epochs'.
        epoch_order(self.len(), seed, u64::MAX, &mut order)?;
        let mut held = vec![false; self.len()];
        order[..validation].iter().for_each(|&i| held[i] = true);
        let part = |keep: bool| {
            let mut part = self.clone_empty();
            let count = held.iter().filter(|&&h| h == keep).count();
            part.images.reserve_exact(count * per);
            part.labels.reserve_exact(count);
            for (i, _) in held.iter().enumerate().filter(|(_, &h)| h == keep) {
                part.images.extend_from_slice(&self.images[i * per..(i + 1) * per]);
                part.labels.push(self.labels[i]);
            }
            part
        };
        Ok((part(false), part(true)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::{GaussianNoise, Shift};
    use crate::Shape;

    /// `n` images of 2x2 in 3 channels whose values encode the sample index, labels `i % 3`.
    fn set(n: usize) -> Dataset {
        let shape = Shape::volume(2, 2, 3);
        Dataset {
            images: (0..n * 12).map(|v| (v / 12) as f32 + (v % 12) as f32 / 100.0).collect(),
            labels: (0..n).map(|i| i % 3).collect(),
            shape,
            classes: 3,
            source: "test set".into(),
        }
    }

    fn epoch(batches: &mut Batches<'_>, e: u64) -> Vec<(Vec<f32>, Vec<usize>, Vec<usize>)> {
        batches.start_epoch(e).unwrap();
        let mut out = Vec::new();
        while let Some(b) = batches.next_batch().unwrap() {
            out.push((b.images.to_vec(), b.labels.to_vec(), b.indices.to_vec()));
        }
        out
    }

    #[test]
    fn an_epoch_visits_every_sample_once_with_its_own_image_and_label() {
        let data = set(23);
        let mut batches = Batches::new(&data, 5, 1).unwrap();
        assert_eq!((batches.len(), batches.samples()), (5, 23));
        let got = epoch(&mut batches, 0);
        let sizes: Vec<usize> = got.iter().map(|b| b.1.len()).collect();
        assert_eq!(sizes, [5, 5, 5, 5, 3]);
        let mut seen: Vec<usize> = got.iter().flat_map(|b| b.2.clone()).collect();
        let order = seen.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..23).collect::<Vec<_>>());
        assert_ne!(order, seen, "shuffled");
        for (images, labels, indices) in &got {
            for (k, &i) in indices.iter().enumerate() {
                assert_eq!(labels[k], i % 3);
                assert_eq!(&images[k * 12..(k + 1) * 12], data.sample(i).unwrap().0);
            }
        }
    }

    #[test]
    fn the_order_depends_on_seed_and_epoch_only() {
        let data = set(40);
        let (mut a, mut b) = (Batches::new(&data, 8, 3).unwrap(), Batches::new(&data, 8, 3).unwrap());
        let (e0, e1) = (epoch(&mut a, 0), epoch(&mut a, 1));
        assert_ne!(e0, e1);
        // Epochs can be visited in any order, and again.
        assert_eq!(epoch(&mut b, 1), e1);
        assert_eq!(epoch(&mut b, 0), e0);
        assert_ne!(epoch(&mut Batches::new(&data, 8, 4).unwrap(), 0), e0);
        let plain = epoch(&mut Batches::new(&data, 8, 3).unwrap().shuffle(false).unwrap(), 5);
        assert_eq!(plain.iter().flat_map(|b| b.2.clone()).collect::<Vec<_>>(), (0..40).collect::<Vec<_>>());
    }

    #[test]
    fn a_dropped_last_batch_leaves_only_whole_batches() {
        let data = set(23);
        let mut batches = Batches::new(&data, 5, 1).unwrap().last(LastBatch::Drop);
        assert_eq!((batches.len(), batches.samples()), (4, 20));
        let got = epoch(&mut batches, 2);
        assert!(got.len() == 4 && got.iter().all(|b| b.1.len() == 5));
        assert!(batches.next_batch().unwrap().is_none(), "the epoch stays ended");
        // A set smaller than one batch: the batch shrinks to the set.
        let small = set(3);
        let mut one = Batches::new(&small, 10, 1).unwrap().last(LastBatch::Drop);
        assert_eq!(epoch(&mut one, 0).len(), 1);
        let empty = set(0);
        let mut none = Batches::new(&empty, 4, 1).unwrap();
        assert!(none.is_empty() && none.next_batch().unwrap().is_none());
    }

    /// Each sample's augmentation comes from (seed, epoch, index): the same image whatever the
    /// batch size and number of threads, another in another epoch.
    #[test]
    fn augmentation_is_keyed_on_the_sample_not_the_batch() {
        let data = set(30);
        let noise = GaussianNoise { std: 0.1 };
        let by_index = |batch: usize, threads: usize, e: u64| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut batches = Batches::new(&data, batch, 9).unwrap().augment(&noise);
                let mut images = vec![Vec::new(); 30];
                for (imgs, _, indices) in epoch(&mut batches, e) {
                    for (k, &i) in indices.iter().enumerate() {
                        images[i] = imgs[k * 12..(k + 1) * 12].to_vec();
                    }
                }
                images
            })
        };
        let reference = by_index(7, 1, 0);
        assert_eq!(by_index(4, 3, 0), reference);
        assert_eq!(by_index(30, 2, 0), reference);
        assert_ne!(by_index(7, 1, 1), reference);
        let changed = reference.iter().enumerate().all(|(i, img)| img.as_slice() != data.sample(i).unwrap().0);
        assert!(changed, "every image got noise");
    }

    #[test]
    fn standardisation_is_per_channel_after_augmentation() {
        let data = set(4);
        let shift = Shift { max: 0 };
        let mut batches = Batches::new(&data, 4, 1)
            .unwrap()
            .shuffle(false)
            .unwrap()
            .augment(&shift)
            .standardise(&[1.0, 2.0, 3.0], &[0.5, 1.0, 2.0])
            .unwrap();
        let b = batches.next_batch().unwrap().unwrap();
        for (k, image) in b.images.chunks(12).enumerate() {
            for (v, (&got, &raw)) in image.iter().zip(data.sample(k).unwrap().0).enumerate() {
                let (mean, std) = [(1.0, 0.5), (2.0, 1.0), (3.0, 2.0)][v / 4];
                assert_eq!(got, (raw - mean) * (1.0 / std));
            }
        }
        let one = Batches::new(&data, 2, 1).unwrap().standardise(&[0.5], &[0.25]);
        assert!(one.is_ok());
        for (mean, std) in
            [(&[0.0, 0.0][..], &[1.0, 1.0][..]), (&[0.0], &[0.0]), (&[f32::NAN], &[1.0]), (&[0.0], &[-1.0])]
        {
            assert!(Batches::new(&data, 2, 1).unwrap().standardise(mean, std).is_err(), "{mean:?} {std:?}");
        }
    }

    #[test]
    fn bad_sizes_are_errors() {
        let data = set(5);
        assert!(Batches::new(&data, 0, 1).is_err());
        let mut broken = set(5);
        broken.images.pop();
        assert!(Batches::new(&broken, 2, 1).is_err());
        assert!(broken.split(1, 1).is_err());
        assert!(data.split(6, 1).is_err());
    }

    #[test]
    fn a_split_holds_out_a_seeded_part_and_keeps_the_rest() {
        let data = set(50);
        let (train, held) = data.split(12, 5).unwrap();
        assert_eq!((train.len(), held.len()), (38, 12));
        let index = |image: &[f32]| image[0] as usize;
        let mut all: Vec<usize> = (0..train.len())
            .map(|i| train.sample(i).unwrap())
            .chain((0..held.len()).map(|i| held.sample(i).unwrap()))
            .map(|(img, label)| {
                assert_eq!(label, index(img) % 3);
                index(img)
            })
            .collect();
        let held_ids: Vec<usize> = all[38..].to_vec();
        assert!(held_ids.windows(2).all(|w| w[0] < w[1]), "in the set's order");
        all.sort_unstable();
        assert_eq!(all, (0..50).collect::<Vec<_>>());
        assert_eq!(data.split(12, 5).unwrap().1, held);
        assert_ne!(data.split(12, 6).unwrap().1, held);
        assert_eq!(data.split(0, 5).unwrap().0, data);
    }
}
