//! CIFAR-10's binary version: records of one label byte and 3,072 pixel bytes (the red, green
//! and blue 32x32 planes, which is NCHW already).

use std::path::{Path, PathBuf};

use super::{file_error, read_bytes, Dataset};
use crate::{Result, Shape};

const SIDE: usize = 32;
const RECORD: usize = 1 + 3 * SIDE * SIDE;

fn read_batch(path: &Path, set: &mut Dataset) -> Result<()> {
    let bytes = read_bytes(path)?;
    if bytes.is_empty() || bytes.len() % RECORD != 0 {
        return Err(file_error(
            path,
            format!(
                "{} bytes is not a whole number of {RECORD}-byte records (1 label byte + 3x32x32 pixels)",
                bytes.len()
            ),
        ));
    }
    for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
        let label = record[0] as usize;
        if label >= 10 {
            return Err(file_error(path, format!("label {label} of record {i} is out of range 0..=9")));
        }
        set.labels.push(label);
        set.images.extend(record[1..].iter().map(|&p| p as f32 / 255.0));
    }
    Ok(())
}

/// Reads CIFAR-10 from `dir` (or from `dir/cifar-10-batches-bin`): the training set from
/// `data_batch_1.bin` … `data_batch_5.bin`, the test set from `test_batch.bin`.
pub fn load_cifar10(dir: &Path) -> Result<(Dataset, Dataset)> {
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
        read_batch(&dir.join(format!("data_batch_{b}.bin")), &mut train)?;
    }
    let mut test = empty(dir.join("test_batch.bin"));
    read_batch(&dir.join("test_batch.bin"), &mut test)?;
    Ok((train, test))
}
