//! The committed LeNet-5 (`models/lenet5.safetensors`) and the digits of `data/mnist`,
//! prepared as the model's file says.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use cnn::data::{load_mnist, Dataset};
use cnn::io::{load_weights, read_meta, Meta};
use cnn::Network;

/// The committed model file.
pub fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/lenet5.safetensors")
}

/// `model` with the committed weights, and the file's `Meta`.
pub fn load<M: Network>(model: &mut M) -> Meta {
    load_weights(model, &committed()).unwrap();
    read_meta(&committed()).unwrap()
}

/// The training and test digits, each prepared with `meta` (range, mean, standard deviation).
pub fn digits(meta: &Meta) -> (Dataset, Dataset) {
    let (mut train, mut test) = load_mnist(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist")).unwrap();
    for set in [&mut train, &mut test] {
        set.images.chunks_mut(784).for_each(|sample| meta.prepare(sample, 1));
    }
    (train, test)
}
