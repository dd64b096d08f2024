//! The mutation loop: picks corpus entries, mutates them, runs each case under
//! `catch_unwind` with the memory counters reset, and files what the oracles report.

use std::collections::{BTreeMap, HashSet};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};
use std::time::Instant;
use std::{fmt, fs, io};

use crate::alloc;
use crate::rng::{fnv, Rng};

/// What a finding broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Oracle {
    /// The case panicked.
    Panic,
    /// The case's peak of live memory passed its ceiling.
    Memory,
    /// A load failed but changed the model or the optimizer.
    FailedLoadChanged,
    /// A checkpoint loaded into a state that training cannot use: a learning rate that is not
    /// finite and positive, a state value that is not finite, a counter past its maximum.
    LoadedState,
    /// A checkpoint loaded into a state that depends on what the optimizer held before.
    LoadDependsOnPrevious,
    /// The training step after a successful checkpoint load gave a loss or parameters that are
    /// not finite.
    TrainAfterLoad,
    /// A weights load succeeded with parameters or buffers that are not finite.
    NonFiniteWeights,
    /// A call returned a result that contradicts its documentation.
    WrongResult,
}

impl fmt::Display for Oracle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// An oracle's complaint about a case that did not panic.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// Which oracle.
    pub oracle: Oracle,
    /// What it saw.
    pub message: String,
}

impl Failure {
    /// A complaint of `oracle`.
    pub fn new(oracle: Oracle, message: impl Into<String>) -> Failure {
        Failure { oracle, message: message.into() }
    }
}

/// What one case gave: a short signature of its result (`Ok`), whose novelty decides whether the
/// case joins the corpus, or a failure.
pub type Outcome = Result<String, Failure>;

/// One fuzz target: a parser or the public API, with its mutations and oracles.
pub trait Target {
    /// The name used on the command line and for the corpus directory.
    fn name(&self) -> &'static str;
    /// A mutant of `parent`; `other` is another corpus entry, for splicing.
    fn mutate(&self, rng: &mut Rng, parent: &[u8], other: &[u8]) -> Vec<u8>;
    /// Runs one case. `config` names the model and optimizer it is meant for (the corpus file
    /// name before its first dot).
    fn run(&mut self, config: &str, input: &[u8]) -> Outcome;
    /// The configurations a case may be switched to, to test loading files into the wrong model.
    fn configs(&self) -> &'static [&'static str] {
        &[]
    }
}

/// A corpus entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seed {
    /// The file name before its first dot.
    pub config: String,
    /// The input.
    pub bytes: Vec<u8>,
}

/// The configuration in a corpus or finding file name: the part before the first dot.
pub fn config_of(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    name.split('.').next().unwrap_or_default().to_string()
}

/// The files of `dir` as seeds, in name order.
pub fn load_seeds(dir: &Path) -> io::Result<Vec<Seed>> {
    let mut paths: Vec<PathBuf> =
        fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<io::Result<Vec<_>>>()?.into_iter().collect();
    paths.retain(|p| p.is_file());
    paths.sort();
    paths.iter().map(|p| Ok(Seed { config: config_of(p), bytes: fs::read(p)? })).collect()
}

/// How a run goes.
#[derive(Clone, Debug)]
pub struct Options {
    /// Mutated cases to run (the seeds themselves run first, on top of these).
    pub cases: u64,
    /// The generator's seed: the same seed and corpus give the same cases.
    pub seed: u64,
    /// Where inputs that produced a finding go (`DIR/TARGET/CONFIG.HASH.bin`), if anywhere.
    pub findings: Option<PathBuf>,
    /// Inputs kept per distinct finding.
    pub keep: usize,
    /// Print a progress line this often, in seconds (never when 0).
    pub progress: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options { cases: 1000, seed: 0, findings: None, keep: 8, progress: 0 }
    }
}

