//! What a model ending in `heads` has instead of one output: a struct with one field per head
//! (`NameHeads<T>`), the table of its heads and its `MultiTask` impl.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use super::describe::Description;
use super::item::loss_tokens;
use super::lit;
use super::program::Program;
use crate::ir::{Kind, Model};

/// The name of the struct holding one value per head of model `name`.
pub fn heads_struct(name: &Ident) -> Ident {
    format_ident!("{}Heads", name)
}

/// The head struct, its `PerHead` impl, the `MultiTask` impl and the single-sample methods of a
/// model whose last layer is `heads`.
pub fn heads_items(model: &Model, program: &Program<'_>, description: &Description, name: &Ident) -> TokenStream {
    let last = model.layers.last().expect("a model with heads has layers");
    let Kind::Heads { names } = &last.kind else { unreachable!("the last layer is `heads`") };
    let (vis, strukt) = (&model.vis, heads_struct(name));
    let infos = names.iter().zip(&last.branches).enumerate().map(|(i, (head, layers))| {
        let start = description.row_of[layers[0].id].expect("a head starts with a layer that has a row");
        let end = match last.branches.get(i + 1) {
            Some(next) => description.row_of[next[0].id].expect("a head starts with a layer that has a row"),
            None => description.rows.len(),
        };
        let output = program.outputs[i];
        let (text, len, loss, weight) =
            (head.to_string(), lit(program.output_len(i)), loss_tokens(output.loss), output.weight);
        let (start, end) = (lit(start), lit(end));
        quote!(::cnn::HeadInfo { name: #text, layers: #start..#end, output_len: #len, loss: #loss, weight: #weight })
    });
    let per_head = per_head_struct(vis, name, names);
    let input_lit = lit(program.nodes[0]);
    quote! {
        #per_head

        impl ::cnn::MultiTask for #name {
            const HEADS: &'static [::cnn::HeadInfo] = &[#(#infos),*];
            type Heads<T: ::core::marker::Send + ::core::marker::Sync> = #strukt<T>;
        }

        #[allow(clippy::all)]
        impl #name {
            /// The most probable class of one sample, by head.
            #vis fn classify(&mut self, x: &[f32; #input_lit]) -> #strukt<usize> {
                ::cnn::__private::classify_heads(self, x)
            }
        }
    }
}

/// The struct `NameHeads<T>` of model `name`, with a field per head of `names`, and its
/// `PerHead` impl.
pub fn per_head_struct(vis: &TokenStream, name: &Ident, names: &[Ident]) -> TokenStream {
    let strukt = heads_struct(name);
    let count = lit(names.len());
    let indices: Vec<_> = (0..names.len()).map(lit).collect();
    let doc = format!(
        "One value per head of [`{name}`], in the order written: its outputs, targets, predictions or evaluations, by the head's name."
    );
    let fields = names.iter().map(|n| {
        let doc = format!("The value of head `{n}`.");
        quote!(#[doc = #doc] pub #n: T)
    });
    quote! {
        #[doc = #doc]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        #vis struct #strukt<T> {
            #(#fields),*
        }

        impl<T> ::cnn::PerHead<T> for #strukt<T> {
            const COUNT: usize = #count;

            fn get(&self, head: usize) -> ::core::option::Option<&T> {
                match head {
                    #(#indices => ::core::option::Option::Some(&self.#names),)*
                    _ => ::core::option::Option::None,
                }
            }

            fn get_mut(&mut self, head: usize) -> ::core::option::Option<&mut T> {
                match head {
                    #(#indices => ::core::option::Option::Some(&mut self.#names),)*
                    _ => ::core::option::Option::None,
                }
            }

            fn from_fn(mut f: impl ::core::ops::FnMut(usize) -> T) -> Self {
                #strukt { #(#names: f(#indices)),* }
            }
        }
    }
}
