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

    /// Image `i` and its label.
    pub fn sample(&self, i: usize) -> (&[f32], usize) {
        let n = self.shape.len();
        (&self.images[i * n..(i + 1) * n], self.labels[i])
    }

    /// The first `n` samples (all of them if there are fewer).
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            images: self.images[..n * self.shape.len()].to_vec(),
            labels: self.labels[..n].to_vec(),
            ..self.clone_empty()
        }
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
        if self.shape.len() != input.len() || (!input.flat && self.shape != input) {
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
        flate2::read::GzDecoder::new(raw.as_slice())
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
