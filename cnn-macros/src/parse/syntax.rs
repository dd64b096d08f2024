//! The grammar: the tokens of a `cnn!` invocation as written, before any meaning is given to
//! layer names or arguments (which [`super::layers`] gives).
//!
//! ```text
//! cnn! { #[attr]* vis struct Name < layer* > }     item form
//! cnn!( < layer* > )                               expression form
//! layer := name | name ( tokens )
//!          | residual ( layer* )  |  residual ( layer* , shortcut = layer* )
//!          | concat ( layer+ , layer+ , ... )
//!          | heads ( name : layer+ , name : layer+ , ... )
//! ```

use proc_macro2::{Delimiter, Group, Ident, TokenStream, TokenTree};
use quote::{quote, ToTokens};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Error, LitStr, Token, Visibility};

use super::file::Source;

/// A whole invocation.
pub struct ModelSyntax {
    /// Outer attributes, doc comments included (item form only).
    pub attrs: Vec<Attribute>,
    /// Visibility of the struct (item form only).
    pub vis: Visibility,
    /// The struct's name, or `None` for the expression form.
    pub name: Option<Ident>,
    /// The `<` opening the layer list.
    pub open: Token![<],
    /// The layers in order.
    pub layers: Vec<LayerSyntax>,
    /// The saved model file the layers were read from (`struct Name = "path"`), if any.
    pub source: Option<Source>,
}

/// One layer: a name and, optionally, its parenthesised arguments.
pub struct LayerSyntax {
    /// The layer's name, such as `conv`.
    pub name: Ident,
    /// The parenthesised arguments, if any.
    pub args: Option<Group>,
    /// The layers inside a `residual(...)` block.
    pub block: Option<BlockSyntax>,
    /// The branches of a `concat(...)` block.
    pub branches: Option<Vec<Vec<LayerSyntax>>>,
    /// The named heads of `heads(...)`.
    pub heads: Option<Vec<(Ident, Vec<LayerSyntax>)>>,
}

/// The inside of `residual( body , shortcut = layers )`.
pub struct BlockSyntax {
    /// The block's layers, whose output is added to the shortcut's.
    pub body: Vec<LayerSyntax>,
    /// The `shortcut` keyword and the layers that project the block's input, if given.
    pub shortcut: Option<(Ident, Vec<LayerSyntax>)>,
}

/// The name of the residual block layer.
pub const RESIDUAL: &str = "residual";

/// The name of the block layer that stacks its branches' outputs.
pub const CONCAT: &str = "concat";

/// The name of the layer that ends a multi-task model in named heads.
pub const HEADS: &str = "heads";

/// Layers up to the next top-level comma or the end.
fn layer_list(input: ParseStream) -> syn::Result<Vec<LayerSyntax>> {
    let mut layers = Vec::new();
    while !input.is_empty() && !input.peek(Token![,]) {
        layers.push(input.parse()?);
    }
    Ok(layers)
}

/// The branches of `concat( layers , layers , ... )`, each non-empty (a trailing comma is
/// allowed).
fn branches(input: ParseStream) -> syn::Result<Vec<Vec<LayerSyntax>>> {
    let mut branches = Vec::new();
    while !input.is_empty() {
        let comma = input.peek(Token![,]);
        let branch = layer_list(input)?;
        if branch.is_empty() {
            let span = if comma { input.span() } else { input.cursor().span() };
            return Err(syn::Error::new(
                span,
                "an empty branch: each branch of `concat` holds at least one layer, as in `concat(conv(1x1, 16), conv(3x3, 16, pad=1))`",
            ));
        }
        branches.push(branch);
        if !input.is_empty() {
            input.parse::<Token![,]>()?;
        }
    }
    Ok(branches)
}

