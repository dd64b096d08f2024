//! Weights and checkpoints: round trips, PyTorch-style files, every malformed file, and
//! resuming training from a checkpoint bit for bit.

mod common;

use std::collections::HashMap;
use std::path::Path;

use cnn::data::epoch_order;
use cnn::io::{
    load_checkpoint, load_checkpoint_with, load_weights, load_weights_with, save_checkpoint, save_checkpoint_with,
    save_weights, save_weights_with, Options, Progress,
};
use cnn::{cnn, Adam, AdamW, Error, Limit, Model, Network, Optimizer, Sgd};
use common::{lines, Lcg};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

cnn! {
    struct Small <
        input(12x12x1)
        conv(3x3, 4, pad=1) relu pool(2)
        fc(16) relu fc(4) softmax
    >
}

cnn! {
    /// Batch normalisation and dropout: running statistics and the dropout generator are part
    /// of what a checkpoint must restore.
    struct Regular <
        input(12x12x1)
        conv(3x3, 4, pad=1, bias=false) batchnorm relu pool(2)
        fc(16) relu dropout(0.3) fc(4) softmax
    >
}

cnn! {
    struct Other < input(12x12x1) conv(3x3, 4, pad=1) relu pool(2) fc(8) relu fc(4) softmax >
}

fn reason(err: Error) -> String {
    match err {
        Error::File { reason, .. } => reason,
        other => panic!("expected a file error, got {other:?}"),
    }
}

/// Writes a safetensors file of the given f32 tensors, as PyTorch's `save_file` would.
fn write_tensors(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)], dtype: Dtype) {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| match dtype {
            Dtype::F64 => v.iter().flat_map(|x| (*x as f64).to_le_bytes()).collect(),
            _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        })
        .collect();
    let views: Vec<(&str, TensorView<'_>)> =
        tensors.iter().zip(&bytes).map(|((n, s, _), b)| (*n, TensorView::new(dtype, s.clone(), b).unwrap())).collect();
    std::fs::write(path, safetensors::serialize(views, None::<HashMap<String, String>>).unwrap()).unwrap();
}

/// The model's tensors as PyTorch would name and shape them.
fn torch_tensors<M: Model>(model: &M) -> Vec<(&'static str, Vec<usize>, Vec<f32>)> {
    M::TENSORS
        .iter()
        .map(|t| (t.name, t.shape.to_vec(), model.params()[t.offset..t.offset + t.len()].to_vec()))
        .collect()
}

#[test]
fn save_then_load_gives_identical_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.safetensors");
    let mut trained = Small::with_seed(1);
    let (x, y) = lines(64, 12, 3);
    let mut opt = Sgd::new(0.05, 0.9).unwrap();
    for _ in 0..5 {
        trained.train_step(&mut opt, &x, &y).unwrap();
    }
    save_weights(&trained, &path).unwrap();
    let mut loaded = Small::with_seed(2);
    load_weights(&mut loaded, &path).unwrap();
    assert_eq!(loaded.params(), trained.params());
    assert_eq!(loaded.forward(&x).unwrap(), trained.forward(&x).unwrap());
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // The metadata names the model.
    let bytes = std::fs::read(&path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(meta.metadata().as_ref().unwrap()["cnn.model"], Small::DSL);
}

#[test]
fn a_file_written_the_pytorch_way_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("torch.safetensors");
    let source = Small::with_seed(5);
    write_tensors(&path, &torch_tensors(&source), Dtype::F32);
    let mut model = Small::with_seed(6);
    load_weights(&mut model, &path).unwrap();
    assert_eq!(model.params(), source.params());
}

