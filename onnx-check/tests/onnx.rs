//! ONNX export: every zoo model and models covering every layer and option, run by tract on a
//! random batch, give the outputs the model's own forward pass gives; the file's metadata reads
//! back to what was saved.

#[path = "../../examples/zoo/models.rs"]
mod models;

use std::io::Cursor;

use cnn::io::{Channels, Meta};
use cnn::{cnn, Model, MultiTask, Network, PerHead, TensorKind};
use models::{AlexNet32, GoogLeNetMini, LeNet5, Mlp, Perceptron, ResNet8, ZFNet32};
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::{tvec, DatumExt, Framework, InferenceModelExt, IntoRunnable, Tensor};

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

/// The outputs tract computes from the ONNX `bytes` for the batch `x` of `shape`.
fn tract_outputs(bytes: &[u8], shape: &[usize], x: &[f32]) -> Vec<Vec<f32>> {
    let plan = tract_onnx::onnx()
        .model_for_read(&mut Cursor::new(bytes))
        .and_then(|m| m.with_input_fact(0, f32::fact(shape).into()))
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .unwrap_or_else(|e| panic!("tract cannot load the export: {e:?}"));
    let input = Tensor::from_shape(shape, x).unwrap();
    let outputs = plan.run(tvec!(input.into())).unwrap();
    outputs.iter().map(|t| t.to_plain_array_view::<f32>().unwrap().iter().copied().collect()).collect()
}

/// The largest difference between `got` and `want` relative to `1 + |want|`; prints it with
/// the largest absolute difference, labelled `name`.
fn difference(name: &str, got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "{name}: number of outputs");
    let diffs = got.iter().zip(want).map(|(g, w)| ((g - w).abs(), (g - w).abs() / (1.0 + w.abs())));
    let (absolute, relative) = diffs.fold((0.0f32, 0.0f32), |(a, r), (da, dr)| (a.max(da), r.max(dr)));
    println!("{name:<14} max abs diff {absolute:.2e}, relative {relative:.2e}");
    relative
}

/// Float32 rounding in sums of up to some 10^4 products, taken in another order, stays below
/// 1e-6 of the values (1e-7 is typical); a wrong window, padding or constant moves the outputs
/// of these models by 1e-4 or more.
const TOLERANCE: f32 = 1e-5;

/// Exports `model` seeded with `seed`, runs `n` random samples of values in `[-range, range)`
/// through tract and through the model, and checks that the outputs agree.
fn check<M: Model>(name: &str, model: impl FnOnce(u64) -> M, n: usize, range: f32, seed: u64) {
    let mut model = randomised(model(seed), seed);
    let x = Rng(seed + 100).vec(n * M::INPUT_LEN, -range, range);
    let bytes = cnn::onnx::to_bytes(&model, &Meta::default()).unwrap();
    let got = tract_outputs(&bytes, &input_shape::<M>(n), &x);
    let want = model.forward(&x).unwrap();
    assert_eq!(got.len(), 1);
    let diff = difference(name, &got[0], want);
    assert!(diff <= TOLERANCE, "{name}: outputs differ by {diff}");
}

#[test]
fn zoo_models_run_in_tract_as_they_run_here() {
    check("Perceptron", Perceptron::with_seed, 3, 1.0, 1);
    check("Mlp", Mlp::with_seed, 3, 1.0, 2);
    check("LeNet5", LeNet5::with_seed, 3, 1.0, 3);
    check("AlexNet32", AlexNet32::with_seed, 3, 1.0, 4);
    check("ResNet8", ResNet8::with_seed, 3, 1.0, 5);
    check("ZFNet32", ZFNet32::with_seed, 3, 1.0, 6);
    check("GoogLeNetMini", GoogLeNetMini::with_seed, 3, 1.0, 7);
}

#[test]
fn every_layer_and_option_runs_in_tract_as_it_runs_here() {
    check("Convolutions", Convolutions::with_seed, 3, 40.0, 8);
    check("Norms", Norms::with_seed, 3, 2.0, 9);
    check("Blocks", Blocks::with_seed, 3, 2.0, 10);
    check("Vectors", Vectors::with_seed, 3, 2.0, 11);
    check("GlobalSoftmax", GlobalSoftmax::with_seed, 3, 2.0, 12);
}

#[test]
fn heads_are_outputs_named_as_written() {
    let mut model = randomised(Tasks::with_seed(11), 11);
    let n = 3;
    let x = Rng(12).vec(n * Tasks::INPUT_LEN, -1.0, 1.0);
    let bytes = cnn::onnx::to_bytes(&model, &Meta::default()).unwrap();
    let got = tract_outputs(&bytes, &input_shape::<Tasks>(n), &x);
    let want = model.forward(&x).unwrap();
    assert_eq!(got.len(), Tasks::HEADS.len());
    for (h, head) in Tasks::HEADS.iter().enumerate() {
        let diff = difference(&format!("Tasks.{}", head.name), &got[h], want.get(h).unwrap());
        assert!(diff <= TOLERANCE, "head {}: outputs differ by {diff}", head.name);
    }
    let proto = proto(&bytes);
    let outputs: Vec<&str> = proto.graph.as_ref().unwrap().output.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(outputs, ["kind", "flag", "size"]);
}

fn proto(bytes: &[u8]) -> ModelProto {
    tract_onnx::onnx().proto_model_for_read(&mut Cursor::new(bytes)).unwrap()
}

fn lenet_meta() -> Meta {
    Meta {
        channels: Some(Channels::Grey),
        range: Some([0.0, 1.0]),
        mean: vec![0.1307],
        std: vec![0.3081],
        classes: (0..10).map(|d| format!("digit {d}")).collect(),
    }
}

#[test]
fn the_file_describes_the_model_and_its_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lenet5.onnx");
    let meta = lenet_meta();
    cnn::onnx::save(&LeNet5::with_seed(1), &meta, &path).unwrap();
    let proto = proto(&std::fs::read(&path).unwrap());
    assert_eq!((proto.ir_version, proto.producer_name.as_str()), (8, "cnn"));
    assert_eq!(proto.producer_version, env!("CARGO_PKG_VERSION"));
    let opsets: Vec<(&str, i64)> = proto.opset_import.iter().map(|o| (o.domain.as_str(), o.version)).collect();
    assert_eq!(opsets, [("", 17)]);
    let props = &proto.metadata_props;
    let get = |key: &str| props.iter().find(|p| p.key == key).map(|p| p.value.as_str());
    assert_eq!(get("cnn.model"), Some(LeNet5::DSL));
    assert_eq!(Meta::from_entries(get).unwrap(), meta);
    let graph = proto.graph.unwrap();
    let inputs: Vec<&str> = graph.input.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(inputs, ["input"]);
    // The weights go by their PyTorch names, the count of batch normalisation's batches not at all.
    let mut names: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    names.sort();
    let mut expected: Vec<&str> = LeNet5::TENSORS.iter().map(|t| t.name).collect();
    expected.sort();
    assert_eq!(names, expected);
    let mut nodes: Vec<&str> = graph.node.iter().map(|n| n.name.as_str()).collect();
    nodes.sort();
    nodes.dedup();
    assert_eq!(nodes.len(), graph.node.len(), "node names are unique");
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
