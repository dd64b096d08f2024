//! The generated item: the struct, its inherent methods and its `Network` and `Model` impls (or,
//! for a model with heads, `MultiTask` and the struct of one value per head: [`super::heads`]),
//! assembled from the passes' code and the descriptions.

use proc_macro2::{Ident, TokenStream};
use quote::quote;

use super::describe::{normalises_single_values, Description, TensorKind};
use super::heads::heads_items;
use super::passes::Passes;
use super::program::Program;
use super::{lit, rt};
use crate::check::Checked;
use crate::ir::{list_text, LossKind, Model};
use cnn_shape::Shape;

/// A shape as the expression that builds it.
pub fn shape_tokens(shape: Shape) -> TokenStream {
    let (w, h, d) = (lit(shape.w), lit(shape.h), lit(shape.d));
    if shape.flat {
        quote!(::cnn::Shape::vector(#w))
    } else {
        quote!(::cnn::Shape::volume(#w, #h, #d))
    }
}

pub fn loss_tokens(loss: LossKind) -> TokenStream {
    match loss {
        LossKind::CrossEntropy => quote!(::cnn::Loss::CrossEntropy),
        LossKind::Bce => quote!(::cnn::Loss::BinaryCrossEntropy),
        LossKind::Mse => quote!(::cnn::Loss::MeanSquaredError),
    }
}

fn tensor_kind(kind: TensorKind) -> TokenStream {
    match kind {
        TensorKind::Weight => quote!(Weight),
        TensorKind::Bias => quote!(Bias),
        TensorKind::Norm => quote!(Norm),
        TensorKind::Statistic => quote!(Statistic),
        TensorKind::Count => quote!(Count),
    }
}

/// The struct with every impl.
pub fn item(
    model: &Model,
    checked: &Checked,
    program: &Program<'_>,
    description: &Description,
    passes: &Passes,
    name: &Ident,
) -> TokenStream {
    let strukt = strukt(model, program, description, passes, name);
    let network = network_consts(model, checked, program, description);
    let compiled = compiled(program, description, passes);
    let outputs = match checked.heads.is_empty() {
        true => model_items(model, checked, program, name),
        false => heads_items(model, program, description, name),
    };
    quote! {
        #strukt

        impl ::cnn::Network for #name {
            #network
        }

        #outputs

        impl ::cnn::__private::Compiled for #name {
            #compiled
        }
    }
}

/// The struct, its inherent impl and its `Default` and `Debug` impls.
fn strukt(
    model: &Model,
    program: &Program<'_>,
    description: &Description,
    passes: &Passes,
    name: &Ident,
) -> TokenStream {
    let rt = rt();
    let (attrs, vis, doc) = (&model.attrs, &model.vis, description.doc(model));
    let (param_lit, buffer_lit) = (lit(program.params), lit(program.buffers));
    let (consts, checks, workspace) = (&passes.consts, &passes.checks, &passes.workspace);
    quote! {
        #(#attrs)*
        #[doc = #doc]
        #[derive(Clone)]
        #vis struct #name {
            #[doc(hidden)]
            __state: #rt::State,
        }

        #[allow(non_upper_case_globals, clippy::all)]
        impl #name {
            #consts
            #[doc(hidden)]
            const __WORKSPACE: #rt::WorkspaceSizes = #workspace;

            /// A model initialised as PyTorch initialises it by default, from seed 0.
            #vis fn new() -> Self {
                Self::with_seed(0)
            }

            /// A model initialised as PyTorch initialises it by default, from `seed` (which
            /// also seeds its dropout masks).
            #vis fn with_seed(seed: u64) -> Self {
                let (layers, tensors) = (<Self as ::cnn::Network>::LAYERS, <Self as ::cnn::Network>::TENSORS);
                let mut model = Self { __state: #rt::State::new(#param_lit, #buffer_lit, layers, tensors, seed) };
                ::cnn::Network::init(&mut model, seed);
                model
            }
        }

        const _: () = { #checks };

        impl ::core::default::Default for #name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl ::core::fmt::Debug for #name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(::core::stringify!(#name)).field("params", &#param_lit).finish_non_exhaustive()
            }
        }
    }
}

