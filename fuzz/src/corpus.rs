//! The seed corpus, generated: `cnn-fuzz --write-corpus DIR` writes it, so that it follows the
//! formats as the crate writes them instead of being kept as hand-made binaries.

use std::fs;
use std::io;
use std::path::Path;

use cnn::io::{save_checkpoint, save_weights, Progress};
use cnn::Model;

use crate::models::{batch, labels, Normed, Small};
use crate::mutate::{gzip, Safetensors};
use crate::targets::files::Opt;
use crate::targets::CIFAR_RECORD;

/// An IDX image file of `count` images of `rows` x `cols`.
pub fn idx_images(count: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut out = [0x0803u32, count, rows, cols].iter().flat_map(|v| v.to_be_bytes()).collect::<Vec<u8>>();
    out.extend((0..count * rows * cols).map(|i| (i * 37 % 256) as u8));
    out
}

/// An IDX label file of `count` labels.
pub fn idx_labels(count: u32) -> Vec<u8> {
    let mut out = [0x0801u32, count].iter().flat_map(|v| v.to_be_bytes()).collect::<Vec<u8>>();
    out.extend((0..count).map(|i| (i % 10) as u8));
    out
}

/// A CIFAR-10 batch of `records` records.
pub fn cifar_batch(records: usize) -> Vec<u8> {
    (0..records)
        .flat_map(|r| (0..CIFAR_RECORD).map(move |i| if i == 0 { (r % 10) as u8 } else { ((i * 13 + r) % 256) as u8 }))
        .collect()
}

/// A file's safetensors header rewritten with its keys in order: the crate writes its metadata
/// from a hash map, whose order changes from run to run.
fn canonical(bytes: &[u8]) -> Vec<u8> {
    Safetensors::parse(bytes).expect("the crate writes valid safetensors").to_bytes()
}

/// Reads back what a save function wrote into `dir/name`.
fn saved(dir: &Path, name: &str, save: impl FnOnce(&Path) -> cnn::Result<()>) -> io::Result<Vec<u8>> {
    let path = dir.join(name);
    save(&path).map_err(io::Error::other)?;
    let bytes = fs::read(&path)?;
    fs::remove_file(&path)?;
    Ok(canonical(&bytes))
}

/// `model` after two steps of `opt` on the standard batch, and the optimizer.
fn trained<M: Model>(mut model: M, kind: &str) -> (M, Opt) {
    let mut opt = Opt::of(kind);
    let (x, y) = (batch(4, M::INPUT_LEN), labels(4, M::OUTPUT_LEN));
    for _ in 0..2 {
        model.train_step(opt.as_dyn(), &x, &y).expect("a valid batch");
    }
    (model, opt)
}

/// The checkpoint of a configuration such as `small-adam`.
fn checkpoint(dir: &Path, config: &str) -> io::Result<Vec<u8>> {
    let (model, kind) = config.split_once('-').expect("MODEL-KIND");
    let progress = Progress { epoch: 1, step: 2, seed: 7 };
    let name = format!("{config}.tmp");
    if model == "normed" {
        let (m, opt) = trained(Normed::with_seed(1), kind);
        saved(dir, &name, |p| save_checkpoint(&m, opt.as_shared(), progress, p))
    } else {
        let (m, opt) = trained(Small::with_seed(1), kind);
        saved(dir, &name, |p| save_checkpoint(&m, opt.as_shared(), progress, p))
    }
}

/// The corpus: `(target, file name, bytes)`. A file name's part before its first dot is the
/// configuration the target runs it with.
pub fn generate(scratch: &Path) -> io::Result<Vec<(&'static str, String, Vec<u8>)>> {
    let mut files: Vec<(&'static str, String, Vec<u8>)> = Vec::new();
    let mut add = |target, name: &str, bytes| files.push((target, name.to_string(), bytes));
    let (images, labels_file) = (idx_images(2, 4, 3), idx_labels(3));
    add("idx-images", "tiny.idx", images.clone());
    add("idx-images", "tiny.idx.gz", gzip(&images));
    add("idx-images", "empty.idx", idx_images(0, 28, 28));
    add("idx-labels", "tiny.idx", labels_file.clone());
    add("idx-labels", "tiny.idx.gz", gzip(&labels_file));
    add("idx-labels", "empty.idx", idx_labels(0));
    add("cifar", "two.bin", cifar_batch(2));
    add("cifar", "two.bin.gz", gzip(&cifar_batch(2)));
    for (name, bytes) in crate::targets::folder::seeds() {
        add("image-folder", &name, bytes);
    }
    let (small, _) = trained(Small::with_seed(1), "sgdm");
    let (normed, normed_opt) = trained(Normed::with_seed(1), "adam");
    add("weights", "small.safetensors", saved(scratch, "w1", |p| save_weights(&small, p))?);
    add("weights", "normed.safetensors", saved(scratch, "w2", |p| save_weights(&normed, p))?);
    let progress = Progress { epoch: 1, step: 2, seed: 7 };
    let from_checkpoint = saved(scratch, "w3", |p| save_checkpoint(&normed, normed_opt.as_shared(), progress, p))?;
    add("weights", "normed.checkpoint.safetensors", from_checkpoint);
    // As PyTorch's `save_file` writes it: no metadata.
    let mut torch = Safetensors::parse(&saved(scratch, "w4", |p| save_weights(&small, p))?).expect("valid");
    torch.metadata = None;
    add("weights", "small.torch.safetensors", torch.to_bytes());
    for config in ["small-sgd", "small-sgdm", "small-adam", "normed-sgdm", "normed-adam", "normed-adamw"] {
        add("checkpoint", &format!("{config}.safetensors"), checkpoint(scratch, config)?);
    }
    // Programs of the API target: a model (or augmentation, or classify) and an operation each.
    for op in 0..14u8 {
        add("api", &format!("api.op{op:02}"), vec![op % 4, op, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    }
    add("api", "api.augment", vec![4, 0, 1, 2, 3, 4, 5, 6, 7]);
    add("api", "api.classify", vec![5, 0, 1, 2]);
    Ok(files)
}

/// Writes the corpus under `dir`, one directory per target, replacing what is there.
pub fn write(dir: &Path) -> io::Result<usize> {
    let files = generate(dir)?;
    for (target, name, bytes) in &files {
        let sub = dir.join(target);
        fs::create_dir_all(&sub)?;
        fs::write(sub.join(name), bytes)?;
    }
    Ok(files.len())
}
