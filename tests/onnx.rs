//! ONNX export: writes every zoo model and models covering every layer and option, each with a
//! random batch, the outputs the model's own forward pass gives and what the file must say, to
//! `target/tmp/onnx` (and the int8 LeNet-5 to `target/tmp/onnx-int8`). `scripts/check_onnx.py` then runs each file through the ONNX checker and
//! ONNX Runtime and compares (CI does, from `.ci/run`). The checks that need no runtime (what
//! the export refuses) run here.

#[path = "common/committed.rs"]
mod committed;
#[path = "../examples/zoo/models.rs"]
mod models;

use std::fs;
use std::path::{Path, PathBuf};

use cnn::io::{Channels, Meta};
use cnn::{cnn, Model, MultiTask, Network, PerHead, TensorKind};
use models::{AlexNet32, GoogLeNetMini, LeNet5, Mlp, Perceptron, ResNet8, ZFNet32};

// Small models that end where the layers under test do, so that a wrong window, padding or
// constant shows in the outputs undamped.

cnn! {
    /// Rectangular, strided, padded and grouped convolution, leaky relu, padded average pooling
    /// (the padding counted), relu6; a volume as the output.
    struct Convolutions <
        input(9x7x4) conv(3x2, 6, stride=2x1, pad=1x0, groups=2) leaky_relu(0.2) avgpool(3, stride=1, pad=1) relu6
    >
}

cnn! {
    /// Local response normalisation over an even window, with its own constants, then
    /// rectangular, strided L2 pooling.
    struct Norms < input(5x4x6) lrn(4, alpha=2, beta=0.6, k=1.5) l2pool(3x2, stride=2) >
}

cnn! {
    /// Concatenated volumes, a residual block with a projected shortcut and batch
    /// normalisation, padded max pooling.
    struct Blocks <
        input(6x5x3)
        concat(conv(1x1, 3) tanh, maxpool(3, stride=1, pad=1))
        residual(
            conv(3x3, 4, pad=1, bias=false) batchnorm relu conv(3x3, 4, pad=1),
            shortcut=conv(1x1, 4) batchnorm
        )
    >
}

cnn! {
    /// A flat input: `fc` without bias, batch normalisation of features, sparsity, an even
    /// local response normalisation across features, concatenated vectors.
    struct Vectors <
        input(6) fc(8, bias=false) batchnorm leaky_relu sparsity(0.01) lrn(2, alpha=1, beta=0.75, k=1)
        concat(fc(3) tanh, fc(2) relu6, sigmoid) fc(4)
    >
}

cnn! {
    /// Softmax straight after global average pooling (a 1x1 volume), an identity residual
    /// around an odd local response normalisation, dropout.
    struct GlobalSoftmax <
        input(4x4x3) conv(3x3, 5, pad=1) residual(lrn(3, alpha=0.3, beta=0.75, k=1)) dropout(0.1) avgpool(4) softmax
    >
}

cnn! {
    /// Three heads on a convolutional trunk: classes, a yes/no and a regression.
    struct Tasks <
        input(6x6x2) conv(3x3, 4) batchnorm relu pool(2)
        heads(kind: fc(3) softmax, flag: fc(1) sigmoid, size: fc(4) tanh fc(2))
    >
}

/// Samples in each batch written.
const BATCH: usize = 3;

/// A small seeded generator of values in `[lo, hi)`.
struct Rng(u64);

impl Rng {
    fn next(&mut self, lo: f32, hi: f32) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        lo + (hi - lo) * ((self.0 >> 40) as f32 / (1u64 << 24) as f32)
    }

    fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.next(lo, hi)).collect()
    }
}

/// `model` with batch normalisation's scales, shifts and running statistics drawn at random
/// from `seed`, so that it is nowhere the identity.
fn randomised<M: Network>(mut model: M, seed: u64) -> M {
    let mut rng = Rng(seed);
    for t in M::TENSORS {
        let (range, name) = (t.offset..t.offset + t.len(), t.name);
        let (lo, hi) = match t.kind {
            TensorKind::Norm if name.ends_with(".weight") => (0.5, 1.5),
            TensorKind::Norm => (-0.5, 0.5),
            TensorKind::Statistic if name.ends_with(".running_var") => (0.2, 2.0),
            TensorKind::Statistic => (-0.3, 0.3),
            _ => continue,
        };
        let values = rng.vec(t.len(), lo, hi);
        match t.kind {
            TensorKind::Norm => model.params_mut()[range].copy_from_slice(&values),
            _ => model.buffers_mut()[range].copy_from_slice(&values),
        }
    }
    model
}

