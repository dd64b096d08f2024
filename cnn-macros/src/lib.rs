//! The `cnn!` procedural macro. Use it through the `cnn` crate, which re-exports it together
//! with the runtime the generated code calls.
//!
//! The pipeline has one module per stage, each testable on its own:
//! [`parse`] (tokens to syntax) → [`model`] (syntax to layers, with argument checks) →
//! [`shape`] (every layer's output volume, with the compile-time shape errors) →
//! [`codegen`] (the model struct and its kernel wiring). [`fallback`] emits the errors together
//! with a stub of the struct, so that code using the model does not fail a second time.

mod codegen;
mod errors;
mod fallback;
#[cfg(test)]
mod fuzz;
mod model;
mod parse;
mod shape;

use proc_macro::TokenStream;

/// Declares a convolutional network whose every layer shape is checked while compiling.
///
/// See the `cnn` crate for the grammar and the generated API.
#[proc_macro]
pub fn cnn(input: TokenStream) -> TokenStream {
    expand(input.into()).into()
}

/// Parses, checks and generates; on any error, the errors plus a stub.
fn expand(input: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    let syntax = match syn::parse2::<parse::ModelSyntax>(input.clone()) {
        Ok(syntax) => syntax,
        Err(error) => return fallback::expand(None, error, &input),
    };
    let checked = model::Model::lower(&syntax).and_then(|mut model| {
        let loss = shape::check(&mut model)?;
        Ok((model, loss))
    });
    match checked {
        Ok((model, loss)) => codegen::expand(&syntax, &model, loss),
        Err(error) => fallback::expand(Some(&syntax), error, &input),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever tokens it is given, the macro answers with tokens, never a panic.
    #[test]
    fn never_panics_on_arbitrary_input() {
        let pieces = [
            "input",
            "(",
            ")",
            "28x28x1",
            "conv",
            "5x5",
            ",",
            "6",
            "pad",
            "=",
            "2",
            "stride",
            "0",
            "relu",
            "pool",
            "fc",
            "softmax",
            "<",
            ">",
            "struct",
            "pub",
            "M",
            "0x3",
            "5x",
            "x5",
            "1.5",
            "-",
            "#",
            "[",
            "]",
            "{",
            "}",
            "99999999999999999999999",
            "4294967296x4294967296x1",
            "maxpool",
            "_",
            "'a",
            "\"s\"",
            ";",
            "::",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..4000 {
            let mut text = String::new();
            let len = (state % 24) as usize;
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(pieces[(state % pieces.len() as u64) as usize]);
                text.push(' ');
            }
            if let Ok(tokens) = text.parse::<proc_macro2::TokenStream>() {
                let _ = expand(tokens);
            }
        }
    }
}
