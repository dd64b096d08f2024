//! The plain-against-residual experiment as a user runs it, on a few digits: every network
//! trains and is reported, and the curves come out as a picture and a table of points.

#[path = "common/examples.rs"]
mod examples;

use examples::{run_example, write_digits};

#[test]
fn the_experiment_reports_all_eight_networks_and_draws_their_curves() {
    let dir = tempfile::tempdir().unwrap();
    write_digits(dir.path(), 64, 16);
    let out = dir.path().join("out");
    let run = run_example(
        "residual",
        dir.path(),
        &out,
        &["--train", "32", "--epochs", "1", "--batch-size", "16", "--points", "2"],
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("32 training and 16 test images"), "{stdout}");
    // A Markdown row per network, and the comparison for each kind of network.
    let rows = stdout.lines().filter(|l| l.starts_with("| plain-") || l.starts_with("| residual-")).count();
    assert_eq!(rows, 8, "{stdout}");
    assert!(stdout.contains("without batch normalisation: plain-56's final training loss is "), "{stdout}");
    assert!(stdout.contains("with batch normalisation: plain-56's final training loss is "), "{stdout}");
    assert!(std::fs::read(out.join("curves.png")).unwrap().starts_with(b"\x89PNG"));
    // Two points (of one step each) per network.
    let csv = std::fs::read_to_string(out.join("curves.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 8 * 2, "{csv}");
    assert!(csv
        .lines()
        .skip(1)
        .all(|l| l.split(',').nth(3).is_some_and(|v| v.parse::<f32>().is_ok_and(f32::is_finite))));
}

#[test]
fn missing_data_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_example("residual", &dir.path().join("nothing"), &dir.path().join("out"), &[]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("apt-get install dataset-fashion-mnist"), "{stderr}");
}
