//! The model's operation tree (`cnn::graph`), the `GRAPH` constant: every layer but `loss`,
//! with its arguments, shapes and PyTorch module path.

use proc_macro2::TokenStream;
use quote::quote;

use super::describe::Description;
use super::item::shape_tokens;
use super::lit;
use crate::check::Checked;
use crate::ir::{ActKind, Float, Kind, Layer, Pair, PoolOp};

/// The nodes of `layers`, as a `&'static [::cnn::graph::Node]` expression.
pub fn graph(layers: &[Layer], checked: &Checked, description: &Description) -> TokenStream {
    let nodes = layers.iter().filter(|l| !matches!(l.kind, Kind::Loss(..))).map(|layer| {
        let path = description.row_of[layer.id].map_or("", |row| description.rows[row].path.as_str());
        let (input, output) = (shape_tokens(checked.input(layer)), shape_tokens(checked.output(layer)));
        let op = op(layer, checked, description);
        quote!(::cnn::graph::Node { op: #op, path: #path, input: #input, output: #output })
    });
    quote!(&[#(#nodes),*])
}

fn hw(pair: Pair) -> TokenStream {
    let (h, w) = (lit(pair.h), lit(pair.w));
    quote!(::cnn::graph::Hw { h: #h, w: #w })
}

/// A number with a fraction, by its bits (exact, and valid for any value).
fn float(value: Float) -> TokenStream {
    let bits = proc_macro2::Literal::u32_suffixed(value.0.to_bits());
    quote!(f32::from_bits(#bits))
}

fn op(layer: &Layer, checked: &Checked, description: &Description) -> TokenStream {
    let branch = |layers: &[Layer]| graph(layers, checked, description);
    match &layer.kind {
        Kind::InputVolume { .. } | Kind::InputFlat { .. } => quote!(::cnn::graph::Op::Input),
        Kind::Conv { filter, filters, stride, pad, bias, groups } => {
            let (filter, stride, pad, filters, groups) =
                (hw(*filter), hw(*stride), hw(*pad), lit(*filters), lit(*groups));
            quote!(::cnn::graph::Op::Conv {
                filter: #filter, filters: #filters, stride: #stride, pad: #pad, bias: #bias, groups: #groups
            })
        }
        Kind::Pool { op, window, stride, pad } => {
            let kind = match op {
                PoolOp::Max => quote!(Max),
                PoolOp::Avg => quote!(Avg),
                PoolOp::L2 => quote!(L2),
            };
            let (window, stride, pad) = (hw(*window), hw(*stride), hw(*pad));
            quote!(::cnn::graph::Op::Pool {
                kind: ::cnn::graph::PoolKind::#kind, window: #window, stride: #stride, pad: #pad
            })
        }
        Kind::Fc { out, bias } => {
            let out = lit(*out);
            quote!(::cnn::graph::Op::Fc { out: #out, bias: #bias })
        }
        Kind::Act(act) => {
            let act = match act {
                ActKind::Relu => quote!(Relu),
                ActKind::Relu6 => quote!(Relu6),
                ActKind::LeakyRelu(a) => {
                    let a = float(*a);
                    quote!(LeakyRelu(#a))
                }
                ActKind::Sigmoid => quote!(Sigmoid),
                ActKind::Tanh => quote!(Tanh),
            };
            quote!(::cnn::graph::Op::Activation(::cnn::graph::Activation::#act))
        }
        Kind::Softmax => quote!(::cnn::graph::Op::Softmax),
        Kind::Dropout { p } => {
            let p = float(*p);
            quote!(::cnn::graph::Op::Dropout { p: #p })
        }
        Kind::Sparsity { lambda } => {
            let lambda = float(*lambda);
            quote!(::cnn::graph::Op::Sparsity { lambda: #lambda })
        }
        Kind::BatchNorm => quote!(::cnn::graph::Op::BatchNorm),
        Kind::Lrn { size, alpha, beta, k } => {
            let (size, alpha, beta, k) = (lit(*size), float(*alpha), float(*beta), float(*k));
            quote!(::cnn::graph::Op::Lrn { size: #size, alpha: #alpha, beta: #beta, k: #k })
        }
        Kind::Residual => {
            let (body, shortcut) = (branch(layer.body()), branch(layer.shortcut()));
            quote!(::cnn::graph::Op::Residual { body: #body, shortcut: #shortcut })
        }
        Kind::Concat => {
            let branches = layer.branches.iter().map(|b| branch(b));
            quote!(::cnn::graph::Op::Concat { branches: &[#(#branches),*] })
        }
        Kind::Heads { names } => {
            let names = names.iter().map(|n| n.to_string());
            let heads = layer.branches.iter().map(|b| branch(b));
            quote!(::cnn::graph::Op::Heads { names: &[#(#names),*], heads: &[#(#heads),*] })
        }
        // Never reached: `loss` layers are filtered out and an invalid model is not generated.
        Kind::Loss(..) | Kind::Invalid => quote!(::cnn::graph::Op::Input),
    }
}
