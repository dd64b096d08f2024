//! Mutation fuzzing of the macro's expansion at the token level, over the seed corpus in
//! `fuzz/corpus/` (model texts: the course's models, every layer kind, broken ones).
//!
//! The oracle is the README's promise: whatever the tokens, [`expand`] answers with valid code
//! or with compile errors, and never panics. `cargo test -p cnn-macros` runs a short run;
//! `CNN_FUZZ_CASES=1000000 cargo test -p cnn-macros --release fuzz -- --nocapture` a long one
//! (`CNN_FUZZ_SEED` picks another sequence of cases).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use proc_macro2::{Delimiter, Group, Punct, Spacing, TokenStream, TokenTree};

use crate::expand;
use crate::parse::LAYER_NAMES;

/// splitmix64: the same cases for a seed everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Numbers, sizes and other literals that probe the argument checks and the shape arithmetic.
const LITERALS: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "7",
    "255",
    "65536",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999",
    "0.0",
    "0.5",
    "1.0",
    "1.5",
    "1e-4",
    "1e309",
    "-1",
    "-0.5",
    "0x3",
    "0x0",
    "1x1",
    "5x5",
    "5x",
    "3x3x3x3",
    "0x0x0",
    "65536x65536",
    "4294967296x4294967296x1",
    "18446744073709551615x2x1",
    "1x18446744073709551615",
    "3x3u8",
    "5usize",
    "1_000",
    "\"text\"",
    "'c'",
    "b'x'",
    "true",
];

/// Identifiers besides the layer names ([`LAYER_NAMES`]): parameters and losses, keywords and
/// near misses.
const OTHER_IDENTS: &[&str] = &[
    "shortcut",
    "cross_entropy",
    "bce",
    "mse",
    "stride",
    "pad",
    "bias",
    "alpha",
    "beta",
    "k",
    "true",
    "false",
    "struct",
    "pub",
    "crate",
    "Self",
    "self",
    "r#conv",
    "_",
    "x",
    "padding",
    "weight",
    "digit",
];

/// An identifier for a mutation: a layer name or one of [`OTHER_IDENTS`].
fn ident(rng: &mut Rng) -> &'static str {
    let i = rng.below(LAYER_NAMES.len() + OTHER_IDENTS.len());
    LAYER_NAMES.get(i).copied().unwrap_or_else(|| OTHER_IDENTS[i - LAYER_NAMES.len()])
}

/// Punctuation the grammar uses or could be confused by.
const PUNCTS: &[char] = &[',', '=', '<', '>', '-', '#', ':', ';', '.', '!', '*', '/'];

/// One token from its text.
fn token(text: &str) -> Vec<TokenTree> {
    TokenStream::from_str(text).map(|s| s.into_iter().collect()).unwrap_or_default()
}

/// The contents of `group` mutated by one edit (somewhere in it, at any depth).
fn mutate_group(rng: &mut Rng, group: &Group, other: &[TokenTree]) -> Group {
    let mut inner: Vec<TokenTree> = group.stream().into_iter().collect();
    mutate_tokens(rng, &mut inner, other);
    let mut g = Group::new(group.delimiter(), inner.into_iter().collect());
    g.set_span(group.span());
    g
}