/// The batch shape of `n` samples of `M`'s input: `[n, D, H, W]` or `[n, len]`.
fn input_shape<M: Network>(n: usize) -> Vec<usize> {
    let s = M::INPUT;
    if s.flat {
        vec![n, s.len()]
    } else {
        vec![n, s.d, s.h, s.w]
    }
}

/// Where the files go: `target/tmp/onnx`, emptied first.
fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn raw(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// `s` as a JSON string.
fn json(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes `M` exported with `meta` as `dir/NAME.onnx`, with the batch `x` as `NAME.input.bin`,
/// the model's `outputs` for it (by name) as `NAME.output.K.bin` (raw little-endian `f32`), and
/// `NAME.json`: the shapes, the output names, the names of the weights exported and the metadata the file must
/// carry.
fn write<M: Network>(dir: &Path, name: &str, model: &M, meta: &Meta, x: &[f32], outputs: &[(&str, Vec<f32>)]) {
    cnn::onnx::save(model, meta, &dir.join(format!("{name}.onnx"))).unwrap();
    let exported = M::TENSORS.iter().filter(|t| !t.name.ends_with("num_batches_tracked")).map(|t| json(t.name));
    describe(dir, name, &input_shape::<M>(x.len() / M::INPUT_LEN), x, outputs, exported.collect(), M::DSL, meta, "");
}

/// Writes the batch `x` of `shape`, the `outputs` and `NAME.json`, which also lists the
/// weights the file must hold by name (`tensors`, as JSON strings), its metadata and `extra`
/// JSON fields (each with a leading comma).
#[allow(clippy::too_many_arguments)]
fn describe(
    dir: &Path,
    name: &str,
    shape: &[usize],
    x: &[f32],
    outputs: &[(&str, Vec<f32>)],
    tensors: Vec<String>,
    dsl: &str,
    meta: &Meta,
    extra: &str,
) {
    fs::write(dir.join(format!("{name}.input.bin")), raw(x)).unwrap();
    let mut described = Vec::new();
    for (k, (output, values)) in outputs.iter().enumerate() {
        fs::write(dir.join(format!("{name}.output.{k}.bin")), raw(values)).unwrap();
        let (n, len) = (shape[0], values.len() / shape[0]);
        described.push(format!(r#"{{"name": {}, "shape": [{n}, {len}]}}"#, json(output)));
    }
    let mut metadata = vec![format!("{}: {}", json("cnn.model"), json(dsl))];
    metadata.extend(meta.entries().iter().map(|(k, v)| format!("{}: {}", json(k), json(v))));
    let description = format!(
        "{{\"input\": {shape:?}, \"outputs\": [{}], \"tensors\": [{}], \"metadata\": {{{}}}{extra}}}",
        described.join(", "),
        tensors.join(", "),
        metadata.join(", ")
    );
    fs::write(dir.join(format!("{name}.json")), description).unwrap();
}

/// Seeds `M` with `seed`, randomises its batch normalisation and writes it with `meta` and a
/// batch of values in `[-range, range)`.
fn export<M: Model>(dir: &Path, name: &str, model: impl FnOnce(u64) -> M, meta: &Meta, seed: u64, range: f32) {
    let mut model = randomised(model(seed), seed);
    let x = Rng(seed + 100).vec(BATCH * M::INPUT_LEN, -range, range);
    let y = model.forward(&x).unwrap().to_vec();
    write(dir, name, &model, meta, &x, &[("output", y)]);
}

fn lenet_meta() -> Meta {
    Meta {
        channels: Some(Channels::Grey),
        range: Some([0.0, 1.0]),
        mean: vec![0.1307],
        std: vec![0.3081],
        classes: (0..10).map(|d| format!("digit \"{d}\"")).collect(),
    }
}

/// Every model, written for `scripts/check_onnx.py`. The script's tolerance, 1e-4 of 1 + |value|,
/// is far above float32 rounding in these sums (about 1e-7) and below what a wrong window,
/// padding or constant does to these outputs (1e-3 or more).
#[test]
fn every_model_is_written_for_onnx_runtime() {
    let dir = out_dir();
    let none = &Meta::default();
    export(&dir, "perceptron", Perceptron::with_seed, none, 1, 1.0);
    export(&dir, "mlp", Mlp::with_seed, none, 2, 1.0);
    export(&dir, "alexnet32", AlexNet32::with_seed, none, 4, 1.0);
    export(&dir, "resnet8", ResNet8::with_seed, none, 5, 1.0);
    export(&dir, "zfnet32", ZFNet32::with_seed, none, 6, 1.0);
    export(&dir, "googlenet_mini", GoogLeNetMini::with_seed, none, 7, 1.0);
    export(&dir, "convolutions", Convolutions::with_seed, none, 8, 40.0);
    export(&dir, "norms", Norms::with_seed, none, 9, 2.0);
    export(&dir, "blocks", Blocks::with_seed, none, 10, 2.0);
    export(&dir, "vectors", Vectors::with_seed, none, 11, 2.0);
    export(&dir, "global_softmax", GlobalSoftmax::with_seed, none, 12, 2.0);
    export(&dir, "lenet5", LeNet5::with_seed, &lenet_meta(), 3, 1.0);
    let mut tasks = randomised(Tasks::with_seed(13), 13);
    let x = Rng(113).vec(BATCH * Tasks::INPUT_LEN, -1.0, 1.0);
    let y = tasks.forward(&x).unwrap();
    let heads: Vec<(&str, Vec<f32>)> =
        Tasks::HEADS.iter().enumerate().map(|(h, head)| (head.name, y.get(h).unwrap().to_vec())).collect();
    write(&dir, "tasks", &tasks, none, &x, &heads);
    let written =
        fs::read_dir(&dir).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "onnx"));
    assert_eq!(written.count(), 13);
    println!("written to {}; check with: python3 scripts/check_onnx.py {}", dir.display(), dir.display());
}

/// The committed LeNet-5 quantised to int8, in QDQ form, with 64 test digits: ONNX Runtime
/// runs its own integer kernels, whose rounding of a requantised value may differ from ours at
/// a tie, so the script allows 1e-2 and asks for the same class for every digit.
#[test]
fn int8_lenet5_is_written_for_onnx_runtime() {
    cnn! { struct Digits = "models/lenet5.safetensors" }
    let mut model = Digits::new();
    let meta = committed::load(&mut model);
    let (train, test) = committed::digits(&meta);
    let mut int8 = cnn::quant::quantize(&model, &train.images[..500 * 784]).unwrap();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx-int8");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    cnn::onnx::save_quantized(&int8, &meta, &dir.join("lenet5_int8.onnx")).unwrap();
    let x = &test.images[..64 * 784];
    let y = int8.forward(x).unwrap().to_vec();
    let extra = r#", "tolerance": 1e-2, "same_class": true"#;
    describe(&dir, "lenet5_int8", &[64, 1, 28, 28], x, &[("output", y)], vec![], Digits::DSL, &meta, extra);
}

#[test]
fn a_meta_that_does_not_fit_the_model_is_refused() {
    let model = LeNet5::with_seed(1);
    let rgb = Meta { channels: Some(Channels::Rgb), ..lenet_meta() };
    let error = cnn::onnx::to_bytes(&model, &rgb).unwrap_err();
    assert!(error.to_string().contains("channels"), "{error}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lenet5.onnx");
    let three = Meta { classes: vec!["a".into(), "b".into(), "c".into()], ..lenet_meta() };
    let error = cnn::onnx::save(&model, &three, &path).unwrap_err();
    assert!(error.to_string().contains("3 class names for 10 outputs"), "{error}");
    assert!(!path.exists());
    let mut broken = model.clone();
    broken.params_mut()[3] = f32::INFINITY;
    let error = cnn::onnx::to_bytes(&broken, &Meta::default()).unwrap_err();
    assert!(error.to_string().contains("`0.weight` holds inf at index 3"), "{error}");
}
