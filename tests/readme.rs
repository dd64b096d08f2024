//! The README stays true: its tables of the course's models are the ones the macro computes.

#[path = "../examples/zoo/models.rs"]
mod models;

use cnn::Network;
use models::{AlexNet32, LeNet5, Mlp, Perceptron, ResNet8};

#[test]
fn the_readme_shows_each_models_summary() {
    let readme = include_str!("../README.md");
    let summaries = [
        ("Perceptron", Perceptron::SUMMARY),
        ("Mlp", Mlp::SUMMARY),
        ("LeNet5", LeNet5::SUMMARY),
        ("AlexNet32", AlexNet32::SUMMARY),
        ("ResNet8", ResNet8::SUMMARY),
    ];
    for (name, summary) in summaries {
        assert!(readme.contains(summary), "the README lacks {name}'s summary:\n{summary}");
    }
}

/// The features that set the oldest compiler the crates build with: a marker found in the
/// sources and the Rust version that made the feature stable. AVX-512 target features and
/// intrinsics came in 1.89; add a row when code starts using something newer.
const FEATURES: &[(&str, &str, (u32, u32))] =
    &[("cnn-runtime/src/kernels/gemm.rs", "target_feature(enable = \"avx512f", (1, 89))];

fn version(text: &str) -> (u32, u32) {
    let mut parts = text.trim().split('.').map(|p| p.parse::<u32>().expect("a version number"));
    (parts.next().expect("a major version"), parts.next().unwrap_or(0))
}

/// `rust-version` in Cargo.toml (which cargo enforces) is what the code needs, and the README
/// says the same.
#[test]
fn the_minimum_rust_version_is_what_the_code_needs_and_what_the_readme_says() {
    let manifest = include_str!("../Cargo.toml");
    let declared = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("rust-version in the workspace manifest");
    let root = env!("CARGO_MANIFEST_DIR");
    let needed = FEATURES
        .iter()
        .filter(|(file, marker, _)| {
            std::fs::read_to_string(format!("{root}/{file}")).is_ok_and(|source| source.contains(marker))
        })
        .map(|(_, _, v)| *v)
        .max()
        .expect("a feature with a known version");
    assert_eq!(version(declared), needed, "rust-version {declared} differs from what the code needs, {needed:?}");
    let readme = include_str!("../README.md");
    assert!(
        readme.contains(&format!("Rust toolchain ({declared} or newer")),
        "the README names another minimum than {declared}"
    );
}
