//! Data sets: MNIST and Fashion-MNIST (IDX files, gzip-compressed or not) and CIFAR-10 (binary
//! version), read into memory as `f32` images in NCHW order, scaled to [0, 1].
//!
//! Every malformed file is an [`Error::File`](crate::Error::File) naming the file and what is
//! wrong with it. No buffer is sized from a header before the file's real length confirms it.

mod cifar;
mod idx;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

pub use cifar::load_cifar10;
pub use idx::{load_mnist, read_idx_images, read_idx_labels, IdxImages};

use crate::{Error, Result, Shape};

/// Largest file (after decompression) the loaders accept: 4 GiB.
pub const MAX_FILE_BYTES: u64 = 4 << 30;

/// Labelled images held in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// All images, sample after sample, each `shape.len()` values in NCHW order, in [0, 1].
    pub images: Vec<f32>,
    /// One class index per image.
    pub labels: Vec<usize>,
    /// The shape of one image.
    pub shape: Shape,
    /// Number of classes.
    pub classes: usize,
    /// Where the images came from, for messages.
    pub source: PathBuf,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no sample.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image `i` and its label, or `None` when there is no sample `i` (or its image lies past
    /// the end of `images`).
    pub fn sample(&self, i: usize) -> Option<(&[f32], usize)> {
        let n = self.values_per_sample()?;
        let start = i.checked_mul(n)?;
        Some((self.images.get(start..start.checked_add(n)?)?, *self.labels.get(i)?))
    }

    /// The first `n` samples (all of them if there are fewer).
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        let values = self.values_per_sample().map_or(usize::MAX, |v| v.saturating_mul(n)).min(self.images.len());
        Dataset { images: self.images[..values].to_vec(), labels: self.labels[..n].to_vec(), ..self.clone_empty() }
    }

    /// Values per image; `None` when `shape` holds more than `usize` counts (its fields are
    /// public, so nothing else stops that).
    fn values_per_sample(&self) -> Option<usize> {
        self.shape.w.checked_mul(self.shape.h)?.checked_mul(self.shape.d)
    }

    fn clone_empty(&self) -> Dataset {
        Dataset {
            images: Vec::new(),
            labels: Vec::new(),
            shape: self.shape,
            classes: self.classes,
            source: self.source.clone(),
        }
    }

    /// Checks that the images fit a model's input and its classes fit the model's outputs.
    pub fn check_fits(&self, input: Shape, outputs: usize) -> Result<()> {
        if self.values_per_sample() != Some(input.len()) || (!input.flat && self.shape != input) {
            return Err(self.error(format!("images are {}, the model takes {input}", self.shape)));
        }
        if self.classes > outputs {
            return Err(self.error(format!("{} classes, the model has {outputs} outputs", self.classes)));
        }
        Ok(())
    }

    fn error(&self, reason: String) -> Error {
        Error::File { path: self.source.clone(), reason }
    }
}

/// The order in which to visit `len` samples in epoch `epoch`: a permutation drawn from
/// `(seed, epoch)` alone, written into `order` (reused from epoch to epoch). Resuming training
/// at an epoch therefore needs only the seed.
///
/// `order` ends up holding `len` indices, as much memory as the labels of a data set of `len`
/// samples; nothing else is allocated and no arithmetic can overflow. Like any growth of a
/// `Vec`, a `len` whose indices memory cannot hold panics (past `isize::MAX` bytes) or aborts
/// (allocation failure): pass the length of a data set that is in memory.
pub fn epoch_order(len: usize, seed: u64, epoch: u64, order: &mut Vec<usize>) {
    use rand::{RngExt as _, SeedableRng};
    let mut rng = crate::init::Rng::seed_from_u64(seed ^ epoch.wrapping_add(1).wrapping_mul(0xd6e8_feb8_6659_fd93));
    order.clear();
    order.extend(0..len);
    for i in (1..len).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
}

/// The error for `path`.
pub(crate) fn file_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::File { path: path.to_path_buf(), reason: reason.into() }
}

/// The bytes of `path`, decompressed when they are gzip, at most [`MAX_FILE_BYTES`].
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| file_error(path, format!("cannot open: {e}")))?;
    let mut raw = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut raw).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(raw.as_slice())
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| file_error(path, format!("corrupt gzip data: {e}")))?;
        raw = out;
    }
    if raw.len() as u64 > MAX_FILE_BYTES {
        return Err(file_error(path, format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(images: Vec<f32>, labels: Vec<usize>) -> Dataset {
        Dataset { images, labels, shape: Shape::volume(2, 1, 1), classes: 3, source: PathBuf::from("s") }
    }

    #[test]
    fn a_sample_out_of_range_is_none() {
        let s = set(vec![0.0, 0.1, 0.2, 0.3], vec![2, 1]);
        assert_eq!(s.sample(1), Some((&[0.2, 0.3][..], 1)));
        assert_eq!(s.sample(2), None);
        assert_eq!(s.sample(usize::MAX), None);
        // Fields are public: a set whose images run short has no sample there either.
        let short = set(vec![0.0, 0.1, 0.2], vec![2, 1]);
        assert_eq!(short.sample(1), None);
        assert_eq!(short.take(5).images, [0.0, 0.1, 0.2]);
        let huge = Dataset { shape: Shape::volume(usize::MAX, 2, 1), ..s.clone() };
        assert_eq!(huge.sample(1), None);
        assert_eq!(huge.take(1).images.len(), 4);
    }

    #[test]
    fn epoch_orders_of_no_and_one_sample() {
        let mut order = vec![9, 9];
        epoch_order(0, 1, 2, &mut order);
        assert!(order.is_empty());
        epoch_order(1, 1, 2, &mut order);
        assert_eq!(order, [0]);
    }
}