/// One edit of `tokens` or, half the time when there is one, of a group inside it.
fn mutate_tokens(rng: &mut Rng, tokens: &mut Vec<TokenTree>, other: &[TokenTree]) {
    let groups: Vec<usize> = (0..tokens.len()).filter(|&i| matches!(tokens[i], TokenTree::Group(_))).collect();
    if !groups.is_empty() && rng.below(2) == 0 {
        let i = groups[rng.below(groups.len())];
        if let TokenTree::Group(g) = &tokens[i] {
            tokens[i] = TokenTree::Group(mutate_group(rng, g, other));
        }
        return;
    }
    let len = tokens.len();
    let at = rng.below(len.max(1));
    match rng.below(12) {
        0 if len > 0 => {
            tokens.remove(at);
        }
        1 if len > 0 => {
            let t = tokens[at].clone();
            tokens.insert(at, t);
        }
        2 if len > 1 => {
            let j = rng.below(len);
            tokens.swap(at, j);
        }
        3 => {
            // A number or size: replace one, or insert one.
            let new = token(rng.pick(LITERALS));
            let literals: Vec<usize> = (0..len).filter(|&i| matches!(tokens[i], TokenTree::Literal(_))).collect();
            if literals.is_empty() || rng.below(4) == 0 {
                tokens.splice(at..at, new);
            } else {
                let i = literals[rng.below(literals.len())];
                tokens.splice(i..=i, new);
            }
        }
        4 => {
            let new = token(ident(rng));
            let idents: Vec<usize> = (0..len).filter(|&i| matches!(tokens[i], TokenTree::Ident(_))).collect();
            if idents.is_empty() || rng.below(4) == 0 {
                tokens.splice(at..at, new);
            } else {
                let i = idents[rng.below(idents.len())];
                tokens.splice(i..=i, new);
            }
        }
        5 => {
            let spacing = if rng.below(2) == 0 { Spacing::Alone } else { Spacing::Joint };
            let p = TokenTree::Punct(Punct::new(PUNCTS[rng.below(PUNCTS.len())], spacing));
            if len > 0 && matches!(tokens[at], TokenTree::Punct(_)) {
                tokens[at] = p;
            } else {
                tokens.insert(at, p);
            }
        }
        6 if !groups.is_empty() => {
            // Another delimiter, including the invisible one macro_rules! fragments arrive in.
            let i = groups[rng.below(groups.len())];
            if let TokenTree::Group(g) = &tokens[i] {
                let d = [Delimiter::Parenthesis, Delimiter::Bracket, Delimiter::Brace, Delimiter::None][rng.below(4)];
                tokens[i] = TokenTree::Group(Group::new(d, g.stream()));
            }
        }
        7 if !groups.is_empty() => {
            // The group's delimiters removed: its tokens spill into the enclosing list.
            let i = groups[rng.below(groups.len())];
            if let TokenTree::Group(g) = tokens[i].clone() {
                tokens.splice(i..=i, g.stream());
            }
        }
        8 if len > 0 => {
            let end = at + 1 + rng.below(len - at);
            let inner: TokenStream = tokens[at..end].iter().cloned().collect();
            let d = [Delimiter::Parenthesis, Delimiter::Bracket, Delimiter::Brace, Delimiter::None][rng.below(4)];
            tokens.splice(at..end, [TokenTree::Group(Group::new(d, inner))]);
        }
        9 if !other.is_empty() => {
            let start = rng.below(other.len());
            let end = start + 1 + rng.below((other.len() - start).min(8));
            tokens.splice(at..at, other[start..end].iter().cloned());
        }
        10 if len > 0 => {
            let end = at + 1 + rng.below((len - at).min(4));
            tokens.drain(at..end);
        }
        _ => {
            let copy: Vec<TokenTree> = tokens[at..(at + 1 + rng.below(3)).min(len)].to_vec();
            let j = rng.below(len + 1);
            tokens.splice(j..j, copy);
        }
    }
}

/// Whether `stream` holds a `compile_error!` invocation, at any depth.
fn has_compile_error(stream: &TokenStream) -> bool {
    stream.clone().into_iter().any(|t| match t {
        TokenTree::Ident(i) => i == "compile_error",
        TokenTree::Group(g) => has_compile_error(&g.stream()),
        _ => false,
    })
}

thread_local! {
    /// The location and message of a panic on this thread while [`check`] runs.
    static CAUGHT: RefCell<Option<Option<String>>> = const { RefCell::new(None) };
}

/// Installs, once, a panic hook that records this thread's panics while [`check`] runs and
/// leaves every other panic to the previous hook.
fn install_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let captured = CAUGHT.with(|c| match &mut *c.borrow_mut() {
                Some(slot) => {
                    let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
                    let message = info
                        .payload()
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| info.payload().downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    slot.get_or_insert(format!("panic at {at}: {message}"));
                    true
                }
                None => false,
            });
            if !captured {
                previous(info);
            }
        }));
    });
}

/// What a finding broke: the macro panicked, or it expanded to something that is neither
/// compile errors nor code that parses (rustc would then blame the macro's output, not the input).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Oracle {
    Panic,
    Code,
}