/// One distinct finding: all cases whose failure has the same key.
#[derive(Clone, Debug)]
pub struct Finding {
    /// Which oracle.
    pub oracle: Oracle,
    /// The failure with numbers blanked: what makes two failures the same finding.
    pub key: String,
    /// The first failure's full message.
    pub message: String,
    /// Cases that produced it.
    pub count: u64,
    /// Inputs kept.
    pub examples: Vec<PathBuf>,
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct Report {
    /// The target.
    pub target: &'static str,
    /// Cases run, seeds included.
    pub cases: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Distinct findings, most frequent first.
    pub findings: Vec<Finding>,
    /// Distinct result signatures seen.
    pub outcomes: usize,
    /// The largest peak of live bytes of one case.
    pub max_peak: usize,
    /// The slowest case, in seconds.
    pub slowest: f64,
}

impl Report {
    /// Cases that produced a finding.
    pub fn failures(&self) -> u64 {
        self.findings.iter().map(|f| f.count).sum()
    }

    /// The findings of `oracle`.
    pub fn of(&self, oracle: Oracle) -> Vec<&Finding> {
        self.findings.iter().filter(|f| f.oracle == oracle).collect()
    }

    /// Cases per second.
    pub fn rate(&self) -> f64 {
        self.cases as f64 / self.seconds.max(1e-9)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} cases in {:.1} s ({:.0} cases/s), {} failures ({} distinct), {} outcomes, peak {} KiB, slowest case {:.1} ms",
            self.target,
            self.cases,
            self.seconds,
            self.rate(),
            self.failures(),
            self.findings.len(),
            self.outcomes,
            self.max_peak >> 10,
            self.slowest * 1e3
        )?;
        for finding in &self.findings {
            write!(f, "  [{}] x{}: {}", finding.oracle, finding.count, finding.message.lines().next().unwrap_or(""))?;
            match finding.examples.first() {
                Some(path) => writeln!(f, " ({})", path.display())?,
                None => writeln!(f)?,
            }
        }
        Ok(())
    }
}

/// The panic being captured: message and location of the first panic while capturing.
static CAUGHT: Mutex<Option<(bool, Option<String>)>> = Mutex::new(None);

/// Installs, once, a panic hook that records panics while a case runs (on any thread: a rayon
/// worker's panic reaches the caller through `join`) and passes others on to the default hook.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let mut caught = CAUGHT.lock().unwrap_or_else(|e| e.into_inner());
            match caught.as_mut() {
                Some((true, slot @ None)) => {
                    let message = info
                        .payload()
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| info.payload().downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "(a panic without a message)".into());
                    let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
                    *slot = Some(format!("panic at {at}: {message}"));
                }
                Some((true, Some(_))) => {}
                _ => {
                    drop(caught);
                    previous(info);
                }
            }
        }));
    });
}

