//! The lenet5 example as a user runs it: a run that diverges stops with a message and a
//! non-zero exit, and leaves the files of the last good run as they were.

use std::path::{Path, PathBuf};
use std::process::Command;

use cnn::data::load_mnist;

/// Writes `count` images (of `rows` x `cols` pixels in [0, 1]) and their labels as the IDX
/// files `prefix-images-idx3-ubyte` and `prefix-labels-idx1-ubyte` in `dir`.
fn write_idx(dir: &Path, prefix: &str, images: &[f32], labels: &[usize], rows: usize, cols: usize) {
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

/// The example's binary, built by `cargo test` beside the tests (or built here when a
/// filtered run did not build it).
fn example() -> PathBuf {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let binary = deps.parent().unwrap().join("examples").join(format!("lenet5{}", std::env::consts::EXE_SUFFIX));
    if !binary.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--example", "lenet5", "--profile", "test"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "building the lenet5 example failed");
    }
    binary
}

fn contents(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_diverging_resumed_run_keeps_the_last_good_checkpoint_and_weights() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = load_mnist(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"))).unwrap();
    let len = train.shape.len();
    write_idx(dir.path(), "train", &train.images[..96 * len], &train.labels[..96], 28, 28);
    write_idx(dir.path(), "t10k", &test.images[..32 * len], &test.labels[..32], 28, 28);
    let out = dir.path().join("out");
    let run = |extra: &[&str]| {
        let mut args = vec!["--data", dir.path().to_str().unwrap(), "--out", out.to_str().unwrap(), "--threads", "1"];
        args.extend_from_slice(extra);
        Command::new(example()).args(&args).output().unwrap()
    };
    let good = run(&["--epochs", "1", "--batch-size", "16"]);
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    let (checkpoint, weights) = (out.join("checkpoint.safetensors"), out.join("lenet5.safetensors"));
    let (kept_checkpoint, kept_weights) = (contents(&checkpoint), contents(&weights));

    let bad = run(&["--resume", "--epochs", "3", "--batch-size", "16", "--lr", "1e6"]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success(), "a diverging run exited with success:\n{stderr}");
    assert!(stderr.contains("diverged in") && stderr.contains("nothing saved"), "{stderr}");
    assert_eq!(contents(&checkpoint), kept_checkpoint, "the good checkpoint was overwritten");
    assert_eq!(contents(&weights), kept_weights, "the good weights were overwritten");
    let names: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "temporary files left: {names:?}");

    // The same from scratch: nothing at all is written.
    let fresh = dir.path().join("fresh");
    let bad = Command::new(example())
        .args([
            "--data",
            dir.path().to_str().unwrap(),
            "--out",
            fresh.to_str().unwrap(),
            "--lr",
            "1e6",
            "--epochs",
            "3",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let written: Vec<_> = std::fs::read_dir(&fresh).unwrap().collect();
    assert!(written.is_empty(), "a diverged run wrote {written:?}");
}
