//! The code of the passes: a constant per kernel step (its runtime layer, with a compile-time
//! check that the runtime agrees on its sizes), the forward calls, and the backward calls over
//! the gradient slots that [`Backward`] planned.

use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote};

use super::item::loss_tokens;
use super::program::{Back, Backward, Dx, Kernel, Op, Program};
use super::{lit, rt};
use crate::ir::{ActKind, Kind, Pair, PoolOp};

/// The code of both passes.
pub struct Passes {
    /// The kernel constants of the model's inherent impl.
    pub consts: TokenStream,
    /// Compile-time checks that the runtime's layer sizes are the macro's.
    pub checks: TokenStream,
    /// The workspace sizes, a `WorkspaceSizes` value.
    pub workspace: TokenStream,
    /// Splits the workspace parts `__ws` into node buffers `__a{k}`, the outputs `__out{i}` (one
    /// per head) and the kernels' states `__s{i}`.
    pub splits: TokenStream,
    /// Splits the gradient part into the slots `__g{k}`.
    pub slots: TokenStream,
    /// The forward calls.
    pub forward: TokenStream,
    /// The backward calls, after the losses' gradients are in their slots.
    pub backward: TokenStream,
    /// The initialisation of every layer with parameters or buffers, from `__rng`.
    pub inits: TokenStream,
    /// The outputs from their nodes (softmax, sigmoid or a copy), at the end of the forward
    /// pass.
    pub outputs: TokenStream,
    /// The training loss: the sum of the outputs' weighted losses against `__targets(i)`, each
    /// leaving its gradient in its slot.
    pub losses: TokenStream,
    /// The sparsity penalties of the training pass, each as `+ penalty`, to add to the loss.
    pub penalties: TokenStream,
}

