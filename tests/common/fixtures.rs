//! Reading the PyTorch fixtures of the parity tests.
#![allow(dead_code)]

use std::path::PathBuf;

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
