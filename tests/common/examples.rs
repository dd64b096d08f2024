//! Running the examples as a user does, on IDX files the tests write.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cnn::data::load_mnist;

/// Writes `count` images (of `rows` x `cols` pixels in [0, 1]) and their labels as the IDX
/// files `prefix-images-idx3-ubyte` and `prefix-labels-idx1-ubyte` in `dir`.
pub fn write_idx(dir: &Path, prefix: &str, images: &[f32], labels: &[usize], rows: usize, cols: usize) {
    let mut bytes = Vec::new();
    for v in [0x0803u32, labels.len() as u32, rows as u32, cols as u32] {
        bytes.extend_from_slice(&v.to_be_bytes());
    }
    bytes.extend(images.iter().map(|&p| (p * 255.0).round() as u8));
    std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), bytes).unwrap();
    let mut bytes = Vec::new();
    for v in [0x0801u32, labels.len() as u32] {
        bytes.extend_from_slice(&v.to_be_bytes());
    }
    bytes.extend(labels.iter().map(|&l| l as u8));
    std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), bytes).unwrap();
}

/// Example `name`'s binary, built by `cargo test` beside the tests (or built here when a
/// filtered run did not build it).
pub fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let binary = deps.parent().unwrap().join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !binary.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--example", name, "--profile", "test"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "building the {name} example failed");
    }
    binary
}

/// The first `train` and `test` of the embedded MNIST digits, as the four IDX files of a data set
/// in `dir`.
pub fn write_digits(dir: &Path, train: usize, test: usize) {
    let (train_set, test_set) = load_mnist(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"))).unwrap();
    let len = train_set.shape.len();
    write_idx(dir, "train", &train_set.images[..train * len], &train_set.labels[..train], 28, 28);
    write_idx(dir, "t10k", &test_set.images[..test * len], &test_set.labels[..test], 28, 28);
}

/// Runs example `name` on the data in `data`, writing to `out`, on one thread, with `extra`
/// arguments.
pub fn run_example(name: &str, data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["--data", data.to_str().unwrap(), "--out", out.to_str().unwrap(), "--threads", "1"];
    args.extend_from_slice(extra);
    Command::new(example(name)).args(&args).output().unwrap()
}
