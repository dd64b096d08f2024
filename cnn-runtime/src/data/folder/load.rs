//! Reading a whole folder: into memory as a [`Dataset`], or through once for its statistics.

use rayon::prelude::*;

use super::{ChannelStats, ImageFolder, OnError, Skipped};
use crate::data::{file_error, grow, Dataset};
use crate::limit::Budget;
use crate::{Error, Limit, Result};

/// Images decoded between two checks for an error, so that under [`OnError::Fail`] a load
/// stops soon after a bad image and always reports the first one in index order.
const BLOCK: usize = 64;

/// Running per-channel moments: count, mean and sum of squared deviations, merged with Chan's
/// formula so that many images add up without cancellation.
#[derive(Clone, Copy, Debug, Default)]
struct Moments {
    count: f64,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn of(values: &[f32]) -> Moments {
        let count = values.len() as f64;
        let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / count.max(1.0);
        let m2 = values.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum();
        Moments { count, mean, m2 }
    }

    fn merge(self, other: Moments) -> Moments {
        let count = self.count + other.count;
        if count == 0.0 {
            return self;
        }
        let delta = other.mean - self.mean;
        Moments {
            count,
            mean: self.mean + delta * other.count / count,
            m2: self.m2 + other.m2 + delta * delta * self.count * other.count / count,
        }
    }
}

impl ImageFolder {
    /// Reads every image into memory, decoding in parallel (on rayon's threads), as a
    /// [`Dataset`] that can feed [`Batches`](crate::data::Batches) or `evaluate`; its `classes`
    /// counts every class, empty ones included, and its `source` is the folder. Under
    /// [`OnError::Skip`] the images that cannot be read are left out (with their labels, so the
    /// set's indices then differ from the folder's) and returned; under [`OnError::Fail`] the
    /// first one, in index order, is the error.
    ///
    /// The images and labels are counted against `limit` before any image is decoded: a folder
    /// that would pass it is refused at once. Each thread also holds the image it decodes (up
    /// to [`max_pixels`](Self::max_pixels) pixels), which the limit does not count.
    pub fn load(&self, limit: Limit, on_error: OnError) -> Result<(Dataset, Vec<Skipped>)> {
        let root = self.root();
        let per = self.shape().len();
        let mut budget = Budget::new(limit);
        let mut images: Vec<f32> = Vec::new();
        let mut labels: Vec<usize> = Vec::new();
        let values = self.len().checked_mul(per).ok_or_else(|| file_error(root, "too many values to count"))?;
        budget.check(root, (values as u64).saturating_mul(4).saturating_add(self.len() as u64 * 8), "the images")?;
        grow(root, &mut budget, &mut images, values, "the f32 images")?;
        grow(root, &mut budget, &mut labels, self.len(), "the labels")?;
        images.resize(values, 0.0);
        let mut skipped = Vec::new();
        // `kept` images are in place at the front of `images`; the rest are decoded block by
        // block into their own places, then moved down over the skipped ones.
        let mut kept = 0;
        for (b, block) in images.chunks_mut(BLOCK * per).enumerate() {
            let first = b * BLOCK;
            let errors: Vec<Option<Error>> =
                block.par_chunks_mut(per).enumerate().map(|(k, out)| self.read_image(first + k, out).err()).collect();
            for (k, error) in errors.into_iter().enumerate() {
                match (error, on_error) {
                    (Some(e), OnError::Fail) => return Err(e),
                    (Some(e), OnError::Skip) => skipped.push(Skipped::new(first + k, e)),
                    (None, _) => {
                        labels.push(self.label(first + k));
                        kept += 1;
                    }
                }
            }
        }
        let mut to = 0;
        let mut skip = skipped.iter().map(|s| s.index).peekable();
        for from in 0..self.len() {
            if skip.next_if_eq(&from).is_some() {
                continue;
            }
            if to != from {
                images.copy_within(from * per..(from + 1) * per, to * per);
            }
            to += 1;
        }
        debug_assert_eq!(to, kept);
        images.truncate(kept * per);
        let set =
            Dataset { images, labels, shape: self.shape(), classes: self.classes().len(), source: root.to_path_buf() };
        Ok((set, skipped))
    }

    /// Reads every image once, in parallel, and returns each channel's mean and standard
    /// deviation over all their pixels, as the loaders produce them (resized, before
    /// augmentation and standardisation): the numbers to give
    /// [`FolderBatches::standardise`](super::FolderBatches::standardise).
    ///
    /// Memory stays bounded whatever the folder's size: each thread holds one image at a time,
    /// and the moments are added up image by image (in `f64`, merged in index order, so the
    /// result does not depend on the number of threads). Under [`OnError::Fail`] the first image,
    /// in index order, that cannot be read is the error; under [`OnError::Skip`] it is left out
    /// and reported. Fails too when no image could be read.
    pub fn channel_stats(&self, on_error: OnError) -> Result<ChannelStats> {
        let shape = self.shape();
        let plane = shape.w * shape.h;
        let mut total = vec![Moments::default(); shape.d];
        let mut skipped = Vec::new();
        let mut images = 0;
        for first in (0..self.len()).step_by(BLOCK) {
            let block: Vec<Result<Vec<Moments>>> = (first..(first + BLOCK).min(self.len()))
                .into_par_iter()
                .map_init(
                    || vec![0.0f32; shape.len()],
                    |image, i| {
                        self.read_image(i, image)?;
                        Ok(image.chunks_exact(plane).map(Moments::of).collect())
                    },
                )
                .collect();
            for (k, moments) in block.into_iter().enumerate() {
                match (moments, on_error) {
                    (Ok(moments), _) => {
                        total.iter_mut().zip(moments).for_each(|(t, m)| *t = t.merge(m));
                        images += 1;
                    }
                    (Err(e), OnError::Fail) => return Err(e),
                    (Err(e), OnError::Skip) => skipped.push(Skipped::new(first + k, e)),
                }
            }
        }
        if images == 0 {
            return Err(file_error(self.root(), format!("none of its {} images could be read", self.len())));
        }
        Ok(ChannelStats {
            mean: total.iter().map(|m| m.mean as f32).collect(),
            std: total.iter().map(|m| (m.m2 / m.count).sqrt() as f32).collect(),
            images,
            skipped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_merge_as_if_computed_at_once() {
        let values: Vec<f32> = (0..1000).map(|i| 0.5 + ((i * 37) % 101) as f32 / 1000.0).collect();
        let whole = Moments::of(&values);
        let parts = values.chunks(77).map(Moments::of).fold(Moments::default(), Moments::merge);
        assert!((whole.mean - parts.mean).abs() < 1e-12 && (whole.m2 - parts.m2).abs() < 1e-9);
        assert_eq!(Moments::default().merge(Moments::default()).count, 0.0);
    }
}
