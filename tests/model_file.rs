//! Models that describe themselves: a model type declared from the committed LeNet-5 file, the
//! preprocessing and class names stored with the weights, and `predict` applying them.

#[path = "common/examples.rs"]
mod examples;

use std::path::Path;
use std::process::Command;

use cnn::data::load_mnist;
use cnn::io::{load_weights, read_meta, save_model, save_weights, Channels, Meta};
use cnn::{cnn, Model, Network};

cnn! { struct Digits = "models/lenet5.safetensors" }

cnn! {
    struct Written <
        input(28x28x1)
        conv(5x5, 6, pad=2) relu pool(2)
        conv(5x5, 16) relu pool(2)
        fc(120) relu fc(84) relu fc(10) softmax
    >
}

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/lenet5.safetensors");

#[test]
fn the_model_from_the_file_is_the_model_it_was_saved_for() {
    assert_eq!(Digits::DSL, Written::DSL);
    assert_eq!(Digits::TENSORS, Written::TENSORS);
    assert_eq!(Digits::GRAPH, Written::GRAPH);
}

#[test]
fn the_committed_model_classifies_the_test_digits_with_its_own_preprocessing() {
    let mut model = Digits::new();
    load_weights(&mut model, Path::new(COMMITTED)).unwrap();
    let meta = read_meta(Path::new(COMMITTED)).unwrap();
    assert_eq!(meta.channels, Some(Channels::Grey));
    assert_eq!((meta.mean.as_slice(), meta.std.as_slice()), (&[0.1307f32][..], &[0.3081f32][..]));
    assert_eq!(meta.classes, (0..10).map(|d| d.to_string()).collect::<Vec<_>>());
    let (_, test) = load_mnist(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"))).unwrap();
    let mut accuracy = |prepare: bool| {
        let mut x = test.images.clone();
        if prepare {
            for sample in x.chunks_mut(784) {
                meta.prepare(sample, 1);
            }
        }
        let predictions = model.predict(&x).unwrap();
        cnn::accuracy(&predictions, &test.labels).unwrap()
    };
    let (prepared, raw) = (accuracy(true), accuracy(false));
    assert!(prepared > 0.97, "accuracy {prepared} with the file's preprocessing");
    assert!(raw < prepared, "raw pixels did as well ({raw} against {prepared})");
}

#[test]
fn metadata_is_checked_against_the_model_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let model = Written::new();
    let bad = [
        Meta { classes: vec!["a".into(); 9], ..Meta::default() },
        Meta { channels: Some(Channels::Rgb), ..Meta::default() },
        Meta { mean: vec![0.5; 2], std: vec![0.2; 2], ..Meta::default() },
        Meta { mean: vec![0.5], std: vec![0.0], ..Meta::default() },
        Meta { range: Some([1.0, 1.0]), ..Meta::default() },
    ];
    for meta in bad {
        let error = save_model(&model, &meta, &path).unwrap_err().to_string();
        assert!(error.contains("m.safetensors") && error.contains("cannot save"), "{error}");
        assert!(!path.exists(), "{meta:?} was written");
    }
    // Without metadata the file reads back as an empty description.
    save_weights(&model, &path).unwrap();
    assert_eq!(read_meta(&path).unwrap(), Meta::default());
}

#[test]
fn predict_applies_the_files_preprocessing_and_names_the_classes() {
    let dir = tempfile::tempdir().unwrap();
    let (_, test) = load_mnist(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"))).unwrap();
    // The first test digit as a PNG, and a copy of the model whose classes have other names.
    let pixels: Vec<u8> = test.images[..784].iter().map(|&v| (v * 255.0).round() as u8).collect();
    let png = dir.path().join("digit.png");
    image::GrayImage::from_raw(28, 28, pixels).unwrap().save(&png).unwrap();
    let mut model = Digits::new();
    load_weights(&mut model, Path::new(COMMITTED)).unwrap();
    let mut meta = read_meta(Path::new(COMMITTED)).unwrap();
    meta.classes =
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"].map(String::from).to_vec();
    let renamed = dir.path().join("renamed.safetensors");
    save_model(&model, &meta, &renamed).unwrap();
    let output = Command::new(examples::example("predict"))
        .args(["--weights", renamed.to_str().unwrap(), png.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let mut x: [f32; 784] = test.images[..784].try_into().unwrap();
    meta.prepare(&mut x, 1);
    let expected = &meta.classes[model.classify(&x)];
    assert!(stdout.contains(&format!("digit.png: {expected} (")), "expected {expected}:\n{stdout}");
}