/// The activation tokens of an activation (the identity for `None`).
pub fn act_tokens(act: Option<ActKind>) -> TokenStream {
    let rt = rt();
    match act {
        None => quote!(#rt::Act::Identity),
        Some(ActKind::Relu) => quote!(#rt::Act::Relu),
        Some(ActKind::Relu6) => quote!(#rt::Act::Relu6),
        Some(ActKind::LeakyRelu(a)) => {
            let a = a.0;
            quote!(#rt::Act::LeakyRelu(#a))
        }
        Some(ActKind::Sigmoid) => quote!(#rt::Act::Sigmoid),
        Some(ActKind::Tanh) => quote!(#rt::Act::Tanh),
    }
}

/// The runtime layer of a kernel step: its type and its value.
pub fn kernel_tokens(kernel: &Kernel<'_>) -> (TokenStream, TokenStream) {
    let rt = rt();
    let input = kernel.input;
    let (d, h, w, len) = (lit(input.d), lit(input.h), lit(input.w), lit(input.len()));
    let act = act_tokens(kernel.act);
    let Some(layer) = kernel.layer else {
        return (quote!(#rt::Activation<#len>), quote!(#rt::Activation { act: #act }));
    };
    match &layer.kind {
        Kind::Conv { filter, filters, stride, pad, bias, groups } => {
            let (k, fh, fw) = (lit(*filters), lit(filter.h), lit(filter.w));
            let (sh, sw, ph, pw) = (lit(stride.h), lit(stride.w), lit(pad.h), lit(pad.w));
            // Ungrouped convolutions keep the kernel's shorter form (its groups default to 1).
            let groups = match *groups {
                1 => quote!(),
                g => {
                    let g = lit(g);
                    quote!(, #g)
                }
            };
            (
                quote!(#rt::Conv2d<#d, #h, #w, #k, #fh, #fw, #sh, #sw, #ph, #pw, #bias #groups>),
                quote!(#rt::Conv2d { act: #act }),
            )
        }
        Kind::Pool { op, window, stride, pad } => {
            let (kh, kw, sh, sw) = (lit(window.h), lit(window.w), lit(stride.h), lit(stride.w));
            let name = match op {
                PoolOp::Max => format_ident!("MaxPool2d"),
                PoolOp::Avg => format_ident!("AvgPool2d"),
                PoolOp::L2 => format_ident!("L2Pool2d"),
            };
            // Unpadded pools keep the kernels' shorter form (their padding defaults to 0).
            let padding = match *pad == Pair::square(0) {
                true => quote!(),
                false => {
                    let (ph, pw) = (lit(pad.h), lit(pad.w));
                    quote!(, #ph, #pw)
                }
            };
            (quote!(#rt::#name<#d, #h, #w, #kh, #kw, #sh, #sw #padding>), quote!(#rt::#name))
        }
        Kind::Fc { out, bias } => {
            let out = lit(*out);
            (quote!(#rt::Linear<#len, #out, #bias>), quote!(#rt::Linear { act: #act }))
        }
        Kind::Act(a) => {
            let a = act_tokens(Some(*a));
            (quote!(#rt::Activation<#len>), quote!(#rt::Activation { act: #a }))
        }
        Kind::Dropout { p } => {
            let p = p.0;
            (quote!(#rt::Dropout<#len>), quote!(#rt::Dropout { p: #p }))
        }
        Kind::Sparsity { lambda } => {
            let lambda = lambda.0;
            (quote!(#rt::Sparsity<#len>), quote!(#rt::Sparsity { lambda: #lambda }))
        }
        Kind::BatchNorm => {
            let (c, s) = input.channels();
            let (c, s) = (lit(c), lit(s));
            (quote!(#rt::BatchNorm<#c, #s>), quote!(#rt::BatchNorm { act: #act }))
        }
        Kind::Lrn { size, alpha, beta, k } => {
            let (c, s) = input.channels();
            let (c, s, size, alpha, beta, k) = (lit(c), lit(s), lit(*size), alpha.0, beta.0, k.0);
            (quote!(#rt::Lrn<#c, #s>), quote!(#rt::Lrn { size: #size, alpha: #alpha, beta: #beta, k: #k }))
        }
        Kind::Residual
        | Kind::Concat
        | Kind::Heads { .. }
        | Kind::Invalid
        | Kind::InputVolume { .. }
        | Kind::InputFlat { .. }
        | Kind::Softmax
        | Kind::Loss(..) => unreachable!("not a kernel"),
    }
}

fn layer_const(op: usize) -> Ident {
    format_ident!("__LAYER{}", op)
}

fn size_const(op: usize) -> Ident {
    format_ident!("__SIZES{}", op)
}

fn state_ident(op: usize) -> Ident {
    format_ident!("__s{}", op)
}

fn slot_ident(slot: usize) -> Ident {
    format_ident!("__g{}", slot)
}

/// A node's activations: the batch `__x` for node 0, else the buffer `__a{node}`.
fn node_tokens(node: usize) -> TokenStream {
    if node == 0 {
        quote!(__x)
    } else {
        let a = format_ident!("__a{}", node);
        quote!(&*#a)
    }
}

/// The parameter and buffer ranges of each kernel step, by step index.
type Ranges = Vec<Option<((Literal, Literal), (Literal, Literal))>>;

fn ranges(program: &Program<'_>) -> Ranges {
    let (mut p, mut b) = (0, 0);
    let mut ranges = Vec::with_capacity(program.ops.len());
    for op in &program.ops {
        ranges.push(match op {
            Op::Layer { kernel, .. } => {
                let range = ((lit(p), lit(p + kernel.params)), (lit(b), lit(b + kernel.buffers)));
                (p, b) = (p + kernel.params, b + kernel.buffers);
                Some(range)
            }
            Op::Add { .. } | Op::Concat { .. } => None,
        });
    }
    ranges
}

/// The kernel steps with their index.
fn kernels<'p, 'a>(program: &'p Program<'a>) -> impl Iterator<Item = (usize, &'p Kernel<'a>)> {
    program.ops.iter().enumerate().filter_map(|(i, op)| match op {
        Op::Layer { kernel, .. } => Some((i, kernel)),
        Op::Add { .. } | Op::Concat { .. } => None,
    })
}

impl Passes {
    /// The code of the passes of `program`, whose model is `name`.
    pub fn of(program: &Program<'_>, backward: &Backward, name: &Ident) -> Self {
        let ranges = ranges(program);
        let (consts, checks) = constants(program, name);
        let (outputs, losses) = outputs(program, backward);
        Passes {
            consts,
            checks,
            workspace: workspace(program, backward.slots),
            splits: splits(program),
            slots: slots(program, backward.slots),
            forward: forward(program, &ranges),
            backward: backward_calls(program, backward, &ranges),
            inits: inits(program, &ranges),
            outputs,
            losses,
            penalties: penalties(program),
        }
    }
}

/// The output functions of the forward pass, and the sum of the weighted losses of the
/// backward pass.
fn outputs(program: &Program<'_>, backward: &Backward) -> (TokenStream, TokenStream) {
    let (mut outputs, mut losses) = (TokenStream::new(), Vec::new());
    for (i, (output, &dz)) in program.outputs.iter().zip(&backward.outputs).enumerate() {
        let (loss, len) = (loss_tokens(output.loss), program.nodes[output.node]);
        let (z, out, k, index, dz) = (node_tokens(output.node), out_ident(i), lit(len), lit(i), slot(dz, len));
        outputs.extend(quote!(#loss.output(__n, #k, #z, #out);));
        losses.push(if output.weight == 1.0 {
            quote!(#loss.loss_and_grad(__n, #k, #z, &*#out, __targets(#index), #dz))
        } else {
            let weight = output.weight;
            quote!(#loss.weighted_loss_and_grad(#weight, __n, #k, #z, &*#out, __targets(#index), #dz))
        });
    }
    (outputs, quote!(#(#losses)+*))
}

/// The outputs of output `i`.
fn out_ident(i: usize) -> Ident {
    format_ident!("__out{}", i)
}

/// The kernel constants, and the checks that the runtime agrees on their sizes.
fn constants(program: &Program<'_>, name: &Ident) -> (TokenStream, TokenStream) {
    let rt = rt();
    let (mut consts, mut checks) = (TokenStream::new(), TokenStream::new());
    for (i, kernel) in kernels(program) {
        let (c, s) = (layer_const(i), size_const(i));
        let (ty, value) = kernel_tokens(kernel);
        consts.extend(quote! {
            #[doc(hidden)]
            const #c: #ty = #value;
            #[doc(hidden)]
            const #s: #rt::LayerSizes = #rt::sizes_of(&Self::#c);
        });
        let (inp, out, p, b) = (lit(kernel.inputs), lit(kernel.outputs), lit(kernel.params), lit(kernel.buffers));
        checks.extend(quote! {
            ::core::assert!(
                #name::#s.inputs == #inp && #name::#s.outputs == #out && #name::#s.params == #p && #name::#s.buffers == #b,
                "cnn!: the runtime's layer sizes differ from the macro's"
            );
        });
    }
    (consts, checks)
}

fn workspace(program: &Program<'_>, slots: usize) -> TokenStream {
    let rt = rt();
    let sizes: Vec<Ident> = kernels(program).map(|(i, _)| size_const(i)).collect();
    let outputs: usize = (0..program.outputs.len()).map(|i| program.output_len(i)).sum();
    let acts = lit(program.nodes[1..].iter().sum::<usize>() + outputs);
    let grad = lit(slots * program.nodes.iter().copied().max().unwrap_or(0));
    quote! {
        #rt::WorkspaceSizes {
            acts: #acts,
            grad: #grad,
            state: 0 #(+ Self::#sizes.state)*,
            scratch: #rt::max_of(&[0 #(, Self::#sizes.scratch)*]),
            partial: #rt::max_of(&[0 #(, Self::#sizes.partial)*]),
        }
    }
}

fn splits(program: &Program<'_>) -> TokenStream {
    let nodes: Vec<Ident> = (1..program.nodes.len()).map(|k| format_ident!("__a{}", k)).collect();
    let lens: Vec<Literal> = program.nodes[1..].iter().map(|&l| lit(l)).collect();
    let (states, sizes): (Vec<Ident>, Vec<Ident>) =
        kernels(program).map(|(i, _)| (state_ident(i), size_const(i))).unzip();
    let outs: Vec<Ident> = (0..program.outputs.len()).map(out_ident).collect();
    let out_lens: Vec<Literal> = (0..program.outputs.len()).map(|i| lit(program.output_len(i))).collect();
    quote! {
        let __rest = __ws.acts;
        #( let (#nodes, __rest) = __rest.split_at_mut(__n * #lens); )*
        #( let (#outs, __rest) = __rest.split_at_mut(__n * #out_lens); )*
        let _ = __rest;
        let __rest = __ws.state;
        #( let (#states, __rest) = __rest.split_at_mut(__n * Self::#sizes.state); )*
        let _ = __rest;
    }
}

fn slots(program: &Program<'_>, count: usize) -> TokenStream {
    let idents: Vec<Ident> = (0..count).map(slot_ident).collect();
    let max = lit(program.nodes.iter().copied().max().unwrap_or(0));
    quote! {
        let __rest = __ws.grad;
        #( let (#idents, __rest) = __rest.split_at_mut(__n * #max); )*
        let _ = __rest;
    }
}

/// Slot `slot` holding a gradient of `len` values per sample.
fn slot(slot: usize, len: usize) -> TokenStream {
    let (s, len) = (slot_ident(slot), lit(len));
    quote!(&mut #s[..__n * #len])
}

fn forward(program: &Program<'_>, ranges: &Ranges) -> TokenStream {
    let rt = rt();
    let calls = program.ops.iter().enumerate().map(|(i, op)| match op {
        Op::Layer { input, output, .. } => {
            let (c, s) = (layer_const(i), state_ident(i));
            let ((plo, phi), (blo, bhi)) = ranges[i].as_ref().expect("a kernel step has ranges");
            let (x, y, index) = (node_tokens(*input), format_ident!("__a{}", output), lit(i));
            quote! {
                #rt::Layer::forward(
                    &Self::#c, __n, #x, #y, &__state.params[#plo..#phi], &mut __state.buffers[#blo..#bhi],
                    __ws.scratch, #s, #rt::mode(__train, #index),
                );
            }
        }
        Op::Add { a, b, output, act } => {
            let (a, b, y, len) =
                (node_tokens(*a), node_tokens(*b), format_ident!("__a{}", output), lit(program.nodes[*output]));
            let act = act_tokens(*act);
            quote!(#rt::add_forward(__n, #len, #a, #b, #y, #act);)
        }
        Op::Concat { inputs, output, act } => {
            let parts = inputs.iter().map(|&i| {
                let (x, len) = (node_tokens(i), lit(program.nodes[i]));
                quote!((#x, #len))
            });
            let (y, act) = (format_ident!("__a{}", output), act_tokens(*act));
            quote!(#rt::concat_forward(__n, &[#(#parts),*], #y, #act);)
        }
    });
    quote!(#(#calls)*)
}

fn backward_calls(program: &Program<'_>, backward: &Backward, ranges: &Ranges) -> TokenStream {
    let rt = rt();
    let calls = backward.steps.iter().map(|step| match *step {
        Back::Layer { op, dy, dx } => {
            let Op::Layer { input, output, .. } = &program.ops[op] else { unreachable!("a kernel step") };
            let (c, s) = (layer_const(op), state_ident(op));
            let ((plo, phi), _) = ranges[op].as_ref().expect("a kernel step has ranges");
            let (x, y, dy) = (node_tokens(*input), node_tokens(*output), slot(dy, program.nodes[*output]));
            let len = program.nodes[*input];
            let (dx, after) = match dx {
                Dx::Skip => (quote!(::core::option::Option::None), quote!()),
                Dx::Write(d) => {
                    let d = slot(d, len);
                    (quote!(::core::option::Option::Some(#d)), quote!())
                }
                Dx::Accumulate { tmp, into } => {
                    let (t, l, len) = (slot(tmp, len), slot(into, len), lit(len));
                    (quote!(::core::option::Option::Some(#t)), quote!(#rt::add_assign(__n, #len, #l, &*#t);))
                }
            };
            quote! {
                #rt::Layer::backward(
                    &Self::#c, __n, #x, #y, #dy, #dx,
                    &__state.params[#plo..#phi], &mut __state.grads[#plo..#phi], __ws.scratch, __ws.partial, &*#s,
                );
                #after
            }
        }
        Back::Add { op, dy, shortcut } => {
            let Op::Add { output, act, .. } = &program.ops[op] else { unreachable!("a sum step") };
            let len = program.nodes[*output];
            let (y, act, len_lit, dy) = (node_tokens(*output), act_tokens(*act), lit(len), slot(dy, len));
            let copy = match shortcut {
                Dx::Skip => quote!(),
                Dx::Write(d) => {
                    let d = slot(d, len);
                    quote!((#d).copy_from_slice(&*#dy);)
                }
                Dx::Accumulate { into, .. } => {
                    let l = slot(into, len);
                    quote!(#rt::add_assign(__n, #len_lit, #l, &*#dy);)
                }
            };
            quote!(#rt::act_backward(__n, #len_lit, #act, #y, #dy); #copy)
        }
        Back::Concat { op, dy, ref parts } => concat_backward(program, op, dy, parts),
    });
    quote!(#(#calls)*)
}

/// The backward of concatenation step `op`, its gradient in slot `dy`, split as `parts` says.
fn concat_backward(program: &Program<'_>, op: usize, dy: usize, parts: &[Dx]) -> TokenStream {
    let rt = rt();
    let Op::Concat { inputs, output, act } = &program.ops[op] else { unreachable!("a concatenation step") };
    let len = program.nodes[*output];
    let (y, act, len_lit, dy) = (node_tokens(*output), act_tokens(*act), lit(len), slot(dy, len));
    let lens = inputs.iter().map(|&i| lit(program.nodes[i]));
    let shares = inputs.iter().zip(parts).map(|(&i, part)| match *part {
        Dx::Skip => quote!(#rt::Share::Skip),
        Dx::Write(d) => {
            let d = slot(d, program.nodes[i]);
            quote!(#rt::Share::Write(#d))
        }
        Dx::Accumulate { into, .. } => {
            let d = slot(into, program.nodes[i]);
            quote!(#rt::Share::Add(#d))
        }
    });
    quote! {
        #rt::act_backward(__n, #len_lit, #act, #y, #dy);
        #rt::concat_backward(__n, &*#dy, &[#(#lens),*], &mut [#(#shares),*]);
    }
}

/// `+ penalty` for each `sparsity` layer, from the state its training forward pass left.
fn penalties(program: &Program<'_>) -> TokenStream {
    let rt = rt();
    let terms = kernels(program).filter_map(|(i, kernel)| match kernel.layer.map(|l| &l.kind) {
        Some(Kind::Sparsity { lambda }) => {
            let (s, len, lambda) = (state_ident(i), lit(kernel.inputs), lambda.0);
            Some(quote!(+ #rt::sparsity_penalty(__n, #len, #lambda, &*#s)))
        }
        _ => None,
    });
    quote!(#(#terms)*)
}

fn inits(program: &Program<'_>, ranges: &Ranges) -> TokenStream {
    let rt = rt();
    let calls = kernels(program).filter(|(_, k)| k.params + k.buffers > 0).map(|(i, _)| {
        let c = layer_const(i);
        let ((plo, phi), (blo, bhi)) = ranges[i].as_ref().expect("a kernel step has ranges");
        quote!(#rt::Layer::init(&Self::#c, &mut __state.params[#plo..#phi], &mut __state.buffers[#blo..#bhi], &mut __rng);)
    });
    quote!(#(#calls)*)
}
