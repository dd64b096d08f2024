//! Lowering hand-written operation trees; whole generated models are written by the `onnx`
//! integration test and run in ONNX Runtime by `scripts/check_onnx.py`.

use super::proto::tests::{fields, Field};
use super::*;
use crate::graph::{Hw, Node, Op};
use crate::{TensorInfo, TensorKind};

const ONE: Hw = Hw { h: 1, w: 1 };
const THREE: Hw = Hw { h: 3, w: 3 };

const fn node(op: Op, path: &'static str, input: Shape, output: Shape) -> Node {
    Node { op, path, input, output }
}

/// `input(4x4x2) conv(3x3, 3, pad=1) lrn(2) fc(2, bias=false) dropout(0.5)`.
static PLAIN: &[Node] = &[
    node(Op::Input, "", Shape::volume(4, 4, 2), Shape::volume(4, 4, 2)),
    node(
        Op::Conv { filter: THREE, filters: 3, stride: ONE, pad: ONE, bias: true, groups: 1 },
        "0",
        Shape::volume(4, 4, 2),
        Shape::volume(4, 4, 3),
    ),
    node(Op::Lrn { size: 2, alpha: 1e-4, beta: 0.75, k: 1.0 }, "1", Shape::volume(4, 4, 3), Shape::volume(4, 4, 3)),
    node(Op::Fc { out: 2, bias: false }, "2", Shape::volume(4, 4, 3), Shape::vector(2)),
    node(Op::Dropout { p: 0.5 }, "3", Shape::vector(2), Shape::vector(2)),
];

static PLAIN_TENSORS: &[TensorInfo] = &[
    TensorInfo { name: "0.weight", shape: &[3, 2, 3, 3], offset: 0, kind: TensorKind::Weight },
    TensorInfo { name: "0.bias", shape: &[3], offset: 54, kind: TensorKind::Bias },
    TensorInfo { name: "2.weight", shape: &[2, 48], offset: 57, kind: TensorKind::Weight },
];

/// The heads `a: fc(1)`, `b: dropout(0.1)` and `c: dropout(0.2)` on 2 values.
const HEAD_CHAINS: &[&[Node]] = &[
    &[node(Op::Fc { out: 1, bias: true }, "1.a.0", Shape::vector(2), Shape::vector(1))],
    &[node(Op::Dropout { p: 0.1 }, "1.b.0", Shape::vector(2), Shape::vector(2))],
    &[node(Op::Dropout { p: 0.2 }, "1.c.0", Shape::vector(2), Shape::vector(2))],
];

/// `input(3) fc(2) heads(...)` with [`HEAD_CHAINS`] named `names`.
const fn heads(names: &'static [&'static str]) -> [Node; 3] {
    [
        node(Op::Input, "", Shape::vector(3), Shape::vector(3)),
        node(Op::Fc { out: 2, bias: true }, "0", Shape::vector(3), Shape::vector(2)),
        node(Op::Heads { names, heads: HEAD_CHAINS }, "1", Shape::vector(2), Shape::vector(2)),
    ]
}

static HEADS: [Node; 3] = heads(&["a", "b", "c"]);
static HEAD_NAMED_INPUT: [Node; 3] = heads(&["a", "input", "c"]);

static HEADS_TENSORS: &[TensorInfo] = &[
    TensorInfo { name: "0.weight", shape: &[2, 3], offset: 0, kind: TensorKind::Weight },
    TensorInfo { name: "0.bias", shape: &[2], offset: 6, kind: TensorKind::Bias },
    TensorInfo { name: "1.a.0.weight", shape: &[1, 2], offset: 8, kind: TensorKind::Weight },
    TensorInfo { name: "1.a.0.bias", shape: &[1], offset: 10, kind: TensorKind::Bias },
];

fn lowered(graph: &[Node], tensors: &'static [TensorInfo], params: &[f32]) -> Result<(Vec<OnnxNode>, Vec<String>)> {
    let mut lowering = Lowering::new(Weights { tensors, params, buffers: &[] });
    let outputs = lowering.lower(graph)?;
    Ok((lowering.nodes, outputs.into_iter().map(|(name, _)| name).collect()))
}

/// The name and the `raw_data` of an encoded initializer.
fn initializer(message: &Message) -> (String, Vec<u8>) {
    let bytes = message.clone().into_bytes();
    let text = |number| {
        fields(&bytes).into_iter().find_map(|(n, f)| match f {
            Field::Bytes(b) if n == number => Some(b.to_vec()),
            _ => None,
        })
    };
    (String::from_utf8(text(8).unwrap()).unwrap(), text(9).unwrap())
}

