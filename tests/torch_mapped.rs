//! A torchvision ResNet's weights, named as torchvision names them (`conv1.weight`,
//! `layer1.0.bn1.running_mean`, `layer2.0.downsample.0.weight`, `fc.bias`, ...), loaded into the
//! `cnn!` model of the same layers with one call of `load_mapped`, which pairs the modules by
//! structure and shape; the model then gives PyTorch 2.15's logits.
//!
//! The fixtures come from `python3 scripts/torchvision_fixture.py tests/fixtures` (torchvision
//! 0.29): a ResNet-18 in miniature (widths 4, 8, 16, 32, 64x64 inputs, 10 classes) built from
//! torchvision's `BasicBlock` and forward pass, whose 122 tensor names are those of
//! `torchvision.models.resnet18()`, in the same order, which the file's metadata
//! `state_dict_order` records. The other files of these tests are that file altered: without the
//! order, a tensor removed, reshaped, of another dtype, not finite.

#[path = "common/fixtures.rs"]
mod fixtures;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cnn::io::{load_mapped, load_mapped_with, MapOptions, ORDER_KEY};
use cnn::{cnn, Model, Network};
use fixtures::{fixture, largest_difference, tensor};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

/// torchvision's ResNet-18 layout at a 16th of its widths: what the fixture holds.
macro_rules! tiny_resnet {
    ($name:ident, $classes:tt) => {
        cnn! {
            struct $name <
                input(64x64x3)
                conv(7x7, 4, stride=2, pad=3, bias=false) batchnorm relu
                maxpool(3, stride=2, pad=1)
                residual(conv(3x3, 4, pad=1, bias=false) batchnorm relu conv(3x3, 4, pad=1, bias=false) batchnorm) relu
                residual(conv(3x3, 4, pad=1, bias=false) batchnorm relu conv(3x3, 4, pad=1, bias=false) batchnorm) relu
                residual(
                    conv(3x3, 8, stride=2, pad=1, bias=false) batchnorm relu conv(3x3, 8, pad=1, bias=false) batchnorm,
                    shortcut=conv(1x1, 8, stride=2, bias=false) batchnorm
                ) relu
                residual(conv(3x3, 8, pad=1, bias=false) batchnorm relu conv(3x3, 8, pad=1, bias=false) batchnorm) relu
                residual(
                    conv(3x3, 16, stride=2, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm,
                    shortcut=conv(1x1, 16, stride=2, bias=false) batchnorm
                ) relu
                residual(conv(3x3, 16, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm) relu
                residual(
                    conv(3x3, 32, stride=2, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm,
                    shortcut=conv(1x1, 32, stride=2, bias=false) batchnorm
                ) relu
                residual(conv(3x3, 32, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm) relu
                avgpool(2) fc($classes)
            >
        }
    };
}

tiny_resnet!(TinyResNet, 10);
// The same trunk with a new classifier of 5 classes, as for transfer learning.
tiny_resnet!(NewHead, 5);

cnn! {
    /// The same with one block in the first stage where the file has two of the same shapes.
    struct ShortStage <
        input(64x64x3)
        conv(7x7, 4, stride=2, pad=3, bias=false) batchnorm relu
        maxpool(3, stride=2, pad=1)
        residual(conv(3x3, 4, pad=1, bias=false) batchnorm relu conv(3x3, 4, pad=1, bias=false) batchnorm) relu
        residual(
            conv(3x3, 8, stride=2, pad=1, bias=false) batchnorm relu conv(3x3, 8, pad=1, bias=false) batchnorm,
            shortcut=conv(1x1, 8, stride=2, bias=false) batchnorm
        ) relu
        residual(conv(3x3, 8, pad=1, bias=false) batchnorm relu conv(3x3, 8, pad=1, bias=false) batchnorm) relu
        residual(
            conv(3x3, 16, stride=2, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm,
            shortcut=conv(1x1, 16, stride=2, bias=false) batchnorm
        ) relu
        residual(conv(3x3, 16, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm) relu
        residual(
            conv(3x3, 32, stride=2, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm,
            shortcut=conv(1x1, 32, stride=2, bias=false) batchnorm
        ) relu
        residual(conv(3x3, 32, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm) relu
        avgpool(2) fc(10)
    >
}

const WEIGHTS: &str = "torchvision_tiny.safetensors";

fn partial() -> MapOptions {
    MapOptions { allow_partial: true, ..MapOptions::DEFAULT }
}

/// The fixture's tensors (name, dtype, shape, bytes) in the order of its metadata, and its
/// metadata.
struct File {
    tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
    metadata: HashMap<String, String>,
}

impl File {
    fn fixture() -> File {
        let bytes = std::fs::read(fixture(WEIGHTS)).unwrap();
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        let metadata = header.metadata().clone().unwrap();
        let order: Vec<String> = names_in(&metadata[ORDER_KEY]);
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let tensors = order
            .into_iter()
            .map(|name| {
                let view = st.tensor(&name).unwrap();
                (name, view.dtype(), view.shape().to_vec(), view.data().to_vec())
            })
            .collect();
        File { tensors, metadata }
    }

    fn names(&self) -> Vec<&str> {
        self.tensors.iter().map(|t| t.0.as_str()).collect()
    }

    fn position(&self, name: &str) -> usize {
        self.tensors.iter().position(|t| t.0 == name).unwrap_or_else(|| panic!("no {name}"))
    }

    /// Removes tensor `name`, and from the order.
    fn remove(&mut self, name: &str) {
        let at = self.position(name);
        self.tensors.remove(at);
        self.write_order();
    }

    fn write_order(&mut self) {
        let names: Vec<String> = self.names().iter().map(|n| format!("\"{n}\"")).collect();
        self.metadata.insert(ORDER_KEY.into(), format!("[{}]", names.join(", ")));
    }

    /// Writes the file to `dir/name` and returns its path.
    fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        let views: Vec<(&str, TensorView<'_>)> = self
            .tensors
            .iter()
            .map(|(n, dtype, shape, data)| (n.as_str(), TensorView::new(*dtype, shape.clone(), data).unwrap()))
            .collect();
        let metadata = (!self.metadata.is_empty()).then(|| self.metadata.clone());
        safetensors::serialize_to_file(views, metadata, &path).unwrap();
        path
    }
}

/// The names of a JSON array of plain names, as the fixture script writes them.
fn names_in(json: &str) -> Vec<String> {
    let inner = json.trim().strip_prefix('[').unwrap().strip_suffix(']').unwrap();
    inner.split(',').map(|n| n.trim().trim_matches('"').to_string()).collect()
}

/// The parameters and buffers of a model, to show it unchanged.
fn snapshot<N: Network>(model: &N) -> (Vec<f32>, Vec<f32>) {
    (model.params().to_vec(), model.buffers().to_vec())
}

fn error_of<N: Network>(model: &mut N, path: &Path, options: MapOptions) -> String {
    let before = snapshot(model);
    let e = load_mapped_with(model, path, options).unwrap_err().to_string();
    assert!(snapshot(model) == before, "a refused load changed the model: {e}");
    e
}

#[test]
fn torchvision_weights_load_in_one_call_and_give_pytorchs_logits() {
    let mut model = TinyResNet::with_seed(3);
    let mapping = load_mapped(&mut model, &fixture(WEIGHTS)).unwrap();
    println!("{mapping}");
    assert!(mapping.is_complete() && mapping.by_order);
    // Every tensor, in order, paired with the one torchvision puts at its place.
    let file = File::fixture();
    assert_eq!(mapping.loaded.len(), 122);
    assert_eq!(TinyResNet::TENSORS.len(), 122);
    for (t, theirs) in mapping.loaded.iter().zip(file.names()) {
        assert_eq!(t.theirs, theirs, "{}", t.ours.name);
    }
    for (ours, theirs) in [
        ("0.weight", "conv1.weight"),
        ("1.running_var", "bn1.running_var"),
        ("4.body.0.weight", "layer1.0.conv1.weight"),
        ("6.body.4.num_batches_tracked", "layer1.1.bn2.num_batches_tracked"),
        ("8.shortcut.0.weight", "layer2.0.downsample.0.weight"),
        ("8.shortcut.1.running_mean", "layer2.0.downsample.1.running_mean"),
        ("22.weight", "fc.weight"),
    ] {
        assert_eq!(mapping.theirs(ours), Some(theirs), "{ours}");
    }
    let text = mapping.to_string();
    assert!(text.starts_with("122 tensors of 41 modules loaded, matched by the file's order"), "{text}");
    assert!(
        text.contains("8.shortcut.1   layer2.0.downsample.1  weight, bias, running_mean, running_var [8]"),
        "{text}"
    );

    // PyTorch's logits (not probabilities: both models end in the linear classifier). The f32
    // sums of the two differ in order only: about 1e-6 on logits of about 1.
    let logits = model.forward(&tensor("torchvision_tiny_io.safetensors", "x")).unwrap().to_vec();
    let torch = tensor("torchvision_tiny_io.safetensors", "logits");
    let worst = largest_difference(&logits, &torch);
    let scale = torch.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    println!("largest difference from PyTorch's logits: {worst:e} (largest logit {scale})");
    assert!(worst < 1e-4, "{worst}");
}

#[test]
fn without_the_order_repeated_modules_are_ambiguous() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = File::fixture();
    file.metadata.clear();
    let path = file.write(dir.path(), "no_order.safetensors");
    for options in [MapOptions::DEFAULT, partial()] {
        let e = error_of(&mut TinyResNet::with_seed(1), &path, options);
        assert!(
            e.contains("ambiguous match") && e.contains("state_dict_order") && e.contains("nothing was loaded"),
            "{e}"
        );
        // The first module whose kinds and shapes repeat: the stem's batch normalisation, like
        // layer 1's four.
        assert!(e.contains("the model's `1`, `4.body.1`") && e.contains("`bn1`, `layer1.0.bn1`"), "{e}");
    }
}

#[test]
fn a_new_classifier_is_refused_unless_partial_is_allowed_and_then_keeps_its_values() {
    let path = fixture(WEIGHTS);
    let mut model = NewHead::with_seed(5);
    let e = error_of(&mut model, &path, MapOptions::DEFAULT);
    assert!(
        e.contains("40 of the model's 41 modules and of the file's 41 paired")
            && e.contains("`fc.weight` has shape [10, 32], the model's `22.weight` [5, 32]")
            && e.contains("`fc.bias` has shape [10], the model's `22.bias` [5]")
            && e.contains("allow_partial"),
        "{e}"
    );

    let head = NewHead::TENSORS.iter().find(|t| t.name == "22.weight").unwrap().offset;
    let before = model.params()[head..].to_vec();
    let mapping = load_mapped_with(&mut model, &path, partial()).unwrap();
    println!("{mapping}");
    assert_eq!(mapping.loaded.len(), 120);
    let kept: Vec<&str> = mapping.kept.iter().map(|t| t.name).collect();
    let skipped: Vec<(&str, &[usize])> =
        mapping.skipped.iter().map(|t| (t.name.as_str(), t.shape.as_slice())).collect();
    assert_eq!(kept, ["22.weight", "22.bias"]);
    assert_eq!(skipped, [("fc.weight", &[10, 32][..]), ("fc.bias", &[10][..])]);
    assert!(mapping.to_string().contains("kept as they were"));
    // The trunk is the file's, the classifier as it was.
    let mut full = TinyResNet::new();
    load_mapped(&mut full, &path).unwrap();
    assert!(model.params()[..head] == full.params()[..head]);
    assert!(model.params()[head..] == before[..]);
    assert!(model.buffers() == full.buffers());
}

#[test]
fn a_block_fewer_in_a_stage_of_identical_blocks_is_ambiguous_even_when_partial() {
    let e = error_of(&mut ShortStage::with_seed(1), &fixture(WEIGHTS), partial());
    assert!(e.contains("ambiguous match") && e.contains("more than one way pairing 37 of them"), "{e}");
    // Even the stem's batch normalisation could be followed by any of the stage's blocks.
    assert!(
        e.contains(
            "the model's `1` (weight, bias, running_mean, running_var [4], num_batches_tracked []) could be \
                        loaded from any of the file's `bn1`, `layer1.0.bn1` or `layer1.0.bn2`"
        ),
        "{e}"
    );
}

#[test]
fn a_tensor_of_another_shape_is_named_and_only_its_module_is_skipped_when_partial() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = File::fixture();
    let at = file.position("layer2.0.conv1.weight");
    file.tensors[at].2 = vec![8, 4, 1, 1];
    file.tensors[at].3.truncate(8 * 4 * 4);
    let path = file.write(dir.path(), "reshaped.safetensors");
    let e = error_of(&mut TinyResNet::with_seed(1), &path, MapOptions::DEFAULT);
    assert!(
        e.contains(
            "the model's `8.body.0` and the file's `layer2.0.conv1`, in the same place, differ: \
                    `layer2.0.conv1.weight` has shape [8, 4, 1, 1], the model's `8.body.0.weight` [8, 4, 3, 3]"
        ),
        "{e}"
    );
    let mut model = TinyResNet::with_seed(1);
    let mapping = load_mapped_with(&mut model, &path, partial()).unwrap();
    assert_eq!((mapping.loaded.len(), mapping.kept.len(), mapping.skipped.len()), (121, 1, 1));
    assert_eq!(mapping.kept[0].name, "8.body.0.weight");
}

#[test]
fn a_missing_tensor_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = File::fixture();
    file.remove("layer3.1.bn2.running_var");
    let path = file.write(dir.path(), "missing.safetensors");
    let e = error_of(&mut TinyResNet::with_seed(1), &path, MapOptions::DEFAULT);
    assert!(
        e.contains(
            "the model's `14.body.4` and the file's `layer3.1.bn2`, in the same place, differ: the file has no \
                    `layer3.1.bn2.running_var` (the model's is [16])"
        ),
        "{e}"
    );
}

#[test]
fn a_tensor_of_another_dtype_is_refused_even_when_partial() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = File::fixture();
    let at = file.position("layer1.0.bn1.running_mean");
    let t = &mut file.tensors[at];
    t.1 = Dtype::F64;
    t.3 = t.3.chunks_exact(4).flat_map(|b| (f32::from_le_bytes(b.try_into().unwrap()) as f64).to_le_bytes()).collect();
    let path = file.write(dir.path(), "f64.safetensors");
    for options in [MapOptions::DEFAULT, partial()] {
        let e = error_of(&mut TinyResNet::with_seed(1), &path, options);
        assert!(e.contains("tensor `layer1.0.bn1.running_mean` holds F64 values, expected F32"), "{e}");
    }
    // A count may be i64, as PyTorch keeps it, or f32; a float count of another width is refused.
    let mut file = File::fixture();
    let at = file.position("bn1.num_batches_tracked");
    let t = &mut file.tensors[at];
    (t.1, t.3) = (Dtype::F32, 4.0f32.to_le_bytes().to_vec());
    let path = file.write(dir.path(), "f32_count.safetensors");
    let mut model = TinyResNet::new();
    load_mapped(&mut model, &path).unwrap();
    assert_eq!(model.buffers()[TinyResNet::TENSORS[5].offset], 4.0);
}

#[test]
fn values_that_are_not_finite_are_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = File::fixture();
    let at = file.position("layer4.1.conv2.weight");
    file.tensors[at].3[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
    let path = file.write(dir.path(), "nan.safetensors");
    let e = error_of(&mut TinyResNet::with_seed(1), &path, MapOptions::DEFAULT);
    assert!(e.contains("tensor `layer4.1.conv2.weight` holds NaN at index 2"), "{e}");
    let options = MapOptions { allow_non_finite: true, ..MapOptions::DEFAULT };
    assert!(load_mapped_with(&mut TinyResNet::new(), &path, options).unwrap().is_complete());
}

#[test]
fn order_metadata_must_list_every_tensor_once() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = File::fixture().names().iter().map(|n| format!("\"{n}\"")).collect();
    for (order, expected) in [
        ("conv1.weight".to_string(), "is not a JSON array of tensor names"),
        (format!("[{}]", names[1..].join(",")), "does not list the file's tensor `conv1.weight`"),
        (format!("[{}, \"conv1.weight\"]", names.join(",")), "lists tensor `conv1.weight` twice"),
        (format!("[{}, \"fc.extra\"]", names.join(",")), "lists tensor `fc.extra`, which the file does not hold"),
    ] {
        let mut file = File::fixture();
        file.metadata.insert(ORDER_KEY.into(), order);
        let path = file.write(dir.path(), "order.safetensors");
        let e = error_of(&mut TinyResNet::with_seed(1), &path, partial());
        assert!(e.contains("metadata `state_dict_order`") && e.contains(expected), "{e}");
    }
}

#[test]
fn a_file_of_which_nothing_matches_is_refused_even_when_partial() {
    cnn! { struct Other < input(3) fc(2) softmax > }
    let e = error_of(&mut Other::with_seed(1), &fixture(WEIGHTS), partial());
    assert!(e.contains("none of the file's modules matches one of the model's"), "{e}");
    assert!(e.contains("the model's `0` (weight [2, 3], bias [2]) has no match in the file"), "{e}");
}
