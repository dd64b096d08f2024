//! The parse stage: tokens to the typed model ([`crate::ir`]), arguments included.
//!
//! [`syntax`] reads the grammar (the item, the layer list, blocks); [`layers`] gives each layer
//! its meaning, reading its arguments with [`args`]. A mistake in the grammar stops at once; a
//! bad layer is reported and kept as [`crate::ir::Kind::Invalid`], and the others are still
//! read, so that every bad layer is reported together (and the check reports the mistakes
//! before it).

mod args;
mod file;
mod layers;
mod syntax;

use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::errors::Errors;
use crate::ir::Model;
pub use file::Source;

#[cfg(test)]
pub use layers::LAYER_NAMES;

/// The model in `input`, with the errors of its invalid layers (`None` when there are none);
/// `Err` when the grammar itself is broken.
pub fn parse(input: TokenStream) -> syn::Result<(Model, Option<syn::Error>)> {
    let syntax = syn::parse2::<syntax::ModelSyntax>(input)?;
    let mut errors = Errors::default();
    let layers = layers::lower_list(&syntax.layers, &mut errors);
    let attrs = syntax.attrs.iter().map(ToTokens::to_token_stream).collect();
    let vis = syntax.vis.to_token_stream();
    let mut model = Model::new(attrs, vis, syntax.name, syntax.open.span, layers);
    let errors = errors.finish(()).err();
    let errors = match &syntax.source {
        Some(source) => errors.map(|e| source.annotate(e)),
        None => errors,
    };
    model.source = syntax.source;
    Ok((model, errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_keeps_its_header_and_its_good_layers() {
        let (model, errors) = parse(quote::quote!(#[doc = "A net."] pub struct Net < input(4) rellu fc(2) >)).unwrap();
        assert_eq!(model.name.unwrap().to_string(), "Net");
        assert_eq!(model.attrs.len(), 1);
        assert_eq!(model.vis.to_string(), "pub");
        assert_eq!(crate::ir::list_text(&model.layers), "input(4) ? fc(2)");
        assert!(errors.unwrap().to_string().contains("did you mean `relu`"));
        assert!(parse(quote::quote!(struct Net input(4) >)).is_err());
    }
}