/// Expands `input`; a panic, or an expansion that is neither compile errors nor code that
/// parses, is a finding.
fn check(input: &TokenStream) -> Result<(), (Oracle, String)> {
    install_hook();
    CAUGHT.with(|c| *c.borrow_mut() = Some(None));
    let result = panic::catch_unwind(AssertUnwindSafe(|| expand(input.clone())));
    let caught = CAUGHT.with(|c| c.borrow_mut().take()).flatten();
    let output = result.map_err(|_| (Oracle::Panic, caught.unwrap_or_else(|| "panic without a message".into())))?;
    if has_compile_error(&output)
        || syn::parse2::<syn::File>(output.clone()).is_ok()
        || syn::parse2::<syn::Expr>(output).is_ok()
    {
        Ok(())
    } else {
        Err((Oracle::Code, "the expansion has no compile error and does not parse as items or an expression".into()))
    }
}

/// The corpus: file name and tokens.
fn corpus() -> Vec<(String, TokenStream)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut paths: Vec<PathBuf> =
        std::fs::read_dir(&dir).expect("the corpus directory").map(|e| e.expect("an entry").path()).collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("a corpus file");
            let tokens = TokenStream::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_name().expect("a file name").to_string_lossy().into_owned(), tokens)
        })
        .collect()
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn fuzz_corpus_expands_as_named() {
    let corpus = corpus();
    assert!(corpus.len() >= 10, "{} corpus files", corpus.len());
    for (name, tokens) in &corpus {
        check(tokens).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let errors = has_compile_error(&expand(tokens.clone()));
        assert_eq!(errors, name.starts_with("broken_"), "{name}: compile errors {errors}");
    }
}

/// A run's findings: oracle and message, with the number of cases and the first input.
type Findings = BTreeMap<(Oracle, String), (u64, String)>;

/// The mutation loop, run once per test binary and shared by the tests of each oracle:
/// `CNN_FUZZ_CASES` cases (3000 by default) from seed `CNN_FUZZ_SEED` (1).
fn run() -> &'static Findings {
    static RUN: std::sync::OnceLock<Findings> = std::sync::OnceLock::new();
    RUN.get_or_init(|| {
        let (cases, seed) = (env_number("CNN_FUZZ_CASES", 3000), env_number("CNN_FUZZ_SEED", 1));
        let corpus: Vec<Vec<TokenTree>> = corpus().into_iter().map(|(_, t)| t.into_iter().collect()).collect();
        let mut rng = Rng(seed);
        let mut findings = Findings::new();
        let (start, mut slowest) = (Instant::now(), (0f64, String::new()));
        for _ in 0..cases {
            let mut tokens = corpus[rng.below(corpus.len())].clone();
            let other = &corpus[rng.below(corpus.len())];
            for _ in 0..1 + rng.below(4) {
                mutate_tokens(&mut rng, &mut tokens, other);
            }
            let input: TokenStream = tokens.into_iter().collect();
            let t0 = Instant::now();
            let result = check(&input);
            let seconds = t0.elapsed().as_secs_f64();
            if seconds > slowest.0 {
                slowest = (seconds, input.to_string());
            }
            if let Err(finding) = result {
                findings.entry(finding).or_insert((0, input.to_string())).0 += 1;
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        println!(
            "macro: {cases} cases in {elapsed:.1} s ({:.0} cases/s), {} failures ({} distinct), slowest case {:.1} ms",
            cases as f64 / elapsed,
            findings.values().map(|f| f.0).sum::<u64>(),
            findings.len(),
            slowest.0 * 1e3,
        );
        for ((oracle, message), (n, input)) in &findings {
            println!("  [{oracle:?}] x{n} {message}\n    input: {input}");
        }
        findings
    })
}

/// Fails with the findings of `oracle`, if any.
fn assert_none(oracle: Oracle) {
    let found: Vec<String> = run()
        .iter()
        .filter(|((o, _), _)| *o == oracle)
        .map(|((_, message), (n, input))| format!("x{n} {message}\n    input: {input}"))
        .collect();
    assert!(found.is_empty(), "the macro failed on mutated input:\n{}", found.join("\n"));
}

#[test]
fn fuzz_expansion_never_panics() {
    assert_none(Oracle::Panic);
}

#[test]
fn fuzz_expansion_is_code_or_compile_errors() {
    assert_none(Oracle::Code);
}
