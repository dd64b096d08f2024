//! The lenet5 example as a user runs it: a run that diverges stops with a message and a
//! non-zero exit, and leaves the files of the last good run as they were.

#[path = "common/examples.rs"]
mod examples;

use std::path::Path;
use std::process::Command;

use examples::{example, run_example, write_digits};

fn contents(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_diverging_resumed_run_keeps_the_last_good_checkpoint_and_weights() {
    let dir = tempfile::tempdir().unwrap();
    write_digits(dir.path(), 96, 32);
    let out = dir.path().join("out");
    let run = |extra: &[&str]| run_example("lenet5", dir.path(), &out, extra);
    let good = run(&["--epochs", "1", "--batch-size", "16"]);
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    let (checkpoint, weights) = (out.join("checkpoint.safetensors"), out.join("lenet5.safetensors"));
    let (kept_checkpoint, kept_weights) = (contents(&checkpoint), contents(&weights));
    // The pictures, the feature visualisation's included, are PNG files.
    for name in ["curves", "filters", "misclassified", "maps-0", "maps-2", "patches-conv1", "patches-conv2"] {
        assert!(contents(&out.join(format!("{name}.png"))).starts_with(b"\x89PNG"), "{name}.png");
    }

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
    let bad = Command::new(example("lenet5"))
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
