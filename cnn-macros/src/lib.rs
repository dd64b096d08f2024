//! The `cnn!` procedural macro. Use it through the `cnn` crate, which re-exports it together
//! with the runtime the generated code calls.
//!
//! A small compiler with one module per stage, each testable on its own, and one typed
//! representation between them (`ir`):
//! `parse` (tokens to the model, arguments read and range-checked) → `check` (every layer's
//! shapes and the loss, in a side table, or the compile-time shape errors) → `codegen` (the
//! model struct and its kernel wiring, from the model and the side table only). `fallback`
//! emits the errors together with a stub of the struct, so that code using the model does not
//! fail a second time.

mod check;
mod codegen;
mod errors;
mod fallback;
#[cfg(test)]
mod fuzz;
mod ir;
mod parse;

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
    let (model, errors) = match parse::parse(input.clone()) {
        Ok(parsed) => parsed,
        Err(error) => return fallback::expand(None, error, &input),
    };
    // The check runs after parse errors too, to report the mistakes independent of them.
    let checked = match (&model.source, check::check(&model)) {
        (Some(source), Err(error)) => Err(source.annotate(error)),
        (_, checked) => checked,
    };
    match (errors, checked) {
        (None, Ok(checked)) => codegen::expand(&model, &checked),
        (Some(error), Ok(_)) | (None, Err(error)) => fallback::expand(Some(&model), error, &input),
        (Some(mut error), Err(more)) => {
            error.combine(more);
            fallback::expand(Some(&model), error, &input)
        }
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
