//! What the `#![no_std]` program of `nostd-digits/` must print: the `std` build's predictions
//! for the same test digits with the same model file, in the same text
//! (`nostd-digits/src/report.rs`, included here), written to `target/tmp/nostd-digits/std.txt`.
//! CI (`.ci/run`) builds and runs the program and compares its output with this file.

extern crate alloc;

use std::error::Error;
use std::path::Path;

use cnn::data::load_mnist;
use cnn::io::{load_weights, read_meta};
use cnn::{cnn, Model, Network};

#[path = "../nostd-digits/src/report.rs"]
mod report;

cnn! {
    /// The LeNet-5 of the `lenet5` example, its layers read from the committed model file.
    struct LeNet5 = "models/lenet5.safetensors"
}

#[test]
fn std_build_classifies_the_test_digits() -> Result<(), Box<dyn Error>> {
    let weights = Path::new("models/lenet5.safetensors");
    let mut model = LeNet5::new();
    load_weights(&mut model, weights)?;
    let meta = read_meta(weights)?;
    let (_, mut test) = load_mnist(Path::new("data/mnist"))?;
    for x in test.images.chunks_mut(LeNet5::INPUT_LEN) {
        meta.prepare(x, LeNet5::INPUT.d);
    }
    // The whole set as one batch, on the thread pool: the program classifies one digit at a
    // time on one thread.
    let predictions = model.predict(&test.images)?;
    let text = report::report(&predictions, &test.labels);
    // The accuracy the README gives for this model.
    assert!(text.contains("1968 of 2000 digits right (98.40 %)"), "{text}");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nostd-digits");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("std.txt"), text)?;
    Ok(())
}