#[test]
fn every_mismatch_is_an_error_that_names_the_tensor_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    let good = torch_tensors(&Small::with_seed(5));
    let mut model = Small::with_seed(6);
    let before = model.params().to_vec();
    let mut check = |tensors: Vec<(&str, Vec<usize>, Vec<f32>)>, dtype: Dtype, want: &str| {
        write_tensors(&path, &tensors, dtype);
        let why = reason(load_weights(&mut model, &path).unwrap_err());
        assert!(why.contains(want), "{why}");
        assert_eq!(model.params(), &before[..]);
    };
    check(good[1..].to_vec(), Dtype::F32, "tensor `0.weight` is missing");
    let mut wrong = good.clone();
    wrong[2] = ("5.weight", vec![16, 64], vec![0.0; 1024]);
    check(wrong, Dtype::F32, "tensor `4.weight` is missing");
    let mut wrong = good.clone();
    wrong[0] = ("0.weight", vec![4, 1, 9], vec![0.0; 36]);
    check(wrong, Dtype::F32, "tensor `0.weight` has shape [4, 1, 9], the model expects [4, 1, 3, 3]");
    check(good.clone(), Dtype::F64, "tensor `0.weight` holds F64 values, expected F32");
    let mut extra = good.clone();
    extra.push(("9.weight", vec![2], vec![0.0; 2]));
    check(extra, Dtype::F32, "unexpected tensor `9.weight`");

    std::fs::write(&path, b"not a safetensors file at all").unwrap();
    assert!(reason(load_weights(&mut model, &path).unwrap_err()).contains("not a safetensors file"));
    assert!(reason(load_weights(&mut model, &dir.path().join("missing")).unwrap_err()).contains("cannot read"));
    let full = std::fs::read(dir.path().join("bad.safetensors")).unwrap();
    std::fs::write(&path, &full[..full.len() / 2]).unwrap();
    assert!(reason(load_weights(&mut model, &path).unwrap_err()).contains("not a safetensors file"));
    assert_eq!(model.params(), &before[..]);
}

#[test]
fn weights_of_another_model_show_both_models() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.safetensors");
    save_weights(&Other::new(), &path).unwrap();
    let why = reason(load_weights(&mut Small::new(), &path).unwrap_err());
    assert!(why.contains(Other::DSL) && why.contains(Small::DSL), "{why}");
    // Another layer list whose tensors all fit loads: here only an activation differs.
    cnn! { struct Smooth < input(12x12x1) conv(3x3, 4, pad=1) tanh pool(2) fc(16) tanh fc(4) softmax > }
    let smooth = dir.path().join("smooth.safetensors");
    save_weights(&Smooth::with_seed(5), &smooth).unwrap();
    let mut small = Small::new();
    load_weights(&mut small, &smooth).unwrap();
    assert_eq!(small.params(), Smooth::with_seed(5).params());
    assert!(save_weights(&Small::new(), &dir.path().join("no/such/dir/w.safetensors")).is_err());
}

/// Trains `epochs` epochs from `start`, in the order `epoch_order` gives for `seed`, saving a
/// checkpoint after each when `save` is given.
fn train<M: Model, O: Optimizer>(
    model: &mut M,
    opt: &mut O,
    start: u64,
    epochs: u64,
    seed: u64,
    save: Option<&Path>,
) -> u64 {
    let (x, y) = lines(96, 12, 9);
    let mut order = Vec::new();
    let (mut xb, mut yb) = (vec![0.0; 32 * 144], vec![0; 32]);
    let mut step = start * 3;
    for epoch in start..start + epochs {
        epoch_order(96, seed, epoch, &mut order).unwrap();
        for batch in order.chunks(32) {
            for (k, &i) in batch.iter().enumerate() {
                xb[k * 144..(k + 1) * 144].copy_from_slice(&x[i * 144..(i + 1) * 144]);
                yb[k] = y[i];
            }
            model.train_step(opt, &xb, &yb).unwrap();
            step += 1;
        }
        opt.set_learning_rate(opt.learning_rate() * 0.9).unwrap();
        if let Some(path) = save {
            save_checkpoint(model, opt, Progress { epoch: epoch + 1, step, seed }, path).unwrap();
        }
    }
    step
}

