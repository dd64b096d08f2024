//! Reading a layer's arguments: `5`, `5x5`, `stride=2x1`, `0.5`, `bias=false`, each checked
//! against what the layer accepts, with an error at the argument that is wrong.

use proc_macro2::{Spacing, TokenStream, TokenTree};

use super::layers::{suggest, MAX_NUMBER};
use super::syntax::LayerSyntax;
use crate::errors::Errors;
use crate::ir::{Float, Pair};

/// One argument: `value` or `name = value`.
pub struct Arg {
    name: Option<proc_macro2::Ident>,
    /// The value's tokens.
    pub value: TokenStream,
    all: TokenStream,
}

/// Splits a layer's argument tokens at top-level commas.
fn split_args(layer: &LayerSyntax) -> Vec<Arg> {
    let Some(group) = &layer.args else {
        return Vec::new();
    };
    let mut args = Vec::new();
    let mut current: Vec<TokenTree> = Vec::new();
    let mut flush = |current: &mut Vec<TokenTree>| {
        if current.is_empty() {
            return;
        }
        let all: TokenStream = current.iter().cloned().collect();
        // `name=value`, where `=` may be joined to a sign (`pad=-1`) but is not `==` or `=>`.
        let named = match (current.first(), current.get(1), current.get(2)) {
            (Some(TokenTree::Ident(name)), Some(TokenTree::Punct(eq)), next)
                if eq.as_char() == '='
                    && (eq.spacing() == Spacing::Alone
                        || matches!(next, Some(TokenTree::Punct(p)) if !matches!(p.as_char(), '=' | '>'))) =>
            {
                Some(name.clone())
            }
            _ => None,
        };
        let value = if named.is_some() { current[2..].iter().cloned().collect() } else { all.clone() };
        args.push(Arg { name: named, value, all });
        current.clear();
    };
    for tree in group.stream() {
        match &tree {
            TokenTree::Punct(p) if p.as_char() == ',' => flush(&mut current),
            _ => current.push(tree),
        }
    }
    flush(&mut current);
    args
}

/// Tokens as written without the spaces `to_string` puts between them, such as `-1`.
pub fn compact(tokens: &TokenStream) -> String {
    tokens.clone().into_iter().map(|t| t.to_string()).collect()
}

/// Reads `5`, `5x5` or `28x28x1`: a single literal of decimal numbers joined by `x`.
pub fn numbers(value: &TokenStream, what: &str) -> syn::Result<Vec<usize>> {
    let trees: Vec<TokenTree> = value.clone().into_iter().collect();
    let lit = match trees.as_slice() {
        [TokenTree::Literal(lit)] => lit,
        [] => return Err(syn::Error::new_spanned(value, format!("expected {what}"))),
        [TokenTree::Punct(minus), TokenTree::Literal(_)] if minus.as_char() == '-' => {
            let text = compact(value);
            return Err(syn::Error::new_spanned(value, format!("{what} cannot be negative, found `{text}`")));
        }
        _ => {
            return Err(syn::Error::new_spanned(
                value,
                format!("expected {what}, written as one token such as `5` or `5x5`, found `{value}`"),
            ))
        }
    };
    let text = lit.to_string();
    let parts: Vec<&str> = text.split('x').collect();
    let mut out = Vec::with_capacity(parts.len());
    for part in &parts {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syn::Error::new_spanned(
                lit,
                format!("expected {what}, found `{text}`: write whole numbers, joined by `x` for sizes (`5x5`)"),
            ));
        }
        match part.parse::<usize>() {
            Ok(v) if v <= MAX_NUMBER => out.push(v),
            _ => {
                return Err(syn::Error::new_spanned(
                    lit,
                    format!("`{part}` is too large: the most this accepts is {MAX_NUMBER}"),
                ))
            }
        }
    }
    Ok(out)
}

/// Reads a single number.
pub fn number(value: &TokenStream, what: &str) -> syn::Result<usize> {
    let v = numbers(value, what)?;
    if v.len() != 1 {
        return Err(syn::Error::new_spanned(value, format!("expected {what}, a single number, found `{value}`")));
    }
    Ok(v[0])
}

/// Reads a number that may have a fraction or an exponent, such as `0.5` or `1e-4`.
pub fn float(value: &TokenStream, what: &str) -> syn::Result<f32> {
    let trees: Vec<TokenTree> = value.clone().into_iter().collect();
    let (negative, lit) = match trees.as_slice() {
        [TokenTree::Literal(lit)] => (false, lit),
        [TokenTree::Punct(minus), TokenTree::Literal(lit)] if minus.as_char() == '-' => (true, lit),
        _ => {
            let text = compact(value);
            return Err(syn::Error::new_spanned(
                value,
                format!("expected {what}, a number such as `0.5`, found `{text}`"),
            ));
        }
    };
    let text = lit.to_string();
    let digits = text.strip_suffix("f32").or_else(|| text.strip_suffix("f64")).unwrap_or(&text).replace('_', "");
    match digits.parse::<f64>() {
        Ok(v)
            if v.is_finite()
                && v.abs() <= MAX_NUMBER as f64
                && digits.bytes().all(|b| b.is_ascii_digit() || b"eE.+-".contains(&b)) =>
        {
            Ok(if negative { -v } else { v } as f32)
        }
        _ => {
            let text = compact(value);
            Err(syn::Error::new_spanned(value, format!("expected {what}, a number such as `0.5`, found `{text}`")))
        }
    }
}