/// Replaces every run of digits with `#`, so that failures differing only in numbers count as one.
fn blank_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !out.ends_with('#') {
                out.push('#');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The memory a case may use: 64 MiB, or 64 times its input.
pub fn ceiling(input_len: usize) -> usize {
    (64 << 20usize).max(input_len.saturating_mul(64))
}

/// Runs one case under the oracles of panics and memory. Returns the outcome and the case's
/// peak of live bytes above what was live before it.
pub fn run_case(target: &mut dyn Target, config: &str, input: &[u8]) -> (Outcome, usize) {
    install_hook();
    *CAUGHT.lock().unwrap_or_else(|e| e.into_inner()) = Some((true, None));
    let base = alloc::live();
    alloc::reset_peak();
    let result = panic::catch_unwind(AssertUnwindSafe(|| target.run(config, input)));
    let peak = alloc::peak().saturating_sub(base);
    let caught = CAUGHT.lock().unwrap_or_else(|e| e.into_inner()).take();
    let outcome = match result {
        Err(_) => {
            let message = caught.and_then(|c| c.1).unwrap_or_else(|| "panic (no message captured)".into());
            Err(Failure::new(Oracle::Panic, message))
        }
        Ok(_) if peak > ceiling(input.len()) => Err(Failure::new(
            Oracle::Memory,
            format!(
                "peak of {} MiB live for a {}-byte input, over the ceiling of {} MiB",
                peak >> 20,
                input.len(),
                ceiling(input.len()) >> 20
            ),
        )),
        Ok(outcome) => outcome,
    };
    (outcome, peak)
}

/// Runs the seeds, then `opts.cases` mutants, and reports what the oracles found.
///
/// # Panics
///
/// When [`alloc::Counting`] is not the global allocator (the memory oracle would be blind), or
/// `seeds` is empty.
pub fn fuzz(target: &mut dyn Target, seeds: &[Seed], opts: &Options) -> Report {
    assert!(alloc::installed(), "declare `#[global_allocator] static A: cnn_fuzz::alloc::Counting = ...`");
    assert!(!seeds.is_empty(), "no seeds for {}", target.name());
    let start = Instant::now();
    let mut rng = Rng::new(opts.seed);
    let mut pool: Vec<Seed> = seeds.to_vec();
    let mut outcomes = HashSet::new();
    let mut findings: BTreeMap<String, Finding> = BTreeMap::new();
    let (mut max_peak, mut slowest, mut last_progress) = (0usize, 0f64, 0u64);
    let total = seeds.len() as u64 + opts.cases;
    for case in 0..total {
        let seed = if (case as usize) < seeds.len() {
            seeds[case as usize].clone()
        } else {
            let (parent, other) = (&pool[rng.below(pool.len())], &pool[rng.below(pool.len())]);
            let mut config = parent.config.clone();
            let configs = target.configs();
            if !configs.is_empty() && rng.one_in(32) {
                config = rng.pick(configs).to_string();
            }
            Seed { bytes: target.mutate(&mut rng, &parent.bytes, &other.bytes), config }
        };
        let t0 = Instant::now();
        let (outcome, peak) = run_case(target, &seed.config, &seed.bytes);
        slowest = slowest.max(t0.elapsed().as_secs_f64());
        max_peak = max_peak.max(peak);
        match outcome {
            Ok(signature) => {
                if outcomes.insert(blank_numbers(&signature)) && pool.len() < 1024 {
                    pool.push(seed);
                }
            }
            Err(failure) => {
                let key = format!("{}: {}", failure.oracle, blank_numbers(&failure.message));
                let finding = findings.entry(key.clone()).or_insert_with(|| Finding {
                    oracle: failure.oracle,
                    key,
                    message: failure.message.clone(),
                    count: 0,
                    examples: Vec::new(),
                });
                finding.count += 1;
                if let Some(dir) = opts.findings.as_ref().filter(|_| finding.examples.len() < opts.keep) {
                    let dir = dir.join(target.name());
                    let path = dir.join(format!("{}.{:016x}.bin", seed.config, fnv(&seed.bytes)));
                    if fs::create_dir_all(&dir).and_then(|()| fs::write(&path, &seed.bytes)).is_ok() {
                        finding.examples.push(path);
                    }
                }
            }
        }
        let seconds = start.elapsed().as_secs();
        if opts.progress > 0 && seconds >= last_progress + opts.progress {
            last_progress = seconds;
            let failures: u64 = findings.values().map(|f| f.count).sum();
            eprintln!(
                "  {}: {case} cases, {:.0}/s, {failures} failures ({} distinct), corpus {}",
                target.name(),
                case as f64 / start.elapsed().as_secs_f64(),
                findings.len(),
                pool.len()
            );
        }
    }
    let mut findings: Vec<Finding> = findings.into_values().collect();
    findings.sort_by(|a, b| b.count.cmp(&a.count).then(a.key.cmp(&b.key)));
    Report {
        target: target.name(),
        cases: total,
        seconds: start.elapsed().as_secs_f64(),
        findings,
        outcomes: outcomes.len(),
        max_peak,
        slowest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_blanked_and_configs_read_from_names() {
        assert_eq!(blank_numbers("index 12 out of range for 3"), "index # out of range for #");
        assert_eq!(config_of(Path::new("a/small-adam.0123.bin")), "small-adam");
        assert_eq!(ceiling(10), 64 << 20);
        assert_eq!(ceiling(2 << 20), 128 << 20);
    }
}
