//! A short fuzz run of every target, so that `cargo test --workspace` fails when a finding
//! appears. Each target runs once (serialised: the memory counters and the panic hook are
//! global) and every oracle has its own test, which fails with the findings' messages and the
//! paths of the inputs kept in `fuzz/findings/`.
//!
//! `CNN_FUZZ_CASES` sets the cases per target (default 20,000: about 10 s for all of them).

use std::collections::BTreeMap;
use std::sync::Mutex;

use cnn_fuzz::alloc::Counting;
use cnn_fuzz::targets::{self, NAMES};
use cnn_fuzz::{corpus_dir, findings_dir, fuzz, load_seeds, run_case, Options, Oracle, Report};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Reports of the runs so far, by target; the lock also keeps runs from overlapping.
static REPORTS: Mutex<BTreeMap<&'static str, Report>> = Mutex::new(BTreeMap::new());

/// Cases per target: CIFAR cases read six files each, and image-folder cases decode images in
/// threads they start, so they get fewer.
fn cases(target: &str) -> u64 {
    let base = std::env::var("CNN_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(20000);
    match target {
        "cifar" => base / 2,
        "image-folder" => base / 4,
        _ => base,
    }
}

/// The report of `target`'s run, running it the first time.
fn report(target: &'static str) -> Report {
    let mut reports = REPORTS.lock().unwrap_or_else(|e| e.into_inner());
    reports
        .entry(target)
        .or_insert_with(|| {
            let seeds = load_seeds(&corpus_dir().join(target)).expect("the committed corpus");
            let opts = Options { cases: cases(target), seed: 1, findings: Some(findings_dir()), ..Options::default() };
            let report = fuzz(targets::by_name(target).expect("a target").as_mut(), &seeds, &opts);
            print!("{report}");
            report
        })
        .clone()
}

/// Fails with the findings of `oracle` in `target`'s run, if any.
fn assert_none(target: &'static str, oracle: Oracle) {
    let report = report(target);
    let found = report.of(oracle);
    let lines: Vec<String> = found
        .iter()
        .map(|f| {
            let example = f.examples.first().map(|p| format!(" (input: {})", p.display())).unwrap_or_default();
            format!("  x{} {}{example}", f.count, f.message)
        })
        .collect();
    assert!(found.is_empty(), "{target}: {oracle} findings:\n{}", lines.join("\n"));
}

/// One test per target and oracle.
macro_rules! oracle_tests {
    ($($(#[$attr:meta])* $test:ident: $target:literal, $oracle:ident;)*) => {
        $(
            #[test]
            $(#[$attr])*
            fn $test() {
                assert_none($target, Oracle::$oracle);
            }
        )*
    };
}

oracle_tests! {
    idx_images_never_panic: "idx-images", Panic;
    idx_images_stay_within_memory: "idx-images", Memory;
    idx_images_are_consistent: "idx-images", WrongResult;
    idx_labels_never_panic: "idx-labels", Panic;
    idx_labels_stay_within_memory: "idx-labels", Memory;
    cifar_never_panics: "cifar", Panic;
    cifar_stays_within_memory: "cifar", Memory;
    cifar_is_consistent: "cifar", WrongResult;
    image_folder_never_panics: "image-folder", Panic;
    image_folder_stays_within_memory: "image-folder", Memory;
    image_folder_is_consistent: "image-folder", WrongResult;
    weights_never_panic: "weights", Panic;
    weights_stay_within_memory: "weights", Memory;
    weights_failed_loads_change_nothing: "weights", FailedLoadChanged;
    weights_loads_are_finite: "weights", NonFiniteWeights;
    weights_evaluate_after_load: "weights", WrongResult;
    checkpoint_never_panics: "checkpoint", Panic;
    checkpoint_stays_within_memory: "checkpoint", Memory;
    checkpoint_failed_loads_change_nothing: "checkpoint", FailedLoadChanged;
    checkpoint_loads_are_finite: "checkpoint", NonFiniteWeights;
    checkpoint_loads_a_usable_state: "checkpoint", LoadedState;
    checkpoint_loads_do_not_depend_on_the_previous_state: "checkpoint", LoadDependsOnPrevious;
    checkpoint_training_after_a_load_stays_finite: "checkpoint", TrainAfterLoad;
    api_never_panics: "api", Panic;
    api_stays_within_memory: "api", Memory;
    api_results_follow_the_docs: "api", WrongResult;
}

/// Every committed seed of a file parser is a valid input its target loads, so mutants start
/// from the real formats (regenerate with `cargo run -p cnn-fuzz -- --write-corpus fuzz/corpus`).
/// The API's seeds are programs, not files: the API test runs them.
#[test]
fn the_seed_corpus_loads() {
    let _lock = REPORTS.lock().unwrap_or_else(|e| e.into_inner());
    for name in NAMES.into_iter().filter(|n| *n != "api") {
        let mut target = targets::by_name(name).expect("a target");
        let seeds = load_seeds(&corpus_dir().join(name)).expect("the committed corpus");
        assert!(!seeds.is_empty(), "no seeds for {name}");
        for seed in seeds {
            let (outcome, _) = run_case(target.as_mut(), &seed.config, &seed.bytes);
            let signature = outcome.unwrap_or_else(|f| panic!("{name} {}: {f:?}", seed.config));
            let loaded = ["ok", "loaded and trained", "loaded"].contains(&signature.as_str());
            assert!(loaded, "{name} {}: {signature}", seed.config);
        }
    }
}

/// A seed gives the same cases, so a run and its findings repeat.
#[test]
fn a_seed_repeats_its_run() {
    let _lock = REPORTS.lock().unwrap_or_else(|e| e.into_inner());
    let seeds = load_seeds(&corpus_dir().join("api")).expect("the committed corpus");
    let run = |seed| {
        let opts = Options { cases: 300, seed, ..Options::default() };
        let r = fuzz(targets::by_name("api").expect("a target").as_mut(), &seeds, &opts);
        (r.outcomes, r.findings.iter().map(|f| (f.key.clone(), f.count)).collect::<Vec<_>>())
    };
    let first = run(7);
    assert_eq!(first, run(7));
    assert_ne!(first, run(8));
}