/// The constants of the `Network` impl: the input, the parameters and the layer table.
fn network_consts(model: &Model, checked: &Checked, program: &Program<'_>, description: &Description) -> TokenStream {
    let infos = description.rows.iter().map(|r| {
        let (text, path, shape) = (&r.text, &r.path, shape_tokens(r.output));
        let (at, p, depth) = (lit(r.offset), lit(r.params), lit(r.depth));
        quote!(::cnn::LayerInfo { layer: #text, path: #path, depth: #depth, output: #shape, params: #p, offset: #at })
    });
    let tensors = description.tensors.iter().map(|t| {
        let (name, dims, at, kind) = (&t.name, t.shape.iter().map(|&d| lit(d)), lit(t.offset), tensor_kind(t.kind));
        quote!(::cnn::TensorInfo { name: #name, shape: &[#(#dims),*], offset: #at, kind: ::cnn::TensorKind::#kind })
    });
    let graph = super::graph::graph(&model.layers, checked, description);
    let input = shape_tokens(checked.output(&model.layers[0]));
    let input_lit = lit(program.nodes[0]);
    let (params, buffers, flops) = (lit(program.params), lit(program.buffers), lit(description.flops));
    let min_batch = lit(if normalises_single_values(&model.layers, checked) { 2 } else { 1 });
    let (summary, torch, dsl) = (description.summary(), &description.pytorch, list_text(&model.layers));
    quote! {
        const INPUT: ::cnn::Shape = #input;
        const INPUT_LEN: usize = #input_lit;
        const PARAM_COUNT: usize = #params;
        const BUFFER_COUNT: usize = #buffers;
        const MIN_TRAIN_BATCH: usize = #min_batch;
        const FLOPS_PER_SAMPLE: u64 = #flops;
        const LAYERS: &'static [::cnn::LayerInfo] = &[#(#infos),*];
        const TENSORS: &'static [::cnn::TensorInfo] = &[#(#tensors),*];
        const GRAPH: &'static [::cnn::graph::Node] = #graph;
        const SUMMARY: &'static str = #summary;
        const PYTORCH: &'static str = #torch;
        const DSL: &'static str = #dsl;
    }
}

/// The `Model` impl of a model with one output, and its single-sample methods.
fn model_items(model: &Model, checked: &Checked, program: &Program<'_>, name: &Ident) -> TokenStream {
    let (rt, vis) = (rt(), &model.vis);
    let (input_lit, outputs_lit, loss) = (lit(program.nodes[0]), lit(program.output_len(0)), loss_tokens(checked.loss));
    quote! {
        impl ::cnn::Model for #name {
            const OUTPUT_LEN: usize = #outputs_lit;
            const LOSS: ::cnn::Loss = #loss;
        }

        #[allow(clippy::all)]
        impl #name {
            /// The outputs for one sample: class probabilities for a classifier.
            #vis fn probabilities(&mut self, x: &[f32; #input_lit]) -> [f32; #outputs_lit] {
                let mut out = [0.0; #outputs_lit];
                out.copy_from_slice(#rt::forward_unchecked(self, 1, x));
                out
            }

            /// The most probable class of one sample.
            #vis fn classify(&mut self, x: &[f32; #input_lit]) -> usize {
                #loss.classify(&self.probabilities(x))
            }
        }

        #rt::with_nalgebra! {
            #[allow(clippy::all)]
            impl #name {
                /// [`probabilities`](Self::probabilities) of one sample as a nalgebra vector.
                #vis fn probabilities_vector(
                    &mut self,
                    x: &::cnn::na::nalgebra::SVector<f32, #input_lit>,
                ) -> ::cnn::na::nalgebra::SVector<f32, #outputs_lit> {
                    ::cnn::na::nalgebra::SVector::from_column_slice(#rt::forward_unchecked(self, 1, x.as_slice()))
                }

                /// [`classify`](Self::classify) of one sample as a nalgebra vector.
                #vis fn classify_vector(&mut self, x: &::cnn::na::nalgebra::SVector<f32, #input_lit>) -> usize {
                    #loss.classify(#rt::forward_unchecked(self, 1, x.as_slice()))
                }
            }
        }
    }
}

/// The items of the hidden `Compiled` impl: the state's place, the layers' initialisation and
/// the two passes.
fn compiled(program: &Program<'_>, description: &Description, passes: &Passes) -> TokenStream {
    let rt = rt();
    let (splits, slots, forward, backward) = (&passes.splits, &passes.slots, &passes.forward, &passes.backward);
    let (inits, outputs, losses, penalties) = (&passes.inits, &passes.outputs, &passes.losses, &passes.penalties);
    let activations = program.nodes[1..].iter().zip(&program.writers[1..]).map(|(&len, &writer)| {
        let (row, len) = (lit(description.row_of[writer].unwrap_or(0)), lit(len));
        quote!((#row, #len))
    });
    let output_table = program.outputs.iter().map(|o| {
        let (at, len) = (lit(o.node - 1), lit(program.nodes[o.node]));
        quote!((#at, #len))
    });
    quote! {
        const ACTIVATIONS: &'static [(usize, usize)] = &[#(#activations),*];
        const OUTPUTS: &'static [(usize, usize)] = &[#(#output_table),*];

        fn state(&self) -> &#rt::State {
            &self.__state
        }

        fn state_mut(&mut self) -> &mut #rt::State {
            &mut self.__state
        }

        fn init_layers(&mut self, mut __rng: #rt::Rng) {
            let __state = &mut self.__state;
            #inits
        }

        fn forward_pass(&mut self, __n: usize, __x: &[f32], __train: ::core::option::Option<u64>) {
            let __state = &mut self.__state;
            let __ws = __state.workspace.parts(__n, &Self::__WORKSPACE);
            #splits
            #forward
            #outputs
        }

        fn backward_pass<'__t>(
            &mut self,
            __n: usize,
            __x: &[f32],
            __targets: &dyn ::core::ops::Fn(usize) -> ::cnn::Targets<'__t>,
        ) -> f32 {
            let __state = &mut self.__state;
            let __ws = __state.workspace.training_parts(__n, &Self::__WORKSPACE);
            #splits
            #slots
            let __loss = #losses #penalties;
            #backward
            __loss
        }
    }
}