#[test]
fn resuming_from_a_checkpoint_equals_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    let mut straight = Small::with_seed(3);
    let mut opt = Sgd::new(0.05, 0.9).unwrap();
    train(&mut straight, &mut opt, 0, 6, 42, None);

    let mut first = Small::with_seed(3);
    let mut opt1 = Sgd::new(0.05, 0.9).unwrap();
    train(&mut first, &mut opt1, 0, 4, 42, Some(&path));
    // A fresh process: new model, new optimizer, everything from the file.
    let mut resumed = Small::with_seed(99);
    let mut opt2 = Sgd::new(0.5, 0.9).unwrap();
    let progress = load_checkpoint(&mut resumed, &mut opt2, &path).unwrap();
    assert_eq!(progress, Progress { epoch: 4, step: 12, seed: 42 });
    assert_eq!(opt2.learning_rate(), opt1.learning_rate());
    train(&mut resumed, &mut opt2, progress.epoch, 2, progress.seed, None);
    let same = resumed.params().iter().zip(straight.params()).all(|(a, b)| a.to_bits() == b.to_bits());
    assert!(same, "resumed training differs from the uninterrupted run");

    // A weights file is not a checkpoint, and a checkpoint needs the same kind of optimizer.
    let weights = dir.path().join("w.safetensors");
    save_weights(&straight, &weights).unwrap();
    assert!(reason(load_checkpoint(&mut resumed, &mut opt2, &weights).unwrap_err()).contains("not a checkpoint"));
    // Checkpoints load as plain weights too.
    load_weights(&mut Small::new(), &path).unwrap();
}

#[test]
fn resuming_adam_with_batchnorm_and_dropout_equals_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    let mut straight = Regular::with_seed(3);
    train(&mut straight, &mut Adam::new(0.01).unwrap(), 0, 5, 42, None);

    let mut first = Regular::with_seed(3);
    train(&mut first, &mut Adam::new(0.01).unwrap(), 0, 3, 42, Some(&path));
    let mut resumed = Regular::with_seed(99);
    let mut opt = Adam::new(0.5).unwrap();
    let progress = load_checkpoint(&mut resumed, &mut opt, &path).unwrap();
    assert_eq!(resumed.noise(), first.noise());
    assert_eq!(opt.steps(), 9);
    train(&mut resumed, &mut opt, progress.epoch, 2, progress.seed, None);
    let bits = |m: &Regular| m.params().iter().chain(m.buffers()).map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&resumed), bits(&straight), "resumed training differs from the uninterrupted run");

    // An Sgd checkpoint does not load into Adam, and nothing changes.
    let sgd = dir.path().join("sgd.safetensors");
    save_checkpoint(&resumed, &Sgd::new(0.1, 0.9).unwrap(), progress, &sgd).unwrap();
    let before = bits(&resumed);
    assert!(reason(load_checkpoint(&mut resumed, &mut opt, &sgd).unwrap_err()).contains("written by Sgd"));
    assert_eq!(bits(&resumed), before);
}

#[test]
fn epoch_orders_are_permutations_fixed_by_seed_and_epoch() {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    epoch_order(100, 7, 3, &mut a).unwrap();
    epoch_order(100, 7, 3, &mut b).unwrap();
    assert_eq!(a, b);
    let mut sorted = a.clone();
    sorted.sort();
    assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    epoch_order(100, 7, 4, &mut b).unwrap();
    assert_ne!(a, b);
    let _ = Lcg(1);
}

/// `Regular` with every parameter, buffer, dropout position and Adam state set from fixed
/// formulas (exact binary fractions), so that the files it writes depend on no arithmetic.
fn fixed_model_and_optimizer() -> (Regular, Adam) {
    let mut model = Regular::new();
    for (i, p) in model.params_mut().iter_mut().enumerate() {
        *p = ((i * 37 % 101) as f32 - 50.0) / 64.0;
    }
    for t in Regular::TENSORS.iter().filter(|t| !t.kind.is_param()) {
        for (i, b) in model.buffers_mut()[t.offset..t.offset + t.len()].iter_mut().enumerate() {
            *b = if t.kind == cnn::TensorKind::Count { 7.0 } else { (i + 1) as f32 / 8.0 };
        }
    }
    model.set_noise(cnn::Noise { seed: 11, step: 7 });
    let mut opt = Adam::new(0.001).unwrap();
    let n = Regular::PARAM_COUNT;
    opt.load_state("exp_avg", &(0..n).map(|i| (i % 13) as f32 / 1024.0 - 0.005).collect::<Vec<_>>()).unwrap();
    opt.load_state("exp_avg_sq", &(0..n).map(|i| (i % 7) as f32 / 4096.0).collect::<Vec<_>>()).unwrap();
    opt.load_counter("step", 7).unwrap();
    (model, opt)
}