/// The heads of `heads( name : layers , name : layers , ... )`, each with at least one layer
/// (a trailing comma is allowed).
fn heads(input: ParseStream) -> syn::Result<Vec<(Ident, Vec<LayerSyntax>)>> {
    const USAGE: &str = "`heads(digit: fc(10) softmax, parity: fc(2) softmax)`";
    let mut heads = Vec::new();
    while !input.is_empty() {
        if !(input.peek(Ident::peek_any) && input.peek2(Token![:]) && !input.peek2(Token![::])) {
            return Err(input.error(format!("expected a head's name and a colon, as in {USAGE}")));
        }
        let name = input.parse::<Ident>().map_err(|e| {
            Error::new(e.span(), format!("a head's name is an identifier, not a keyword, as in {USAGE}"))
        })?;
        input.parse::<Token![:]>()?;
        let layers = layer_list(input)?;
        if layers.is_empty() {
            return Err(Error::new(
                name.span(),
                format!("head `{name}` has no layers: give it its output layers, as in `{name}: fc(10) softmax`"),
            ));
        }
        heads.push((name, layers));
        if !input.is_empty() {
            input.parse::<Token![,]>()?;
        }
    }
    Ok(heads)
}

impl Parse for BlockSyntax {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let layers = layer_list;
        let body = layers(input)?;
        if input.is_empty() {
            return Ok(BlockSyntax { body, shortcut: None });
        }
        input.parse::<Token![,]>()?;
        let key = input.call(Ident::parse_any).ok().filter(|k| k == "shortcut");
        let Some(key) = key.filter(|_| input.peek(Token![=])) else {
            return Err(input.error(
                "after the block's layers, a comma introduces its projection: `residual(conv(3x3, 32, stride=2, pad=1) relu conv(3x3, 32, pad=1), shortcut=conv(1x1, 32, stride=2))`",
            ));
        };
        input.parse::<Token![=]>()?;
        let shortcut = layers(input)?;
        if shortcut.is_empty() {
            return Err(syn::Error::new(
                key.span(),
                "`shortcut=` needs at least one layer, such as `conv(1x1, 32, stride=2)`",
            ));
        }
        if !input.is_empty() {
            return Err(input.error("unexpected tokens after the shortcut's layers"));
        }
        Ok(BlockSyntax { body, shortcut: Some((key, shortcut)) })
    }
}

impl LayerSyntax {
    /// The layer's tokens, for errors that cover the whole layer.
    pub fn original(&self) -> TokenStream {
        let name = &self.name;
        let args = &self.args;
        quote!(#name #args)
    }
}

impl Parse for ModelSyntax {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let (vis, name) = if input.peek(Token![<]) {
            if let Some(attr) = attrs.first() {
                return Err(Error::new_spanned(
                    attr,
                    "attributes belong to the item form: `cnn! { #[...] pub struct Name < ... > }`",
                ));
            }
            (Visibility::Inherited, None)
        } else {
            let vis: Visibility = input.parse()?;
            if !input.peek(Token![struct]) {
                return Err(
                    input.error("expected `struct Name < layers >` (item form) or `< layers >` (expression form)")
                );
            }
            input.parse::<Token![struct]>()?;
            // A keyword would name a struct that does not parse; `r#type` and the like are fine.
            let name = input.parse::<Ident>().map_err(|e| {
                Error::new(e.span(), "expected the model's name after `struct`: an identifier, not a keyword")
            })?;
            (vis, Some(name))
        };
        if name.is_some() && input.peek(Token![=]) {
            return from_file(input, attrs, vis, name);
        }
        if !input.peek(Token![<]) {
            return Err(input.error(
                "expected `<` to open the layer list, as in `struct Net < input(28x28x1) ... >`, or `= \"FILE\"` to read it from a saved model",
            ));
        }
        let open: Token![<] = input.parse()?;
        let mut layers = Vec::new();
        while !input.peek(Token![>]) {
            if input.is_empty() {
                return Err(Error::new(open.span, "the layer list is never closed: add `>` after the last layer"));
            }
            layers.push(input.parse()?);
        }
        input.parse::<Token![>]>()?;
        if name.is_some() && input.peek(Token![;]) {
            input.parse::<Token![;]>()?;
        }
        if !input.is_empty() {
            return Err(input.error("unexpected tokens after the `>` that closes the layer list"));
        }
        Ok(ModelSyntax { attrs, vis, name, open, layers, source: None })
    }
}

