//! Models as ONNX files, for inference elsewhere: ONNX Runtime, tract, TensorRT, a browser.
//!
//! The file holds the model in evaluation mode (dropout and `sparsity` are the identity, batch
//! normalisation uses the running statistics) with operator set 17 and IR version 8. Its input
//! is `input`, `f32` of shape `[N, D, H, W]` for a volume (PyTorch's layout, one sample after
//! the other) or `[N, n]` for a vector, `N` being the batch size, left free. Its output is
//! `output`, `[N, n]` (or a volume where the model ends with one); a model with `heads` has
//! one output per head instead, named as the head. The weights are initializers named as in
//! PyTorch's `state_dict` (`0.weight`, `4.body.0.running_mean`, ...).
//!
//! The metadata (`metadata_props`) holds the model's layer list under `cnn.model` and the
//! [`Meta`] given, whose preprocessing a reader applies to raw inputs before running the model
//! ([`Meta`] lists the keys).
//!
//! ```
//! use cnn::{cnn, io::Meta, Network};
//!
//! cnn! { struct Tiny < input(8x8x1) conv(3x3, 4, pad=1) relu pool(2) fc(10) softmax > }
//!
//! let model = Tiny::with_seed(1);
//! let meta = Meta { classes: (0..10).map(|d| d.to_string()).collect(), ..Meta::default() };
//! let path = std::env::temp_dir().join(format!("tiny-{}.onnx", std::process::id()));
//! cnn::onnx::save(&model, &meta, &path)?;
//! assert!(std::fs::metadata(&path)?.len() > 4 * Tiny::PARAM_COUNT as u64);
//! # std::fs::remove_file(&path).ok();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! and in Python, with `onnxruntime` and `numpy`:
//!
//! ```python
//! import json, numpy as np, onnxruntime as ort
//! session = ort.InferenceSession("tiny.onnx")
//! x = np.random.rand(2, 1, 8, 8).astype(np.float32)   # a batch of 2 samples, N x D x H x W
//! probabilities = session.run(None, {"input": x})[0]    # 2 x 10
//! meta = session.get_modelmeta().custom_metadata_map
//! classes = json.loads(meta["cnn.classes"])
//! print(meta["cnn.model"], [classes[i] for i in probabilities.argmax(1)])
//! ```

mod graph;
mod proto;
mod quant;
#[cfg(test)]
mod tests;

pub use quant::{quantized_to_bytes, save_quantized};

use std::path::Path;

use crate::data::file_error;
use crate::io::{model_depth, model_outputs, write_atomic, Meta, MODEL_KEY};
use crate::{Error, Network, Result, Shape};
use graph::{Lowering, OnnxNode, Weights, INPUT};
use proto::Message;

/// The ONNX IR version of the files written.
const IR_VERSION: i64 = 8;
/// The version of the default (`ai.onnx`) operator set the files use.
const OPSET_VERSION: i64 = 17;
/// The name of the graph in every file.
const GRAPH_NAME: &str = "cnn";
/// The largest file a protobuf reader accepts (2 GiB).
const MAX_BYTES: usize = i32::MAX as usize;

/// The model as the bytes of an ONNX file, with `meta` in its metadata.
///
/// An `Err` when `meta` does not fit the model (as [`crate::io::save_model`] checks it), when a
/// parameter or running statistic is not finite, or when the file would pass the 2 GiB that
/// protobuf readers accept.
pub fn to_bytes<M: Network>(model: &M, meta: &Meta) -> Result<Vec<u8>> {
    meta.check(model_depth::<M>(), model_outputs::<M>())
        .map_err(|reason| Error::InvalidArgument { name: "meta", reason })?;
    let weights = Weights { tensors: M::TENSORS, params: model.params(), buffers: model.buffers() };
    let mut props = vec![(MODEL_KEY.to_string(), M::DSL.to_string())];
    props.extend(meta.entries());
    model_bytes(M::GRAPH, M::INPUT, weights, &props)
}

/// Writes the model to the ONNX file `path`, with `meta` in its metadata; see [`to_bytes`].
///
/// The write is atomic, as [`crate::io`]'s are: a temporary file renamed over `path`.
pub fn save<M: Network>(model: &M, meta: &Meta, path: &Path) -> Result<()> {
    let bytes = to_bytes(model, meta).map_err(|e| match e {
        Error::InvalidArgument { reason, .. } => file_error(path, format!("cannot save: {reason}")),
        other => other,
    })?;
    write_atomic(path, &bytes)
}

/// The ModelProto of the operation tree `graph` reading `input`, with the tensors of
/// `weights` and the metadata `props`.
fn model_bytes(
    graph: &[crate::graph::Node],
    input: Shape,
    weights: Weights<'_>,
    props: &[(String, String)],
) -> Result<Vec<u8>> {
    let mut lowering = Lowering::new(weights);
    let outputs = lowering.lower(graph)?;
    let nodes: Vec<Message> = lowering.nodes.iter().map(node).collect();
    encode(&nodes, &lowering.initializers, input, &outputs, props)
}

/// The ModelProto of `nodes` and `initializers` reading `input` and writing `outputs`, with
/// the metadata `props`.
fn encode(
    nodes: &[Message],
    initializers: &[Message],
    input: Shape,
    outputs: &[(String, Shape)],
    props: &[(String, String)],
) -> Result<Vec<u8>> {
    let outputs: Vec<Message> = outputs.iter().map(|(name, shape)| proto::value_info(name, *shape)).collect();
    let graph = Message::new()
        .messages(1, nodes)
        .string(2, GRAPH_NAME)
        .messages(5, initializers)
        .message(11, &proto::value_info(INPUT, input))
        .messages(12, &outputs);
    let props: Vec<Message> = props.iter().map(|(k, v)| proto::entry(k, v)).collect();
    let bytes = Message::new()
        .int(1, IR_VERSION)
        .string(2, "cnn")
        .string(3, env!("CARGO_PKG_VERSION"))
        .message(7, &graph)
        .message(8, &proto::opset("", OPSET_VERSION))
        .messages(14, &props)
        .into_bytes();
    if bytes.len() > MAX_BYTES {
        let reason = format!("its ONNX file would hold {} bytes, more than the 2 GiB protobuf allows", bytes.len());
        return Err(Error::InvalidArgument { name: "model", reason });
    }
    Ok(bytes)
}

fn node(n: &OnnxNode) -> Message {
    proto::node(&n.name, n.op, &n.inputs, &n.output, &n.attrs)
}
