//! The error path: the compile errors plus a stub of the model with the same API, so that
//! code using the model reports nothing more than the real mistake.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, ToTokens};
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Ident, Token, Visibility};

use crate::codegen::{heads_struct, per_head_struct, ANONYMOUS};
use crate::ir::{Kind, Model};

/// The head of an item-form invocation, read on its own when the whole does not parse.
struct Header {
    attrs: Vec<Attribute>,
    vis: Visibility,
    name: Option<Ident>,
}

impl Parse for Header {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let (vis, name) = if input.peek(Token![<]) {
            (Visibility::Inherited, None)
        } else {
            let vis = input.parse()?;
            input.parse::<Token![struct]>()?;
            (vis, Some(input.parse()?))
        };
        input.parse::<TokenStream>()?;
        Ok(Header { attrs, vis, name })
    }
}

/// `error` as compile errors, followed by a stub of the model when its name is known.
pub fn expand(model: Option<&Model>, error: syn::Error, input: &TokenStream) -> TokenStream {
    let errors = error.to_compile_error();
    let header = match model {
        Some(m) => Header {
            attrs: m
                .attrs
                .iter()
                .filter_map(|a| syn::parse::Parser::parse2(Attribute::parse_outer, a.clone()).ok())
                .flatten()
                .collect(),
            vis: syn::parse2(m.vis.clone()).unwrap_or(Visibility::Inherited),
            name: m.name.clone(),
        },
        None => match syn::parse2::<Header>(input.clone()) {
            Ok(header) => header,
            Err(_) => return errors,
        },
    };
    let (input_len, classes) = model.map(known_sizes).unwrap_or((None, None));
    let heads = model.and_then(|m| match m.layers.last().map(|l| &l.kind) {
        Some(Kind::Heads { names }) => Some(names.as_slice()),
        _ => None,
    });
    let stub = stub(&header, input_len, classes, heads);
    if header.name.is_some() {
        let track = model.map(crate::codegen::track).unwrap_or_default();
        quote!(#errors #stub #track)
    } else {
        let name = format_ident!("{}", ANONYMOUS);
        quote!({ #errors #stub #name::new() })
    }
}

/// Input length and class count, where the layers that give them are well formed (a bad layer
/// is left out of the model).
fn known_sizes(model: &Model) -> (Option<usize>, Option<usize>) {
    let kinds: Vec<&Kind> = model.layers.iter().map(|l| &l.kind).filter(|k| **k != Kind::Invalid).collect();
    let input = match kinds.first() {
        Some(Kind::InputVolume { w, h, d }) => w.checked_mul(*h).and_then(|v| v.checked_mul(*d)),
        Some(Kind::InputFlat { n }) => Some(*n),
        _ => None,
    };
    // The outputs are the last `fc`'s when only element-wise layers follow it.
    let classes = kinds
        .iter()
        .rev()
        .find(|k| {
            !matches!(
                k,
                Kind::Act(_)
                    | Kind::Softmax
                    | Kind::Loss(..)
                    | Kind::Dropout { .. }
                    | Kind::Sparsity { .. }
                    | Kind::BatchNorm
            )
        })
        .and_then(|k| match k {
            Kind::Fc { out, .. } => Some(*out),
            _ => None,
        });
    (input, classes)
}

fn stub(header: &Header, input_len: Option<usize>, classes: Option<usize>, heads: Option<&[Ident]>) -> TokenStream {
    let name = header.name.clone().unwrap_or_else(|| format_ident!("{}", ANONYMOUS));
    let vis = &header.vis;
    let docs = header.attrs.iter().filter(|a| a.path().is_ident("doc"));
    let len = |v: Option<usize>| Literal::usize_unsuffixed(v.unwrap_or(0));
    let (input_lit, classes_lit) = (len(input_len), len(classes));
    let traits = stub_traits(&name, &input_lit);
    // Where a size is unknown the single-sample methods accept any, so that calls still check.
    let size = |known: bool, lit: &Literal, generic: TokenStream| match known {
        true => (quote!(), quote!(#lit)),
        false => (quote!(const #generic: usize,), generic),
    };
    let input = size(input_len.is_some(), &input_lit, quote!(__N));
    let outputs = match heads {
        None => single_stub(&name, vis, &input, &size(classes.is_some(), &classes_lit, quote!(__C)), &classes_lit),
        Some(names) => heads_stub(&name, vis, names, &input),
    };
    quote! {
        #(#docs)*
        #[derive(Clone, Debug, Default)]
        #vis struct #name {
            __unusable: (),
        }

        #[allow(dead_code, unused_variables, clippy::all)]
        impl #name {
            #vis fn new() -> Self {
                ::core::unreachable!()
            }
            #vis fn with_seed(seed: u64) -> Self {
                ::core::unreachable!()
            }
        }

        #outputs

        #traits
    }
}

/// The single-sample methods and `Model` impl of the stub of a model with one output, whose
/// input and output sizes are `(generic parameter or nothing, size)`.
fn single_stub(
    name: &Ident,
    vis: &Visibility,
    (in_generic, in_len): &(TokenStream, TokenStream),
    (out_generic, out_len): &(TokenStream, TokenStream),
    classes_lit: &Literal,
) -> TokenStream {
    let vector = |len: &TokenStream| quote!(::cnn::na::nalgebra::SVector<f32, #len>);
    let (in_vector, out_vector) = (vector(in_len), vector(out_len));
    quote! {
        #[allow(dead_code, unused_variables, clippy::all)]
        impl #name {
            #vis fn probabilities<#in_generic #out_generic>(&mut self, x: &[f32; #in_len]) -> [f32; #out_len] {
                ::core::unreachable!()
            }
            #vis fn classify<#in_generic>(&mut self, x: &[f32; #in_len]) -> usize {
                ::core::unreachable!()
            }
        }

        ::cnn::__private::with_nalgebra! {
            #[allow(dead_code, unused_variables, clippy::all)]
            impl #name {
                #vis fn probabilities_vector<#in_generic #out_generic>(&mut self, x: &#in_vector) -> #out_vector {
                    ::core::unreachable!()
                }
                #vis fn classify_vector<#in_generic>(&mut self, x: &#in_vector) -> usize {
                    ::core::unreachable!()
                }
            }
        }

        impl ::cnn::Model for #name {
            const OUTPUT_LEN: usize = #classes_lit;
            const LOSS: ::cnn::Loss = ::cnn::Loss::CrossEntropy;
        }
    }
}

