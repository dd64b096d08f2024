//! Weights and checkpoints: round trips, PyTorch-style files, every malformed file, and
//! resuming training from a checkpoint bit for bit.

mod common;

use std::collections::HashMap;
use std::path::Path;

use cnn::data::epoch_order;
use cnn::io::{load_checkpoint, load_weights, save_checkpoint, save_weights, Progress};
use cnn::{cnn, Adam, Error, Model, Optimizer, Sgd};
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
        epoch_order(96, seed, epoch, &mut order);
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
            save_checkpoint(path, model, opt, Progress { epoch: epoch + 1, step, seed }).unwrap();
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
    let progress = load_checkpoint(&path, &mut resumed, &mut opt2).unwrap();
    assert_eq!(progress, Progress { epoch: 4, step: 12, seed: 42 });
    assert_eq!(opt2.learning_rate(), opt1.learning_rate());
    train(&mut resumed, &mut opt2, progress.epoch, 2, progress.seed, None);
    let same = resumed.params().iter().zip(straight.params()).all(|(a, b)| a.to_bits() == b.to_bits());
    assert!(same, "resumed training differs from the uninterrupted run");

    // A weights file is not a checkpoint, and a checkpoint needs the same kind of optimizer.
    let weights = dir.path().join("w.safetensors");
    save_weights(&straight, &weights).unwrap();
    assert!(reason(load_checkpoint(&weights, &mut resumed, &mut opt2).unwrap_err()).contains("not a checkpoint"));
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
    let progress = load_checkpoint(&path, &mut resumed, &mut opt).unwrap();
    assert_eq!(resumed.noise(), first.noise());
    assert_eq!(opt.steps(), 9);
    train(&mut resumed, &mut opt, progress.epoch, 2, progress.seed, None);
    let bits = |m: &Regular| m.params().iter().chain(m.buffers()).map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&resumed), bits(&straight), "resumed training differs from the uninterrupted run");

    // An Sgd checkpoint does not load into Adam, and nothing changes.
    let sgd = dir.path().join("sgd.safetensors");
    save_checkpoint(&sgd, &resumed, &Sgd::new(0.1, 0.9).unwrap(), progress).unwrap();
    let before = bits(&resumed);
    assert!(reason(load_checkpoint(&sgd, &mut resumed, &mut opt).unwrap_err()).contains("written by Sgd"));
    assert_eq!(bits(&resumed), before);
}

#[test]
fn epoch_orders_are_permutations_fixed_by_seed_and_epoch() {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    epoch_order(100, 7, 3, &mut a);
    epoch_order(100, 7, 3, &mut b);
    assert_eq!(a, b);
    let mut sorted = a.clone();
    sorted.sort();
    assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    epoch_order(100, 7, 4, &mut b);
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
    save_checkpoint(&checkpoint, &model, &opt, Progress { epoch: 2, step: 7, seed: 42 }).unwrap();
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
    load_checkpoint(&checkpoint, &mut back, &mut opt_back).unwrap();
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
    save_checkpoint(&path, &Small::new(), &Sgd::new(0.1, 0.9).unwrap(), Progress::default()).unwrap();
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
