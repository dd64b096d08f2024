//! `cnn-fuzz TARGET|all [--cases N] [--seed S]`: runs the mutation loop and prints cases run,
//! cases per second and failures; exits with 1 when something was found.

use std::path::PathBuf;
use std::process::ExitCode;

use cnn_fuzz::alloc::{self, Counting};
use cnn_fuzz::runner::config_of;
use cnn_fuzz::{corpus_dir, findings_dir, fuzz, load_seeds, run_case, targets, Options};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const USAGE: &str = "\
usage: cnn-fuzz TARGET|all [--cases N] [--seed S] [--corpus DIR] [--findings DIR] [--keep N] [--progress SECS]
       cnn-fuzz TARGET --replay FILE...
       cnn-fuzz --write-corpus DIR
targets: idx-images idx-labels cifar weights checkpoint image-folder api";

/// Whether arithmetic overflow panics in this build (it wraps silently in plain release builds,
/// which then miss the overflow findings).
fn overflow_checks() -> bool {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let x = std::hint::black_box(u8::MAX);
    let checked = std::panic::catch_unwind(|| std::hint::black_box(x + std::hint::black_box(1))).is_err();
    std::panic::set_hook(hook);
    checked
}

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(clean) if clean => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<String>) -> Result<bool, String> {
    let mut opts = Options { findings: Some(findings_dir()), ..Options::default() };
    let (mut target, mut corpus, mut replay, mut write) = (None, corpus_dir(), Vec::new(), None);
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--cases" => opts.cases = value("--cases")?.parse().map_err(|e| format!("--cases: {e}"))?,
            "--seed" => opts.seed = value("--seed")?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--keep" => opts.keep = value("--keep")?.parse().map_err(|e| format!("--keep: {e}"))?,
            "--progress" => opts.progress = value("--progress")?.parse().map_err(|e| format!("--progress: {e}"))?,
            "--corpus" => corpus = PathBuf::from(value("--corpus")?),
            "--findings" => opts.findings = Some(PathBuf::from(value("--findings")?)),
            "--write-corpus" => write = Some(PathBuf::from(value("--write-corpus")?)),
            "--replay" => replay.extend(it.by_ref().map(PathBuf::from)),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(true);
            }
            name if target.is_none() && !name.starts_with('-') => target = Some(name.to_string()),
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    if let Some(dir) = write {
        let n = cnn_fuzz::corpus::write(&dir).map_err(|e| format!("cannot write the corpus: {e}"))?;
        println!("wrote {n} files under {}", dir.display());
        return Ok(true);
    }
    let target = target.ok_or("no target")?;
    let names: Vec<&str> = match target.as_str() {
        "all" => targets::NAMES.to_vec(),
        name => vec![targets::NAMES.iter().copied().find(|n| *n == name).ok_or(format!("no target `{name}`"))?],
    };
    // A runaway case aborts the process instead of taking the machine's memory; its input is
    // then left in the target's scratch directory under the system's temporary directory.
    alloc::set_hard_cap(8 << 30);
    if !overflow_checks() {
        eprintln!(
            "note: arithmetic overflow wraps silently in this build; for overflow findings run with\n      \
             CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true"
        );
    }
    let mut clean = true;
    for name in names {
        let mut t = targets::by_name(name).expect("a known target");
        if !replay.is_empty() {
            for path in &replay {
                let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
                let (outcome, peak) = run_case(t.as_mut(), &config_of(path), &bytes);
                println!("{}: {outcome:?} (peak {} KiB)", path.display(), peak >> 10);
                clean &= outcome.is_ok();
            }
            continue;
        }
        let seeds = load_seeds(&corpus.join(name)).map_err(|e| format!("{}: {e}", corpus.join(name).display()))?;
        let report = fuzz(t.as_mut(), &seeds, &opts);
        print!("{report}");
        clean &= report.findings.is_empty();
    }
    Ok(clean)
}