/// The per-head struct, `classify` and `MultiTask` impl of the stub of a model with heads
/// `names`, whose input size is `(generic parameter or nothing, size)`.
fn heads_stub(
    name: &Ident,
    vis: &Visibility,
    names: &[Ident],
    (in_generic, in_len): &(TokenStream, TokenStream),
) -> TokenStream {
    // Each name once: a repeated one is reported already, and must not repeat a field.
    let mut unique: Vec<Ident> = Vec::with_capacity(names.len());
    for n in names {
        if !unique.contains(n) {
            unique.push(n.clone());
        }
    }
    let per_head = per_head_struct(&vis.to_token_stream(), name, &unique);
    let strukt = heads_struct(name);
    quote! {
        #per_head

        #[allow(dead_code, unused_variables, clippy::all)]
        impl #name {
            #vis fn classify<#in_generic>(&mut self, x: &[f32; #in_len]) -> #strukt<usize> {
                ::core::unreachable!()
            }
        }

        impl ::cnn::MultiTask for #name {
            const HEADS: &'static [::cnn::HeadInfo] = &[];
            type Heads<T: ::core::marker::Send + ::core::marker::Sync> = #strukt<T>;
        }
    }
}

/// The trait impls of the stub, with the sizes that are known.
fn stub_traits(name: &Ident, input_lit: &Literal) -> TokenStream {
    quote! {
        #[allow(unused_variables, clippy::all)]
        impl ::cnn::Network for #name {
            const INPUT: ::cnn::Shape = ::cnn::Shape::vector(#input_lit);
            const INPUT_LEN: usize = #input_lit;
            const PARAM_COUNT: usize = 0;
            const BUFFER_COUNT: usize = 0;
            const MIN_TRAIN_BATCH: usize = 1;
            const FLOPS_PER_SAMPLE: u64 = 0;
            const LAYERS: &'static [::cnn::LayerInfo] = &[];
            const TENSORS: &'static [::cnn::TensorInfo] = &[];
            const GRAPH: &'static [::cnn::graph::Node] = &[];
            const SUMMARY: &'static str = "";
            const PYTORCH: &'static str = "";
            const DSL: &'static str = "";
        }

        #[allow(unused_variables, clippy::all)]
        impl ::cnn::__private::Compiled for #name {
            const ACTIVATIONS: &'static [(usize, usize)] = &[];
            const OUTPUTS: &'static [(usize, usize)] = &[];
            fn state(&self) -> &::cnn::__private::State {
                ::core::unreachable!()
            }
            fn state_mut(&mut self) -> &mut ::cnn::__private::State {
                ::core::unreachable!()
            }
            fn init_layers(&mut self, rng: ::cnn::__private::Rng) {
                ::core::unreachable!()
            }
            fn forward_pass(&mut self, n: usize, x: &[f32], train: ::core::option::Option<u64>) {
                ::core::unreachable!()
            }
            fn backward_pass<'__t>(
                &mut self,
                n: usize,
                x: &[f32],
                targets: &dyn ::core::ops::Fn(usize) -> ::cnn::Targets<'__t>,
            ) -> f32 {
                ::core::unreachable!()
            }
        }
    }
}
