//! The data-set parsers: IDX images and labels (gzip or not) and CIFAR-10 batches.

use std::path::Path;

use crate::mutate;
use crate::rng::{fnv, Rng};
use crate::runner::{Failure, Oracle, Outcome, Target};
use crate::work::Work;

/// The signature of an error: its message without the scratch path.
pub(crate) fn signature(error: &cnn::Error, dir: &Path) -> String {
    error.to_string().replace(&dir.display().to_string(), "")
}

/// Mutates gzip inputs through [`mutate::gzip_aware`], others byte by byte.
fn mutate_data(rng: &mut Rng, parent: &[u8], other: &[u8]) -> Vec<u8> {
    if mutate::is_gzip(parent) && !rng.one_in(8) {
        return mutate::gzip_aware(rng, parent, other);
    }
    let mut out = parent.to_vec();
    mutate::bytes(rng, &mut out, other);
    if rng.one_in(16) {
        out = mutate::gzip(&out);
    }
    out
}

/// `cnn::data::read_idx_images_with`, under [`crate::LOAD_LIMIT`].
pub struct IdxImages {
    work: Work,
}

impl IdxImages {
    /// A target with its scratch directory.
    pub fn new() -> Self {
        IdxImages { work: Work::new("idx-images") }
    }
}

impl Default for IdxImages {
    fn default() -> Self {
        Self::new()
    }
}

impl Target for IdxImages {
    fn name(&self) -> &'static str {
        "idx-images"
    }

    fn mutate(&self, rng: &mut Rng, parent: &[u8], other: &[u8]) -> Vec<u8> {
        mutate_data(rng, parent, other)
    }

    fn run(&mut self, _config: &str, input: &[u8]) -> Outcome {
        let path = self.work.write("images-idx3-ubyte", input);
        match cnn::data::read_idx_images_with(&path, crate::LOAD_LIMIT) {
            Ok(images) => {
                let expected = images.count.checked_mul(images.rows).and_then(|n| n.checked_mul(images.cols));
                if expected != Some(images.pixels.len()) {
                    return Err(Failure::new(
                        Oracle::WrongResult,
                        format!(
                            "{} pixels for {} images of {}x{}",
                            images.pixels.len(),
                            images.count,
                            images.rows,
                            images.cols
                        ),
                    ));
                }
                Ok("ok".into())
            }
            Err(e) => Ok(signature(&e, self.work.dir())),
        }
    }
}

/// `cnn::data::read_idx_labels_with`, under [`crate::LOAD_LIMIT`].
pub struct IdxLabels {
    work: Work,
}

impl IdxLabels {
    /// A target with its scratch directory.
    pub fn new() -> Self {
        IdxLabels { work: Work::new("idx-labels") }
    }
}

impl Default for IdxLabels {
    fn default() -> Self {
        Self::new()
    }
}

impl Target for IdxLabels {
    fn name(&self) -> &'static str {
        "idx-labels"
    }

    fn mutate(&self, rng: &mut Rng, parent: &[u8], other: &[u8]) -> Vec<u8> {
        mutate_data(rng, parent, other)
    }

    fn run(&mut self, _config: &str, input: &[u8]) -> Outcome {
        let path = self.work.write("labels-idx1-ubyte", input);
        match cnn::data::read_idx_labels_with(&path, crate::LOAD_LIMIT) {
            Ok(_) => Ok("ok".into()),
            Err(e) => Ok(signature(&e, self.work.dir())),
        }
    }
}

/// The files `load_cifar10` reads.
const CIFAR_FILES: [&str; 6] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
    "test_batch.bin",
];

/// Bytes of one CIFAR-10 record: a label and 3x32x32 pixels.
pub const CIFAR_RECORD: usize = 1 + 3 * 32 * 32;

/// `cnn::data::load_cifar10` on a directory whose files are a valid batch of two records but
/// for one, the case, chosen by the case's hash, as is whether the files sit in the nested
/// `cifar-10-batches-bin` directory.
pub struct Cifar {
    work: Work,
    valid: Vec<u8>,
}

impl Cifar {
    /// A target with its scratch directories filled with valid batches.
    pub fn new() -> Self {
        let work = Work::new("cifar");
        let valid = crate::corpus::cifar_batch(2);
        for dir in ["flat", "nested/cifar-10-batches-bin"] {
            std::fs::create_dir_all(work.dir().join(dir)).expect("scratch directory");
            for name in CIFAR_FILES {
                work.write(&format!("{dir}/{name}"), &valid);
            }
        }
        Cifar { work, valid }
    }
}

impl Default for Cifar {
    fn default() -> Self {
        Self::new()
    }
}

impl Target for Cifar {
    fn name(&self) -> &'static str {
        "cifar"
    }

    fn mutate(&self, rng: &mut Rng, parent: &[u8], other: &[u8]) -> Vec<u8> {
        mutate_data(rng, parent, other)
    }

    fn run(&mut self, _config: &str, input: &[u8]) -> Outcome {
        let hash = fnv(input);
        let nested = hash & 0x100 != 0;
        let (dir, inner) = if nested { ("nested", "nested/cifar-10-batches-bin") } else { ("flat", "flat") };
        let file = format!("{inner}/{}", CIFAR_FILES[(hash % 6) as usize]);
        let _restore = Restore { work: &self.work, original: self.valid.clone(), file: file.clone() };
        self.work.write(&file, input);
        match cnn::data::load_cifar10_with(&self.work.dir().join(dir), crate::LOAD_LIMIT) {
            Ok((train, test)) => {
                for set in [&train, &test] {
                    if set.images.len() != set.labels.len() * (CIFAR_RECORD - 1) {
                        return Err(Failure::new(
                            Oracle::WrongResult,
                            format!("{} values for {} images", set.images.len(), set.labels.len()),
                        ));
                    }
                }
                Ok("ok".into())
            }
            Err(e) => Ok(signature(&e, self.work.dir())),
        }
    }
}

/// Writes the valid batch back over the case's file, also when the load panics.
struct Restore<'a> {
    work: &'a Work,
    file: String,
    original: Vec<u8>,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        self.work.write(&self.file, &self.original);
    }
}
