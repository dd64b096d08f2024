//! Reading the PyTorch fixtures of the parity tests.
#![allow(dead_code)]

use std::path::PathBuf;

use cnn::Network;
use safetensors::SafeTensors;

/// The path of fixture `name` in `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Tensor `name` of fixture `file` as f32 values (labels are stored as i64).
pub fn tensor(file: &str, name: &str) -> Vec<f32> {
    let bytes = std::fs::read(fixture(file)).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let view = tensors.tensor(name).unwrap_or_else(|e| panic!("{file}: {name}: {e}"));
    match view.dtype() {
        safetensors::Dtype::I64 => {
            view.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f32).collect()
        }
        _ => view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect(),
    }
}

/// The largest absolute difference between `a` and `b`, which have the same length.
pub fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

/// Checks that fixture `file` holds `text`, the `PYTORCH` constant the fixture script built its
/// model from; with `CNN_WRITE_FIXTURE=1` set, writes it there first.
pub fn check_pytorch_text(file: &str, text: &str) {
    if std::env::var_os("CNN_WRITE_FIXTURE").is_some() {
        std::fs::write(fixture(file), format!("{text}\n")).unwrap();
    }
    let written = std::fs::read_to_string(fixture(file)).unwrap();
    assert_eq!(text, written.trim_end(), "regenerate tests/fixtures/{file} and the fixtures");
}

/// The largest difference between `model`'s gradient and PyTorch's in fixture `file`, tensor by
/// tensor, relative to each tensor's largest value (at least 1e-3).
pub fn gradient_difference<N: Network>(model: &N, file: &str) -> f32 {
    let mut worst = 0.0f32;
    for t in N::TENSORS.iter().filter(|t| t.kind.is_param()) {
        let torch = tensor(file, t.name);
        let ours = &model.grads()[t.offset..t.offset + t.len()];
        let scale = torch.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        worst = worst.max(largest_difference(ours, &torch) / scale);
    }
    worst
}