fn sha256_hex(path: &Path) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The written bytes depend only on what is saved: the same model gives the same file in every
/// run, on every machine. The hashes are those of files of this crate's format and version
/// (`cnn.version` is in the metadata); when the format or the version changes on purpose, run
/// `cargo test --test weights written_files_are_reproducible_byte_for_byte` and copy the hashes
/// it reports into `WEIGHTS` and `CHECKPOINT`.
#[test]
fn written_files_are_reproducible_byte_for_byte() {
    const WEIGHTS: &str = "52e43390747e7d6c8518823859e1dc578991da6edb5245c5f318fdfaca53b469";
    const CHECKPOINT: &str = "913c54b843e54d45fd9bd43a9f99b85011c24bf4319a1ce19e3c1d71e70e9f73";
    let dir = tempfile::tempdir().unwrap();
    let (weights, checkpoint) = (dir.path().join("w.safetensors"), dir.path().join("c.safetensors"));
    let (model, opt) = fixed_model_and_optimizer();
    save_weights(&model, &weights).unwrap();
    save_checkpoint(&model, &opt, Progress { epoch: 2, step: 7, seed: 42 }, &checkpoint).unwrap();
    let found = (sha256_hex(&weights), sha256_hex(&checkpoint));
    assert_eq!(
        found,
        (WEIGHTS.to_string(), CHECKPOINT.to_string()),
        "the SHA-256 of the weights and of the checkpoint"
    );
    // Still the format safetensors reads, with PyTorch's names and dtypes.
    let bytes = std::fs::read(&checkpoint).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(tensors.tensor("1.num_batches_tracked").unwrap().dtype(), Dtype::I64);
    assert_eq!(tensors.tensor("0.weight").unwrap().shape(), &[4, 1, 3, 3]);
    assert_eq!(tensors.tensor("optimizer.exp_avg").unwrap().shape(), &[Regular::PARAM_COUNT]);
    let (mut back, mut opt_back) = (Regular::with_seed(3), Adam::new(0.5).unwrap());
    load_checkpoint(&mut back, &mut opt_back, &checkpoint).unwrap();
    assert_eq!((back.params(), back.buffers(), back.noise()), (model.params(), model.buffers(), model.noise()));
    assert_eq!(opt_back.state(), opt.state());
}

/// Creates `dir/name` with a modification time `age_s` seconds ago.
fn leave_file(dir: &Path, name: &str, age_s: u64) {
    let file = std::fs::File::create(dir.join(name)).unwrap();
    file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(age_s)).unwrap();
}

#[test]
fn a_save_removes_what_a_crashed_save_of_its_file_left_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    // Pids above Linux's largest (2^22) belong to no process.
    let crashed = ".ckpt.safetensors.4294967295.3.tmp";
    let kept = [
        ".ckpt.safetensors.4294967294.4.tmp".to_string(), // Dead but recent: its save may be slow.
        format!(".ckpt.safetensors.{}.9999.tmp", std::process::id()), // Old, but its process runs.
        ".other.safetensors.4294967295.3.tmp".to_string(), // Another file's.
        ".ckpt.safetensors.tmp".to_string(),              // Not a name this crate's saves use.
        "ckpt.safetensors.4294967295.3.tmp".to_string(),
    ];
    let hour = 3600;
    leave_file(dir.path(), crashed, hour);
    leave_file(dir.path(), &kept[0], 0);
    for name in &kept[1..] {
        leave_file(dir.path(), name, hour);
    }
    let listing = || {
        let mut names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    };
    let mut expected: Vec<String> = kept.iter().cloned().chain(["ckpt.safetensors".to_string()]).collect();
    expected.sort();
    // A reader removes nothing: it may run while another process saves.
    let elsewhere = tempfile::tempdir().unwrap();
    save_weights(&Small::new(), &elsewhere.path().join("w.safetensors")).unwrap();
    std::fs::copy(elsewhere.path().join("w.safetensors"), &path).unwrap();
    load_weights(&mut Small::new(), &path).unwrap();
    assert!(listing().contains(&crashed.to_string()), "{:?}", listing());
    save_checkpoint(&Small::new(), &Sgd::new(0.1, 0.9).unwrap(), Progress::default(), &path).unwrap();
    assert_eq!(listing(), expected);
}

