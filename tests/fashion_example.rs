//! The fashion example as a user runs it: without the data it says how to install it; with
//! files in the Fashion-MNIST format it trains, evaluates and writes its files.

#[path = "common/examples.rs"]
mod examples;

use std::process::Command;

use examples::{example, run_example, write_digits};

#[test]
fn without_the_files_it_prints_the_command_that_installs_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(example("fashion"))
        .args(["--data", dir.path().to_str().unwrap(), "--out", dir.path().join("out").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("apt-get install dataset-fashion-mnist"), "{stderr}");
    assert!(stderr.contains("train-images-idx3-ubyte"), "names the missing files: {stderr}");
    assert!(!dir.path().join("out").exists(), "nothing is written");
}

#[test]
fn it_trains_on_files_of_the_format_and_writes_its_outputs() {
    let dir = tempfile::tempdir().unwrap();
    // Digits stand in for clothes: the same IDX format, 28x28 grey, 10 classes.
    write_digits(dir.path(), 40, 20);
    let out = dir.path().join("out");
    let run = |extra: &[&str]| run_example("fashion", dir.path(), &out, extra);
    let first = run(&["--epochs", "1", "--batch-size", "16"]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains("epoch  1/1") && stdout.contains("test accuracy"), "{stdout}");
    for file in ["fashion.safetensors", "checkpoint.safetensors", "fashion_pytorch.py"] {
        assert!(out.join(file).exists(), "{file}");
    }
    let torch = std::fs::read_to_string(out.join("fashion_pytorch.py")).unwrap();
    assert!(torch.contains("torch.nn.BatchNorm2d(32") && torch.contains("torch.nn.Softmax(dim=1)"), "{torch}");
    // A second epoch continues from the checkpoint.
    let resumed = run(&["--epochs", "2", "--batch-size", "16", "--resume"]);
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(resumed.status.success() && stdout.contains("after epoch 1") && stdout.contains("epoch  2/2"), "{stdout}");
}
