//! Loads never allocate more than their limit: the smallest limit under which a load succeeds
//! covers every byte it has allocated at once.

mod counting;

use std::path::Path;
use std::sync::atomic::Ordering;

use cnn::io::{load_checkpoint_with, load_weights_with, save_checkpoint, save_weights, Options, Progress};
use cnn::{cnn, Adam, Limit, Model, Sgd};
use counting::{LIVE, PEAK};

cnn! {
    struct Regular <
        input(12x12x1)
        conv(3x3, 4, pad=1, bias=false) batchnorm relu pool(2)
        fc(16) relu dropout(0.3) fc(4) softmax
    >
}

/// The most bytes `load` had allocated at once beyond what was allocated before it.
fn peak_of(load: impl FnOnce() -> cnn::Result<()>) -> (cnn::Result<()>, usize) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let result = load();
    (result, PEAK.load(Ordering::Relaxed) - before)
}

/// The smallest limit under which `load` succeeds, and the most it allocated under it.
fn smallest_limit(load: &mut dyn FnMut(Options) -> cnn::Result<()>) -> (u64, usize) {
    let limited = |bytes| Options { limit: Limit::bytes(bytes), ..Options::default() };
    let (mut low, mut high) = (0u64, 1 << 30);
    while low < high {
        let mid = (low + high) / 2;
        if load(limited(mid)).is_ok() {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    let (result, peak) = peak_of(|| load(limited(low)));
    result.unwrap();
    (low, peak)
}

/// One test, so that no other test allocates while the counter runs.
#[test]
fn a_load_allocates_no_more_than_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (weights, checkpoint) = (dir.path().join("w.safetensors"), dir.path().join("c.safetensors"));
    let mut model = Regular::with_seed(1);
    let mut adam = Adam::new(0.01).unwrap();
    let x: Vec<f32> = (0..8 * 144).map(|i| (i % 17) as f32 / 17.0).collect();
    model.train_step(&mut adam, &x, &[0, 1, 2, 3, 0, 1, 2, 3]).unwrap();
    save_weights(&model, &weights).unwrap();
    save_checkpoint(&model, &adam, Progress { epoch: 1, step: 1, seed: 1 }, &checkpoint).unwrap();
    let size = |path: &Path| std::fs::metadata(path).unwrap().len();

    let (limit, peak) = smallest_limit(&mut |options| load_weights_with(&mut model, &weights, options));
    assert!(peak as u64 <= limit, "loading weights allocated {peak} bytes under a limit of {limit}");
    // What is counted is of the order of what is allocated: the file, its header, the values.
    assert!(limit < 4 * size(&weights), "weights of {} bytes need a limit of {limit}", size(&weights));

    // Into an optimizer that holds state already, which is kept until the load succeeds.
    let mut opt = Adam::new(0.01).unwrap();
    model.train_step(&mut opt, &x, &[0, 1, 2, 3, 0, 1, 2, 3]).unwrap();
    let (limit, peak) =
        smallest_limit(&mut |options| load_checkpoint_with(&mut model, &mut opt, &checkpoint, options).map(|_| ()));
    assert!(peak as u64 <= limit, "loading a checkpoint allocated {peak} bytes under a limit of {limit}");
    assert!(limit < 6 * size(&checkpoint), "a checkpoint of {} bytes needs a limit of {limit}", size(&checkpoint));
    let mut sgd = Sgd::new(0.01, 0.9).unwrap();
    let sgd_path = dir.path().join("sgd.safetensors");
    model.train_step(&mut sgd, &x, &[0, 1, 2, 3, 0, 1, 2, 3]).unwrap();
    save_checkpoint(&model, &sgd, Progress { epoch: 1, step: 1, seed: 1 }, &sgd_path).unwrap();
    let (limit, peak) =
        smallest_limit(&mut |options| load_checkpoint_with(&mut model, &mut sgd, &sgd_path, options).map(|_| ()));
    assert!(peak as u64 <= limit, "loading an Sgd checkpoint allocated {peak} bytes under a limit of {limit}");
}