#[test]
fn layers_become_nodes_and_an_even_lrn_a_band_of_ones() {
    let params: Vec<f32> = (0..153).map(|i| i as f32 / 100.0).collect();
    let mut lowering = Lowering::new(Weights { tensors: PLAIN_TENSORS, params: &params, buffers: &[] });
    assert_eq!(lowering.lower(PLAIN).unwrap(), [("output".to_string(), Shape::vector(2))]);
    let ops: Vec<&str> = lowering.nodes.iter().map(|n| n.op).collect();
    assert_eq!(ops, ["Conv", "Mul", "Conv", "Mul", "Add", "Pow", "Div", "Flatten", "Gemm"]);
    // Dropout is the identity: the fully connected layer writes the output.
    let gemm = lowering.nodes.last().unwrap();
    assert_eq!((gemm.name.as_str(), gemm.output.as_str()), ("2/Gemm", "output"));
    assert_eq!(gemm.inputs, ["2/Flatten", "2.weight"]);
    assert_eq!(lowering.nodes[0].inputs, ["input", "0.weight", "0.bias"]);
    let inits: Vec<(String, Vec<u8>)> = lowering.initializers.iter().map(initializer).collect();
    let (_, band) = inits.iter().find(|(name, _)| name == "1/window").unwrap();
    let band: Vec<f32> = band.chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    // Channel c sums channels c − 1 and c, as PyTorch's LocalResponseNorm(2) does.
    assert_eq!(band, [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]);
    let (_, bias) = inits.iter().find(|(name, _)| name == "0.bias").unwrap();
    assert_eq!(bias[..4], 0.54f32.to_le_bytes());
}

#[test]
fn heads_are_outputs_named_as_written() {
    let params = [0.5; 11];
    let (nodes, outputs) = lowered(&HEADS, HEADS_TENSORS, &params).unwrap();
    assert_eq!(outputs, ["a", "b", "c"]);
    let ops: Vec<(&str, &str)> = nodes.iter().map(|n| (n.op, n.output.as_str())).collect();
    // Heads `b` and `c` are the trunk's output: copies, as the trunk's value feeds head `a`.
    assert_eq!(ops, [("Gemm", "0/Gemm"), ("Gemm", "a"), ("Identity", "b"), ("Identity", "c")]);
    assert_eq!(nodes[2].inputs, ["0/Gemm"]);
    let error = lowered(&HEAD_NAMED_INPUT, HEADS_TENSORS, &params).unwrap_err();
    assert!(error.to_string().contains("output `input`"), "{error}");
}

#[test]
fn missing_and_non_finite_tensors_are_refused() {
    let error = lowered(&HEADS, &HEADS_TENSORS[..2], &[0.5; 11]).unwrap_err();
    assert!(error.to_string().contains("no tensor `1.a.0.weight`"), "{error}");
    let error = lowered(&HEADS, HEADS_TENSORS, &[0.5; 10]).unwrap_err();
    assert!(error.to_string().contains("past the end"), "{error}");
    let mut params = [0.5; 11];
    params[7] = f32::NAN;
    let error = lowered(&HEADS, HEADS_TENSORS, &params).unwrap_err();
    assert!(error.to_string().contains("`0.bias` holds NaN at index 1"), "{error}");
}

#[test]
fn the_model_holds_its_versions_graph_and_metadata() {
    let weights = Weights { tensors: HEADS_TENSORS, params: &[0.5; 11], buffers: &[] };
    let props = [("cnn.model".to_string(), "input(3) ...".to_string())];
    let bytes = model_bytes(&HEADS, Shape::vector(3), weights, &props).unwrap();
    let top = fields(&bytes);
    let numbers: Vec<u32> = top.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [1, 2, 3, 7, 8, 14]);
    assert_eq!(top[0].1, Field::Varint(8));
    assert_eq!(top[1].1, Field::Bytes(b"cnn"));
    let Field::Bytes(opset) = top[4].1 else { panic!("opset") };
    assert_eq!(fields(opset), [(1, Field::Bytes(b"")), (2, Field::Varint(17))]);
    let Field::Bytes(entry) = top[5].1 else { panic!("metadata") };
    assert_eq!(fields(entry), [(1, Field::Bytes(b"cnn.model")), (2, Field::Bytes(b"input(3) ..."))]);
    let Field::Bytes(graph) = top[3].1 else { panic!("graph") };
    let count = |number| fields(graph).iter().filter(|(n, _)| *n == number).count();
    // 4 nodes, a name, 4 initializers, 1 input, 3 outputs.
    assert_eq!([1, 2, 5, 11, 12].map(count), [4, 1, 4, 1, 3]);
}