/// The rest of `struct Name = "FILE"`: the layers of the saved model file.
fn from_file(
    input: ParseStream,
    attrs: Vec<Attribute>,
    vis: Visibility,
    name: Option<Ident>,
) -> syn::Result<ModelSyntax> {
    input.parse::<Token![=]>()?;
    let literal: LitStr = input.parse().map_err(|e| {
        Error::new(e.span(), "expected the path of a saved model in quotes, as in `= \"models/lenet5.safetensors\"`")
    })?;
    if input.peek(Token![;]) {
        input.parse::<Token![;]>()?;
    }
    if !input.is_empty() {
        return Err(input.error("unexpected tokens after the model file's path"));
    }
    let source = Source::read(&literal)?;
    let all = |input: ParseStream| -> syn::Result<Vec<LayerSyntax>> {
        let mut layers = Vec::new();
        while !input.is_empty() {
            layers.push(input.parse()?);
        }
        Ok(layers)
    };
    let layers = syn::parse::Parser::parse2(all, source.tokens()?).map_err(|e| source.annotate(e))?;
    let open = Token![<](literal.span());
    Ok(ModelSyntax { attrs, vis, name, open, layers, source: Some(source) })
}

impl Parse for LayerSyntax {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if !input.peek(Ident::peek_any) {
            return Err(input.error("expected a layer, such as `conv(3x3, 16)`, `relu`, `pool(2)` or `fc(10)`"));
        }
        let name = input.call(Ident::parse_any)?;
        let args = match input.cursor().token_tree() {
            Some((TokenTree::Group(group), _)) => match group.delimiter() {
                Delimiter::Parenthesis => {
                    input.parse::<TokenTree>()?;
                    Some(group)
                }
                Delimiter::None => None,
                _ => return Err(Error::new(group.span(), format!("layer arguments go in parentheses: `{name}(...)`"))),
            },
            _ => None,
        };
        let block = match &args {
            Some(group) if name == RESIDUAL => Some(syn::parse2(group.stream())?),
            _ => None,
        };
        let branches = match &args {
            Some(group) if name == CONCAT => Some(syn::parse::Parser::parse2(branches, group.stream())?),
            _ => None,
        };
        let heads = match &args {
            Some(group) if name == HEADS => Some(syn::parse::Parser::parse2(heads, group.stream())?),
            _ => None,
        };
        Ok(LayerSyntax { name, args, block, branches, heads })
    }
}

impl ToTokens for LayerSyntax {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        tokens.extend(self.original());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> syn::Result<ModelSyntax> {
        syn::parse_str(text)
    }

    #[test]
    fn item_form_with_attributes() {
        let m = parse("/// Doc.\n#[derive(Clone)] pub struct LeNet < input(28x28x1) conv(5x5, 6) relu >").unwrap();
        assert_eq!(m.attrs.len(), 2);
        assert_eq!(m.name.unwrap().to_string(), "LeNet");
        let names: Vec<_> = m.layers.iter().map(|l| l.name.to_string()).collect();
        assert_eq!(names, ["input", "conv", "relu"]);
        assert!(m.layers[2].args.is_none());
    }

    #[test]
    fn a_keyword_cannot_name_the_model_but_a_raw_identifier_can() {
        for keyword in ["struct", "fn", "type", "self"] {
            let err = parse(&format!("pub struct {keyword} < input(4) fc(2) >")).err().expect(keyword).to_string();
            assert!(err.contains("not a keyword"), "{keyword}: {err}");
        }
        assert_eq!(parse("struct r#type < input(4) fc(2) >").unwrap().name.unwrap().to_string(), "r#type");
    }