/// Reads a [`float`] that must lie in `range` (described as `within`).
pub fn float_in(value: &TokenStream, what: &str, ok: impl Fn(f32) -> bool, within: &str) -> syn::Result<Float> {
    let v = float(value, what)?;
    if !ok(v) {
        let text = compact(value);
        return Err(syn::Error::new_spanned(value, format!("{what} must be {within}, found `{text}`")));
    }
    Ok(Float(v))
}

/// Reads `N` or `WxH` into a [`Pair`].
pub fn pair(value: &TokenStream, what: &str) -> syn::Result<Pair> {
    match numbers(value, what)?.as_slice() {
        [v] => Ok(Pair::square(*v)),
        [w, h] => Ok(Pair { w: *w, h: *h }),
        _ => Err(syn::Error::new_spanned(value, format!("expected {what} as `N` or `WxH`, found `{value}`"))),
    }
}

/// An error unless every value of `p` is at least 1.
pub fn at_least_one(value: &TokenStream, p: &[usize], what: &str) -> syn::Result<()> {
    if p.contains(&0) {
        let text = value.to_string();
        let hint = if text.starts_with("0x") { " (a size of 0; `0x...` is not a hex number here)" } else { "" };
        return Err(syn::Error::new_spanned(value, format!("{what} must be at least 1, found `{text}`{hint}")));
    }
    Ok(())
}

/// The positional and named arguments of a layer, checked against what it accepts.
pub struct Args {
    /// The positional arguments, as many as the layer takes.
    pub positional: Vec<Arg>,
    named: Vec<Arg>,
}

impl Args {
    /// The arguments of `layer`, which takes `positional` of them and the named ones of
    /// `allowed`; `usage` shows how it is written.
    pub fn read(layer: &LayerSyntax, allowed: &[&str], usage: &str, positional: usize) -> syn::Result<Args> {
        let mut args = Args { positional: Vec::new(), named: Vec::new() };
        let mut errors = Errors::default();
        for arg in split_args(layer) {
            match &arg.name {
                None if !args.named.is_empty() => {
                    errors.spanned(&arg.all, format!("positional arguments come before named ones: `{usage}`"))
                }
                None => args.positional.push(arg),
                Some(name) => {
                    let key = name.to_string();
                    if !allowed.contains(&key.as_str()) {
                        let hint = match suggest(&key, allowed) {
                            Some(s) => format!("; did you mean `{s}`?"),
                            None if allowed.is_empty() => format!("; `{}` takes none", layer.name),
                            None => format!("; `{}` accepts {}", layer.name, list(allowed)),
                        };
                        errors.spanned(name, format!("unknown parameter `{key}` for `{}`{hint}", layer.name));
                    } else if args.named.iter().any(|a| a.name.as_ref().is_some_and(|n| *n == key)) {
                        errors.spanned(&arg.all, format!("`{key}` is given twice"));
                    } else if arg.value.is_empty() {
                        errors.spanned(&arg.all, format!("`{key}=` needs a value, as in `{key}=2`"));
                    } else {
                        args.named.push(arg);
                    }
                }
            }
        }
        errors.finish(())?;
        if args.positional.len() != positional {
            let found = args.positional.len();
            let message = match positional {
                0 => format!("`{}` takes no arguments: write `{usage}`", layer.name),
                _ => format!("`{}` takes {}, found {found}: write `{usage}`", layer.name, count(positional)),
            };
            return Err(syn::Error::new_spanned(layer, message));
        }
        Ok(args)
    }

    /// The value of the named argument `name`, if given.
    pub fn get(&self, name: &str) -> Option<&TokenStream> {
        self.named.iter().find(|a| a.name.as_ref().is_some_and(|n| *n == name)).map(|a| &a.value)
    }

    /// A `name=true` / `name=false` argument, or `default` when absent.
    pub fn flag(&self, name: &str, default: bool) -> syn::Result<bool> {
        match self.get(name).map(|v| (v, v.to_string())) {
            None => Ok(default),
            Some((_, text)) if text == "true" => Ok(true),
            Some((_, text)) if text == "false" => Ok(false),
            Some((v, text)) => {
                Err(syn::Error::new_spanned(v, format!("`{name}=` takes `true` or `false`, found `{text}`")))
            }
        }
    }
}

fn count(n: usize) -> String {
    match n {
        1 => "one argument".into(),
        2 => "two arguments".into(),
        n => format!("{n} arguments"),
    }
}

/// Names as a list in backquotes.
pub fn list(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}
