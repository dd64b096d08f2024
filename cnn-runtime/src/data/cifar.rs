//! CIFAR-10's binary version: records of one label byte and 3,072 pixel bytes (the red, green
//! and blue 32x32 planes, which is NCHW already).

use std::path::{Path, PathBuf};

use super::{file_error, grow, Dataset, Input};
use crate::limit::Budget;
use crate::{Limit, Result, Shape};

const SIDE: usize = 32;
const PIXELS: usize = 3 * SIDE * SIDE;
const RECORD: usize = 1 + PIXELS;

/// Appends the records of `path` to `set`, taking the decoded bytes and the `f32` images and
/// labels made from them from `budget`.
fn read_batch(path: &Path, set: &mut Dataset, budget: &mut Budget) -> Result<()> {
    let mut input = Input::open(path)?;
    let left = budget.left();
    let bytes = input.read_up_to(budget, left, "the decoded data")?;
    if !input.at_end()? {
        return Err(budget.exceeded(path, format!("the file decodes to more than the {left} bytes left")));
    }
    if bytes.is_empty() || bytes.len() % RECORD != 0 {
        return Err(file_error(
            path,
            format!(
                "{} bytes is not a whole number of {RECORD}-byte records (1 label byte + 3x32x32 pixels)",
                bytes.len()
            ),
        ));
    }
    if let Some((i, label)) = bytes.iter().step_by(RECORD).enumerate().find(|(_, &l)| l >= 10) {
        return Err(file_error(path, format!("label {label} of record {i} is out of range 0..=9")));
    }
    let records = bytes.len() / RECORD;
    grow(path, budget, &mut set.images, records * PIXELS, "the f32 images")?;
    grow(path, budget, &mut set.labels, records, "the labels")?;
    for record in bytes.chunks_exact(RECORD) {
        set.labels.push(record[0] as usize);
        set.images.extend(record[1..].iter().map(|&p| p as f32 / 255.0));
    }
    Ok(())
}

/// Reads CIFAR-10 from `dir` (or from `dir/cifar-10-batches-bin`) within [`Limit::DEFAULT`];
/// see [`load_cifar10_with`].
pub fn load_cifar10(dir: &Path) -> Result<(Dataset, Dataset)> {
    load_cifar10_with(dir, Limit::DEFAULT)
}

/// Reads CIFAR-10 from `dir` (or from `dir/cifar-10-batches-bin`): the training set from
/// `data_batch_1.bin` … `data_batch_5.bin`, the test set from `test_batch.bin`, each
/// gzip-compressed or not.
///
/// `limit` covers the whole call: the decoded bytes of the six files plus the `f32` images
/// (4 bytes a pixel) and `usize` labels made from them. A file that decodes to more than is left
/// of it, like any malformed file, is an [`Error::File`](crate::Error::File) naming the file (and
/// the limit, when it is the cause), given as soon as the excess is decoded.
pub fn load_cifar10_with(dir: &Path, limit: Limit) -> Result<(Dataset, Dataset)> {
    let mut budget = Budget::new(limit);
    let nested = dir.join("cifar-10-batches-bin");
    let dir = if nested.is_dir() { nested } else { dir.to_path_buf() };
    let empty = |source: PathBuf| Dataset {
        images: Vec::new(),
        labels: Vec::new(),
        shape: Shape::volume(SIDE, SIDE, 3),
        classes: 10,
        source,
    };
    let mut train = empty(dir.join("data_batch_1.bin"));
    for b in 1..=5 {
        read_batch(&dir.join(format!("data_batch_{b}.bin")), &mut train, &mut budget)?;
    }
    let mut test = empty(dir.join("test_batch.bin"));
    read_batch(&dir.join("test_batch.bin"), &mut test, &mut budget)?;
    Ok((train, test))
}
