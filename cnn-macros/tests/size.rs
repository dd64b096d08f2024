//! Keeps the macro's sources small enough to read: no file over 500 lines and no function over
//! 80, not counting test code (`#[cfg(test)]` modules, inline or in files of their own).
//! Relies on `cargo fmt`'s layout: a function's body closes with `}` at its own indentation.

use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 500;
const MAX_FN_LINES: usize = 80;

/// A source file's lines outside test modules, and the test-only module files it declares.
struct Source {
    lines: Vec<(usize, String)>,
    test_modules: Vec<String>,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The index of the line closing the item opened on line `start` (the first line after it
/// that is `}` at the same indentation), or `start` for an item on one line.
fn close(lines: &[&str], start: usize) -> usize {
    if lines[start].trim_end().ends_with(';') || lines[start].trim_end().ends_with('}') {
        return start;
    }
    let at = indent(lines[start]);
    (start + 1..lines.len())
        .find(|&i| indent(lines[i]) == at && lines[i].trim_start().starts_with('}'))
        .unwrap_or(start)
}

fn read(path: &Path) -> Source {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    let mut source = Source { lines: Vec::new(), test_modules: Vec::new() };
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "#[cfg(test)]" {
            let next = lines.get(i + 1).map_or("", |l| l.trim());
            if let Some(name) = next.strip_prefix("mod ").and_then(|n| n.strip_suffix(';')) {
                source.test_modules.push(name.to_string());
            }
            if next.starts_with("mod ") || next.starts_with("pub mod ") || next.starts_with("pub(crate) mod ") {
                i = close(&lines, i + 1) + 1;
                continue;
            }
        }
        source.lines.push((i + 1, lines[i].to_string()));
        i += 1;
    }
    source
}

/// Every `.rs` file under `dir` that is not a test-only module.
fn sources(dir: &Path, out: &mut Vec<(PathBuf, Source)>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    let mut tests = Vec::new();
    let mut files = Vec::new();
    for path in entries.iter().filter(|p| p.extension().is_some_and(|e| e == "rs")) {
        let source = read(path);
        tests.extend(source.test_modules.iter().cloned());
        files.push((path.clone(), source));
    }
    for (path, source) in files {
        if !tests.iter().any(|t| path.file_stem().is_some_and(|s| s == t.as_str())) {
            out.push((path, source));
        }
    }
    for dir in entries.iter().filter(|p| p.is_dir()) {
        if !tests.iter().any(|t| dir.file_name().is_some_and(|s| s == t.as_str())) {
            sources(dir, out);
        }
    }
}

/// Functions (start line, name, length) of the kept lines of a file.
fn functions(source: &Source) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = source.lines.iter().map(|(_, l)| l.as_str()).collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = words.iter().position(|w| *w == "fn") else { continue };
        let before_ok = words[..at].iter().all(|w| w.starts_with("pub") || ["const", "unsafe", "async"].contains(w));
        if !before_ok || at + 1 >= words.len() {
            continue;
        }
        let name: String = words[at + 1].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let end = close(&lines, i);
        out.push((source.lines[i].0, name, end - i + 1));
    }
    out
}

#[test]
fn macro_sources_stay_small() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    assert!(files.len() > 5, "found the sources");
    let mut problems = Vec::new();
    for (path, source) in &files {
        let name = path.strip_prefix(&root).unwrap().display();
        if source.lines.len() > MAX_FILE_LINES {
            problems.push(format!("{name}: {} lines (at most {MAX_FILE_LINES})", source.lines.len()));
        }
        for (line, function, len) in functions(source) {
            if len > MAX_FN_LINES {
                problems.push(format!("{name}:{line}: fn {function} is {len} lines (at most {MAX_FN_LINES})"));
            }
        }
    }
    assert!(problems.is_empty(), "split these:\n{}", problems.join("\n"));
}

#[test]
fn the_counter_sees_functions_and_skips_tests() {
    let text = "fn a() {\n    let x = 1;\n}\n\n#[cfg(test)]\nmod tests {\n    fn b() {\n    }\n}\n    pub(crate) fn c(\n        x: u8,\n    ) -> u8 {\n        x\n    }\n";
    let dir = std::env::temp_dir().join(format!("cnn-size-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("x.rs");
    std::fs::write(&path, text).unwrap();
    let source = read(&path);
    std::fs::remove_dir_all(&dir).unwrap();
    let found: Vec<(String, usize)> = functions(&source).into_iter().map(|(_, n, l)| (n, l)).collect();
    assert_eq!(found, [("a".to_string(), 3), ("c".to_string(), 5)]);
    assert_eq!(source.lines.len(), 9);
}