#[test]
fn saves_from_many_threads_to_one_file_do_not_collide() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.safetensors");
    let models: Vec<Small> = (0..4).map(Small::with_seed).collect();
    std::thread::scope(|scope| {
        for model in &models {
            let path = &path;
            scope.spawn(move || {
                for _ in 0..25 {
                    save_weights(model, path).unwrap();
                }
            });
        }
    });
    let mut loaded = Small::new();
    load_weights(&mut loaded, &path).unwrap();
    assert!(models.iter().any(|m| m.params() == loaded.params()), "the file holds none of the saved models");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "a temporary file was left behind");
}

/// A tensor of a file as `rewrite` hands it over: name, dtype, shape and bytes.
type RawTensor = (String, Dtype, Vec<usize>, Vec<u8>);

/// A change to a file's metadata and tensors, for `rewrite`.
type Edit<'a> = &'a dyn Fn(&mut HashMap<String, String>, &mut Vec<RawTensor>);

/// Rewrites the safetensors file at `path` through `edit`, which may change its metadata and
/// change or drop tensors.
fn rewrite(path: &Path, edit: impl FnOnce(&mut HashMap<String, String>, &mut Vec<RawTensor>)) {
    let bytes = std::fs::read(path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut metadata = header.metadata().clone().unwrap_or_default();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<RawTensor> =
        file.tensors().into_iter().map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect();
    edit(&mut metadata, &mut tensors);
    let views: Vec<(String, TensorView<'_>)> =
        tensors.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    std::fs::write(path, safetensors::serialize(views, Some(metadata)).unwrap()).unwrap();
}

/// Sets value `index` of the f32 tensor `name`.
fn set_value(tensors: &mut [RawTensor], name: &str, index: usize, value: f32) {
    let tensor = tensors.iter_mut().find(|t| t.0 == name).unwrap();
    tensor.3[index * 4..index * 4 + 4].copy_from_slice(&value.to_le_bytes());
}

/// Everything a load may change, as text, to check that a failed one changed nothing.
fn everything<M: Model, O: Optimizer>(model: &M, opt: &O) -> String {
    format!(
        "{:?}",
        (model.params(), model.buffers(), model.noise(), opt.state(), opt.counters(), opt.learning_rate().to_bits())
    )
}

#[test]
fn non_finite_values_are_neither_saved_nor_loaded_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("diverged.safetensors");
    let mut diverged = Small::with_seed(1);
    diverged.params_mut()[5] = f32::NAN;
    let why = reason(save_weights(&diverged, &path).unwrap_err());
    assert!(why.contains("tensor `0.weight` holds NaN at index 5"), "{why}");
    assert!(!path.exists(), "a refused save wrote the file");
    let opt = Sgd::new(0.1, 0.0).unwrap();
    let why = reason(save_checkpoint(&diverged, &opt, Progress::default(), &path).unwrap_err());
    assert!(why.contains("tensor `0.weight` holds NaN at index 5"), "{why}");
    let mut statistics = Regular::with_seed(1);
    let var = Regular::TENSORS.iter().find(|t| t.name == "1.running_var").unwrap();
    statistics.buffers_mut()[var.offset + 2] = f32::INFINITY;
    let why = reason(save_weights(&statistics, &path).unwrap_err());
    assert!(why.contains("tensor `1.running_var` holds inf at index 2"), "{why}");

    // Allowed, they are saved, and loads refuse them unless allowed too.
    let allow = Options { allow_non_finite: true, ..Options::default() };
    save_weights_with(&diverged, &path, allow).unwrap();
    let mut model = Small::with_seed(2);
    let before = model.params().to_vec();
    let why = reason(load_weights(&mut model, &path).unwrap_err());
    assert!(why.contains("tensor `0.weight` holds NaN at index 5") && why.contains("allow_non_finite"), "{why}");
    assert_eq!(model.params(), &before[..]);
    load_weights_with(&mut model, &path, allow).unwrap();
    assert!(model.params()[5].is_nan());
    save_checkpoint_with(&diverged, &opt, Progress::default(), &path, allow).unwrap();
    let (mut resumed, mut sgd) = (Small::new(), Sgd::new(0.1, 0.0).unwrap());
    assert!(reason(load_checkpoint(&mut resumed, &mut sgd, &path).unwrap_err()).contains("holds NaN at index 5"));
    load_checkpoint_with(&mut resumed, &mut sgd, &path, allow).unwrap();
    assert!(resumed.params()[5].is_nan());

    // A file PyTorch wrote from a diverged run, and a checkpoint whose state diverged.
    write_tensors(&path, &torch_tensors(&diverged), Dtype::F32);
    assert!(reason(load_weights(&mut Small::new(), &path).unwrap_err()).contains("holds NaN at index 5"));
    let mut trained = Small::with_seed(3);
    let mut sgd = Sgd::new(0.05, 0.9).unwrap();
    let (x, y) = lines(32, 12, 5);
    trained.train_step(&mut sgd, &x, &y).unwrap();
    save_checkpoint(&trained, &sgd, Progress { epoch: 0, step: 1, seed: 1 }, &path).unwrap();
    rewrite(&path, |_, tensors| set_value(tensors, "optimizer.momentum_buffer", 7, f32::NEG_INFINITY));
    let (mut model, mut opt) = (Small::with_seed(4), Sgd::new(0.05, 0.9).unwrap());
    let before = everything(&model, &opt);
    let why = reason(load_checkpoint(&mut model, &mut opt, &path).unwrap_err());
    assert!(why.contains("`optimizer.momentum_buffer` holds -inf at index 7"), "{why}");
    assert_eq!(everything(&model, &opt), before);
}

/// A checkpoint of `Regular` and Adam after one epoch (3 steps), and the model and optimizer
/// that wrote it.
fn adam_checkpoint(path: &Path) -> (Regular, Adam) {
    let (mut model, mut opt) = (Regular::with_seed(3), Adam::new(0.01).unwrap());
    train(&mut model, &mut opt, 0, 1, 42, Some(path));
    (model, opt)
}

#[test]
fn a_checkpoint_that_makes_no_sense_does_not_load_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (good, path) = (dir.path().join("good.safetensors"), dir.path().join("bad.safetensors"));
    adam_checkpoint(&good);
    // The model and optimizer loaded into have a state of their own, which must survive.
    let (mut model, mut opt) = (Regular::with_seed(8), Adam::new(0.02).unwrap());
    train(&mut model, &mut opt, 0, 1, 7, None);
    let before = everything(&model, &opt);
    let metadata = |key: &'static str, value: &'static str| {
        move |m: &mut HashMap<String, String>, _: &mut Vec<RawTensor>| {
            m.insert(key.to_string(), value.to_string());
        }
    };
    let max = "18446744073709551615";
    let mut check = |edit: Edit<'_>, want: &str| {
        std::fs::copy(&good, &path).unwrap();
        rewrite(&path, edit);
        let why = reason(load_checkpoint(&mut model, &mut opt, &path).unwrap_err());
        assert!(why.contains(want), "expected `{want}` in: {why}");
        assert_eq!(everything(&model, &opt), before, "a refused checkpoint changed something: {why}");
    };
    for lr in ["NaN", "inf", "-1", "0"] {
        check(&metadata("cnn.learning_rate", lr), "learning rate: must be finite and positive");
    }
    check(&metadata("cnn.learning_rate", "fast"), "metadata `cnn.learning_rate` is `fast`, not a number");
    for key in ["optimizer.step", "cnn.noise_step", "cnn.step", "cnn.epoch"] {
        check(&metadata(key, max), &format!("metadata `{key}`: invalid step count: {max} is above"));
    }
    check(&|m, _| drop(m.remove("optimizer.step")), "metadata `optimizer.step` of Adam(");
    check(&|m, _| drop(m.remove("cnn.optimizer")), "metadata `cnn.optimizer` is missing");
    check(&metadata("optimizer.momentum", "1"), "has no counter `momentum`");
    for state in ["optimizer.exp_avg", "optimizer.exp_avg_sq"] {
        check(&|_, t| t.retain(|t| t.0 != state), &format!("tensor `{state}` is missing: Adam("));
    }
    // Without state, a step count above 0 still needs it (here the file's own count only).
    check(
        &|m, t| {
            t.retain(|t| !t.0.starts_with("optimizer."));
            m.insert("optimizer.step".into(), "0".into());
        },
        "tensor `optimizer.exp_avg` is missing",
    );
    check(&|_, t| set_value(t, "optimizer.exp_avg_sq", 3, f32::NAN), "`optimizer.exp_avg_sq` holds NaN at index 3");
    check(&|_, t| set_value(t, "8.weight", 0, f32::INFINITY), "tensor `8.weight` holds inf at index 0");

    // Sgd with momentum after a step needs its buffer.
    let mut small = Small::with_seed(1);
    let mut sgd = Sgd::new(0.05, 0.9).unwrap();
    train(&mut small, &mut sgd, 0, 1, 3, Some(&path));
    rewrite(&path, |_, t| t.retain(|t| t.0 != "optimizer.momentum_buffer"));
    let before = everything(&small, &sgd);
    let why = reason(load_checkpoint(&mut small, &mut sgd, &path).unwrap_err());
    assert!(why.contains("tensor `optimizer.momentum_buffer` is missing: Sgd("), "{why}");
    assert_eq!(everything(&small, &sgd), before);
}

