//! The layer list of a saved model file: `cnn! { pub struct Digits = "models/lenet5.safetensors" }`
//! reads the file's `cnn.model` metadata (the layer list it was saved for) while compiling,
//! relative to the directory of the crate being compiled, and its layers are then parsed and
//! checked like written ones, every error pointing at the file name.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use syn::{Error, LitStr};

/// The metadata key of the layer list, as the runtime writes it.
const MODEL_KEY: &str = "cnn.model";

/// The most header bytes read: a model's header lists its tensors and a few metadata values.
const MAX_HEADER: u64 = 64 << 20;

/// Where a model's layers were read from.
#[derive(Clone, Debug)]
pub struct Source {
    /// The path as written.
    pub written: String,
    /// The file the compiler reads, for the output to depend on.
    pub path: PathBuf,
    /// The layer list read from it.
    pub text: String,
    /// The span of the path's literal.
    pub span: Span,
}

impl Source {
    /// Reads the layer list of the file `literal` names, or an error naming the file.
    pub fn read(literal: &LitStr) -> syn::Result<Source> {
        let written = literal.value();
        let base = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_default();
        let path = base.join(&written);
        let error = |message: String| Error::new(literal.span(), format!("`{written}`: {message}"));
        let text = layer_list(&path).map_err(error)?;
        Ok(Source { written, path, text, span: literal.span() })
    }

    /// The layer list as tokens, every one spanning the file's literal.
    pub fn tokens(&self) -> syn::Result<TokenStream> {
        let tokens = TokenStream::from_str(&self.text).map_err(|e| {
            Error::new(
                self.span,
                format!("`{}`: its layer list `{}` does not read as tokens: {e}", self.written, self.text),
            )
        })?;
        Ok(respan(tokens, self.span))
    }

    /// `error` with, after each message, where the layers came from.
    pub fn annotate(&self, error: Error) -> Error {
        let note = format!("\n  (the layers of `{}`: {})", self.written, self.text);
        let mut errors = error.into_iter().map(|e| Error::new(e.span(), format!("{e}{note}")));
        let mut all = errors.next().unwrap_or_else(|| Error::new(self.span, note.trim()));
        errors.for_each(|e| all.combine(e));
        all
    }
}

/// The `cnn.model` value of the safetensors file at `path`.
fn layer_list(path: &Path) -> Result<String, String> {
    let mut file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut length = [0u8; 8];
    file.read_exact(&mut length).map_err(|_| "not a model file: shorter than a safetensors header".to_string())?;
    let length = u64::from_le_bytes(length);
    if length > MAX_HEADER {
        return Err(format!("not a model file: its header would be {length} bytes long"));
    }
    let mut header = Vec::new();
    file.take(length).read_to_end(&mut header).map_err(|e| format!("cannot read: {e}"))?;
    if header.len() as u64 != length {
        return Err(format!("not a model file: the header is cut short ({} of {length} bytes)", header.len()));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| format!("not a safetensors file: its header is not JSON ({e})"))?;
    match json.get("__metadata__").and_then(|m| m.get(MODEL_KEY)) {
        Some(serde_json::Value::String(text)) => Ok(text.clone()),
        Some(other) => Err(format!("its `{MODEL_KEY}` metadata is {other}, not a layer list")),
        None => Err(format!(
            "not a model saved by `cnn`: its metadata has no `{MODEL_KEY}` (the layer list that `cnn::io::save_weights` writes)"
        )),
    }
}

/// `tokens` with every span, inside groups too, set to `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let TokenTree::Group(group) = &tree {
                let mut inner = Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                tree = TokenTree::Group(inner);
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    fn safetensors(header: &str) -> Vec<u8> {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes
    }

    #[test]
    fn the_layer_list_is_read_from_the_metadata() {
        let header = r#"{"__metadata__":{"cnn.model":"input(4) fc(2) softmax"},"0.weight":{"dtype":"F32","shape":[2,4],"data_offsets":[0,32]}}"#;
        let (_dir, path) = file(&safetensors(header));
        assert_eq!(layer_list(&path).unwrap(), "input(4) fc(2) softmax");
    }

    #[test]
    fn what_is_not_a_model_says_why() {
        let cases: [(&[u8], &str); 5] = [
            (b"abc", "shorter than a safetensors header"),
            (&u64::MAX.to_le_bytes(), "header would be"),
            (&safetensors("{not json"), "not JSON"),
            (&safetensors(r#"{"__metadata__":{"other":"x"}}"#), "no `cnn.model`"),
            (&safetensors(r#"{"__metadata__":{"cnn.model":3}}"#), "not a layer list"),
        ];
        for (bytes, expected) in cases {
            let (_dir, path) = file(bytes);
            let error = layer_list(&path).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
        let mut cut = safetensors("{}");
        cut.truncate(9);
        let (_dir, path) = file(&cut);
        assert!(layer_list(&path).unwrap_err().contains("cut short"));
        assert!(layer_list(Path::new("/nonexistent/model.safetensors")).unwrap_err().contains("cannot open"));
    }

    #[test]
    fn every_token_spans_the_literal() {
        let tokens = TokenStream::from_str("conv(5x5, 6) relu").unwrap();
        let span = Span::call_site();
        let respanned = respan(tokens, span);
        assert_eq!(respanned.to_string(), "conv (5x5 , 6) relu");
    }

    /// The whole macro on `struct Net = "PATH"`, as text.
    fn expand_file(path: &str) -> String {
        crate::expand(quote::quote!(pub struct Net = #path)).to_string()
    }

    #[test]
    fn a_model_from_a_file_is_generated_and_tracks_the_file() {
        let (_dir, path) = file(&safetensors(r#"{"__metadata__":{"cnn.model":"input(4) fc(2) softmax"}}"#));
        let out = expand_file(path.to_str().unwrap());
        assert!(!out.contains("compile_error"), "{out}");
        assert!(out.contains("include_bytes") && out.contains("\"input(4) fc(2) softmax\""), "{out}");
    }

    #[test]
    fn a_model_from_a_file_is_checked_and_errors_name_the_file() {
        let header = r#"{"__metadata__":{"cnn.model":"input(28x28x1) conv(5x5, 6) pool(5) fc(10) softmax"}}"#;
        let (_dir, path) = file(&safetensors(header));
        let out = expand_file(path.to_str().unwrap());
        assert!(out.contains("compile_error") && out.contains("pool(5)"), "{out}");
        assert!(out.contains("model.safetensors") && out.contains("include_bytes"), "{out}");
        let (_dir, path) = file(&safetensors(r#"{"__metadata__":{"cnn.model":"input(4) fcc(2) softmax"}}"#));
        let out = expand_file(path.to_str().unwrap());
        assert!(out.contains("did you mean") && out.contains("model.safetensors"), "{out}");
        let (_dir, path) = file(&safetensors(r#"{"__metadata__":{"cnn.model":"input(4) fc(2)) softmax"}}"#));
        assert!(expand_file(path.to_str().unwrap()).contains("does not read as tokens"));
        let out = expand_file("no/such/model.safetensors");
        assert!(
            out.contains("compile_error") && out.contains("no/such/model.safetensors") && out.contains("cannot open")
        );
        // The stub keeps code that uses the model from failing a second time.
        assert!(out.contains("struct Net"), "{out}");
    }
}