    #[test]
    fn expression_form() {
        let m = parse("< input(4) fc(2) softmax >").unwrap();
        assert!(m.name.is_none());
        assert_eq!(m.layers.len(), 3);
    }

    #[test]
    fn syntax_errors_say_what_was_expected() {
        let err = |text: &str| parse(text).err().expect(text).to_string();
        assert!(err("struct M input(4) >").contains("expected `<`"));
        assert!(err("struct M < input(4) fc(2)").contains("never closed"));
        assert!(err("struct M < input(4) 5 >").contains("expected a layer"));
        assert!(err("struct M < input[4] >").contains("parentheses"));
        assert!(err("struct M < input(4) > extra").contains("unexpected tokens"));
        assert!(err("#[doc = \"x\"] < input(4) >").contains("item form"));
        assert!(err("fn M < >").contains("expected `struct Name"));
        assert!(err("struct M < input(4) residual(fc(4), conv(1x1, 4)) >").contains("introduces its projection"));
        assert!(err("struct M < input(4) residual(fc(4), shortcut=) >").contains("at least one layer"));
        assert!(err("struct M < input(4) residual(fc(4), shortcut=fc(4), x) >").contains("unexpected tokens"));
        assert!(err("struct M < input(4) concat(fc(4), , fc(2)) >").contains("an empty branch"));
        assert!(err("struct M < input(4) concat(, fc(2)) >").contains("an empty branch"));
    }

    #[test]
    fn residual_blocks_nest() {
        let m = parse("struct M < input(8x8x4) residual(conv(3x3, 4, pad=1) relu residual(relu)) residual(conv(3x3, 8, pad=1), shortcut=conv(1x1, 8) batchnorm) >").unwrap();
        let block = m.layers[1].block.as_ref().unwrap();
        assert_eq!(block.body.len(), 3);
        assert!(block.shortcut.is_none());
        assert_eq!(block.body[2].block.as_ref().unwrap().body.len(), 1);
        let (key, shortcut) = m.layers[2].block.as_ref().unwrap().shortcut.as_ref().unwrap();
        assert_eq!(key.to_string(), "shortcut");
        assert_eq!(shortcut.len(), 2);
    }

    #[test]
    fn concat_reads_its_branches() {
        let m: ModelSyntax = syn::parse_str(
            "struct M < input(8x8x4) concat(conv(1x1, 4), conv(3x3, 4, pad=1) relu, concat(relu, tanh),) >",
        )
        .unwrap();
        let branches = m.layers[1].branches.as_ref().unwrap();
        let names: Vec<Vec<String>> = branches.iter().map(|b| b.iter().map(|l| l.name.to_string()).collect()).collect();
        assert_eq!(names, [vec!["conv"], vec!["conv", "relu"], vec!["concat"]]);
        assert_eq!(branches[2][0].branches.as_ref().unwrap().len(), 2);
    }

    #[test]
    fn heads_read_their_names_and_layers() {
        let m = parse("struct M < input(4) fc(8) heads(digit: fc(10) softmax, parity: fc(2) softmax loss(cross_entropy, weight=0.5),) >").unwrap();
        let heads = m.layers[2].heads.as_ref().unwrap();
        let names: Vec<String> = heads.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(names, ["digit", "parity"]);
        assert_eq!(heads[1].1.len(), 3);
        let err = |text: &str| parse(text).err().expect(text).to_string();
        assert!(err("struct M < input(4) heads(fc(2)) >").contains("a head's name and a colon"));
        assert!(err("struct M < input(4) heads(a fc(2)) >").contains("a head's name and a colon"));
        assert!(err("struct M < input(4) heads(a: , b: fc(2)) >").contains("head `a` has no layers"));
        assert!(err("struct M < input(4) heads(a: fc(2), b:) >").contains("head `b` has no layers"));
        assert!(err("struct M < input(4) heads(fn: fc(2)) >").contains("not a keyword"));
        assert!(err("struct M < input(4) heads(a::b: fc(2)) >").contains("a head's name and a colon"));
    }
}