#[test]
fn a_checkpoint_needs_the_same_hyperparameters_but_not_the_same_learning_rate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    let sgd = |momentum| Sgd::new(0.05, momentum).unwrap();
    let mut small = Small::with_seed(1);
    train(&mut small, &mut sgd(0.9).with_nesterov(true).unwrap(), 0, 1, 3, Some(&path));
    let differing: [(Box<dyn Optimizer>, &str); 4] = [
        (Box::new(sgd(0.5).with_nesterov(true).unwrap()), "momentum=0.9 in the checkpoint, momentum=0.5 here"),
        (Box::new(sgd(0.9)), "nesterov=true in the checkpoint, nesterov=false here"),
        (Box::new(sgd(0.9).with_nesterov(true).unwrap().with_weight_decay(1e-4).unwrap()), "weight_decay=0 in"),
        (Box::new(sgd(0.9).with_nesterov(true).unwrap().with_l1(0.1).unwrap()), "l1=0 in the checkpoint, l1=0.1 here"),
    ];
    for (mut opt, want) in differing {
        let mut model = Small::new();
        let before = everything(&model, &Sgd::new(0.1, 0.0).unwrap());
        let why = reason(load_checkpoint(&mut model, opt.as_mut(), &path).unwrap_err());
        assert!(why.contains(want) && why.contains("only the learning rate may differ"), "{why}");
        assert_eq!(everything(&model, &Sgd::new(0.1, 0.0).unwrap()), before);
    }
    // Another learning rate loads, and the checkpoint's is restored.
    let mut opt = Sgd::new(0.5, 0.9).unwrap().with_nesterov(true).unwrap();
    load_checkpoint(&mut Small::new(), &mut opt, &path).unwrap();
    assert_eq!(opt.learning_rate(), 0.05 * 0.9);

    let mut regular = Regular::with_seed(1);
    train(&mut regular, &mut AdamW::new(0.01).unwrap(), 0, 1, 3, Some(&path));
    let adams: [(Box<dyn Optimizer>, &str); 3] = [
        (Box::new(AdamW::new(0.01).unwrap().with_betas(0.8, 0.999).unwrap()), "betas=(0.9, 0.999) in the checkpoint"),
        (Box::new(AdamW::new(0.01).unwrap().with_eps(1e-6).unwrap()), "eps=1e-8 in the checkpoint, eps=1e-6 here"),
        (Box::new(AdamW::new(0.01).unwrap().with_weight_decay(0.1).unwrap()), "weight_decay=0.01 in the checkpoint"),
    ];
    for (mut opt, want) in adams {
        let why = reason(load_checkpoint(&mut Regular::new(), opt.as_mut(), &path).unwrap_err());
        assert!(why.contains(want), "{why}");
    }
    load_checkpoint(&mut Regular::new(), &mut AdamW::new(0.3).unwrap(), &path).unwrap();
}

#[test]
fn a_checkpoint_without_optimizer_state_at_step_0_resets_the_optimizer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("start.safetensors");
    let start = Regular::with_seed(1);
    save_checkpoint(&start, &Adam::new(0.01).unwrap(), Progress::default(), &path).unwrap();
    let (mut model, mut used) = (Regular::with_seed(2), Adam::new(0.01).unwrap());
    train(&mut model, &mut used, 0, 1, 3, None);
    assert_eq!(used.steps(), 3);
    load_checkpoint(&mut model, &mut used, &path).unwrap();
    assert_eq!(used.steps(), 0);
    assert!(used.state().is_empty(), "the optimizer kept the state it had before the load");
    // It then trains as a new optimizer from the same start would.
    let (mut fresh_model, mut fresh) = (start.clone(), Adam::new(0.01).unwrap());
    train(&mut model, &mut used, 0, 1, 3, None);
    train(&mut fresh_model, &mut fresh, 0, 1, 3, None);
    assert_eq!(everything(&model, &used), everything(&fresh_model, &fresh));
}

#[test]
fn loads_count_what_they_allocate_against_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    save_weights(&Small::with_seed(1), &path).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    let limited = |bytes| Options { limit: Limit::bytes(bytes), ..Options::default() };
    let mut model = Small::new();
    let before = model.params().to_vec();
    let why = reason(load_weights_with(&mut model, &path, limited(size - 1)).unwrap_err());
    assert!(why.contains(&format!("the file would need {size} bytes")) && why.contains("cnn::Limit::bytes"), "{why}");
    let why = reason(load_weights_with(&mut model, &path, limited(size)).unwrap_err());
    assert!(why.contains("the file's parsed header would need"), "{why}");
    assert_eq!(model.params(), &before[..]);
    load_weights_with(&mut model, &path, limited(2 * size + 64 * 1024)).unwrap();
    // A checkpoint also holds the optimizer's state, and needs more.
    let ckpt = dir.path().join("c.safetensors");
    let (mut small, mut opt) = (Small::with_seed(1), Adam::new(0.01).unwrap());
    train(&mut small, &mut opt, 0, 1, 3, Some(&ckpt));
    let why = reason(load_checkpoint_with(&mut small, &mut opt, &ckpt, limited(2 * size + 64 * 1024)).unwrap_err());
    assert!(why.contains("would need") && why.contains("optimizer"), "{why}");
    // A file larger than the default limit is refused from its size, before it is read: this
    // one is sparse, and reading it would take 4 GiB.
    let huge = dir.path().join("huge.safetensors");
    std::fs::File::create(&huge).unwrap().set_len(Limit::DEFAULT.max_bytes() + 1).unwrap();
    let started = std::time::Instant::now();
    let why = reason(load_weights(&mut model, &huge).unwrap_err());
    assert!(why.contains("the file would need 4294967297 bytes"), "{why}");
    assert!(started.elapsed() < std::time::Duration::from_secs(1), "the file was read");
}
