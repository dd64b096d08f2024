//! Data-parallel training under `mpirun` (the `mpi` feature): 1, 2 and 4 ranks train
//! bitwise-identical models, a checkpoint saved on 2 ranks resumes on 4, the fast reduction stays
//! close, and a rank that dies ends the job within seconds, leaving the last checkpoint whole.
//!
//! Each test runs this test binary under `mpirun` with `CNN_MPI_WORKER` set, which makes
//! [`worker`] train instead of returning at once. Needs Open MPI (`mpirun` on the `PATH`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cnn::distributed::mpi::Mpi;
use cnn::distributed::{Collective, DataParallel, Reduction};
use cnn::io::{load_checkpoint, save_checkpoint, save_weights, Progress};
use cnn::{cnn, Network, Sgd};

cnn! {
    struct Regular <
        input(10x10x2)
        conv(3x3, 6, pad=1, bias=false) batchnorm relu pool(2)
        residual(conv(3x3, 6, pad=1) relu)
        fc(24) relu dropout(0.3) fc(5) softmax
    >
}

const BATCH: usize = 48;

fn batch(step: u64) -> (Vec<f32>, Vec<usize>) {
    let s = step as usize;
    let x = (0..BATCH * Regular::INPUT_LEN).map(|i| (((i + s * 131) * 7919) % 255) as f32 / 255.0).collect();
    let y = (0..BATCH).map(|i| (i * 3 + s) % 5).collect();
    (x, y)
}

/// What a worker does, from its environment: `CNN_MPI_OUT` (a directory), `CNN_MPI_STEPS`
/// (train up to this step), `CNN_MPI_RESUME` (start from `OUT/checkpoint.safetensors`),
/// `CNN_MPI_FAST`, `CNN_MPI_DIE` (`rank:step`: that rank aborts before that step),
/// `CNN_MPI_BAD` (`rank:step`: that rank's shard gets a label out of range at that step).
#[test]
fn worker() {
    let Some(out) = std::env::var_os("CNN_MPI_OUT").map(PathBuf::from) else { return };
    let var = |name: &str| std::env::var(name).ok();
    let steps: u64 = var("CNN_MPI_STEPS").and_then(|s| s.parse().ok()).unwrap_or(4);
    let at = |name: &str| -> Option<(usize, u64)> {
        let v = var(name)?;
        let (r, s) = v.split_once(':')?;
        Some((r.parse().ok()?, s.parse().ok()?))
    };
    let (die, bad) = (at("CNN_MPI_DIE"), at("CNN_MPI_BAD"));
    let comm = Mpi::init().expect("MPI");
    let reduction = if var("CNN_MPI_FAST").is_some() { Reduction::Fast } else { Reduction::Exact };
    let mut dp = DataParallel::new(&comm).with_reduction(reduction);
    let mut model = Regular::with_seed(7);
    let mut opt = Sgd::new(0.05, 0.9).unwrap();
    let checkpoint = out.join("checkpoint.safetensors");
    let mut step = 0;
    if var("CNN_MPI_RESUME").is_some() {
        step = load_checkpoint(&mut model, &mut opt, &checkpoint).expect("the checkpoint").step;
    }
    while step < steps {
        if die == Some((comm.rank(), step)) {
            eprintln!("rank {} dies before step {step}", comm.rank());
            std::process::abort();
        }
        let (x, mut y) = batch(step);
        if bad == Some((comm.rank(), step)) {
            // A label no class has, in this rank's shard.
            y[dp.shard(BATCH).start] = 99;
        }
        dp.train_step(&mut model, &mut opt, &x, &y).unwrap_or_else(|e| {
            eprintln!("rank {}: {e}", comm.rank());
            comm.abort(2)
        });
        step += 1;
        if dp.is_root() {
            save_checkpoint(&model, &opt, Progress { epoch: 0, step, seed: 0 }, &checkpoint).expect("saved");
        }
    }
    // Every rank writes its copy, to show that all of them hold the same model.
    save_weights(&model, &out.join(format!("rank{}.safetensors", comm.rank()))).expect("saved");
}

/// Runs the worker on `ranks` ranks with `env`; returns whether it succeeded, its output and
/// how long it took. A run past two minutes is killed and fails the test.
fn mpirun(ranks: usize, out: &Path, env: &[(&str, &str)]) -> (bool, String, Duration) {
    let exe = std::env::current_exe().expect("the test binary");
    let mut cmd = Command::new("mpirun");
    cmd.args(["--oversubscribe", "--allow-run-as-root", "--bind-to", "none", "-np"])
        .arg(ranks.to_string())
        .arg(exe)
        .args(["--exact", "worker", "--test-threads", "1", "--nocapture"])
        .env("CNN_MPI_OUT", out)
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let mut child = cmd.spawn().expect("mpirun (install openmpi-bin)");
    loop {
        if child.try_wait().expect("waiting for mpirun").is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("mpirun -np {ranks} with {env:?} hung");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = start.elapsed();
    let output = child.wait_with_output().expect("mpirun's output");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text, took)
}

/// Runs `ranks` ranks in a new directory, asserting success; returns the directory and rank
/// 0's weights (after checking that every rank wrote the same).
fn trained(ranks: usize, env: &[(&str, &str)]) -> (tempfile::TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().expect("a directory");
    let (ok, text, _) = mpirun(ranks, dir.path(), env);
    assert!(ok, "mpirun -np {ranks} {env:?} failed:\n{text}");
    let first = std::fs::read(dir.path().join("rank0.safetensors")).expect("rank 0's weights");
    for r in 1..ranks {
        let other = std::fs::read(dir.path().join(format!("rank{r}.safetensors"))).expect("a rank's weights");
        assert!(other == first, "rank {r} of {ranks} holds another model");
    }
    (dir, first)
}

#[test]
fn one_two_and_four_ranks_train_the_same_bits() {
    let (_d1, one) = trained(1, &[]);
    let (_d2, two) = trained(2, &[]);
    let (_d4, four) = trained(4, &[]);
    assert!(two == one, "2 ranks differ from 1");
    assert!(four == one, "4 ranks differ from 1");
    // The fast reduction runs too, and every rank ends with the same model.
    trained(2, &[("CNN_MPI_FAST", "1")]);
}

#[test]
fn a_run_resumes_on_another_number_of_ranks() {
    let (_straight, want) = trained(2, &[("CNN_MPI_STEPS", "5")]);
    let dir = tempfile::tempdir().expect("a directory");
    let (ok, text, _) = mpirun(2, dir.path(), &[("CNN_MPI_STEPS", "2")]);
    assert!(ok, "{text}");
    let (ok, text, _) = mpirun(4, dir.path(), &[("CNN_MPI_STEPS", "5"), ("CNN_MPI_RESUME", "1")]);
    assert!(ok, "{text}");
    let got = std::fs::read(dir.path().join("rank0.safetensors")).expect("weights");
    assert!(got == want, "2 steps on 2 ranks and 3 on 4 differ from 5 on 2");
}

#[test]
fn a_dying_rank_ends_the_job_and_the_checkpoint_stays_whole() {
    let dir = tempfile::tempdir().expect("a directory");
    let (ok, text, took) = mpirun(4, dir.path(), &[("CNN_MPI_STEPS", "6"), ("CNN_MPI_DIE", "2:3")]);
    assert!(!ok, "the job should fail:\n{text}");
    assert!(took < Duration::from_secs(60), "the job took {took:?} to end");
    println!("4 ranks, rank 2 dying before step 3 of 6: the job ended after {took:?}");
    assert!(text.contains("rank 2 dies before step 3"), "{text}");
    let (mut model, mut opt) = (Regular::with_seed(0), Sgd::new(0.05, 0.9).unwrap());
    let progress = load_checkpoint(&mut model, &mut opt, &dir.path().join("checkpoint.safetensors"));
    assert_eq!(progress.expect("the last checkpoint loads").step, 3);
}

#[test]
fn a_failing_rank_ends_the_job_naming_it() {
    let dir = tempfile::tempdir().expect("a directory");
    let (ok, text, took) = mpirun(4, dir.path(), &[("CNN_MPI_STEPS", "6"), ("CNN_MPI_BAD", "1:2")]);
    assert!(!ok, "the job should fail:\n{text}");
    assert!(took < Duration::from_secs(60), "the job took {took:?} to end");
    println!("4 ranks, rank 1 failing in step 2 of 6: the job ended after {took:?}");
    assert!(text.contains("rank 1: label 99"), "rank 1 prints its own error:\n{text}");
    let (mut model, mut opt) = (Regular::with_seed(0), Sgd::new(0.05, 0.9).unwrap());
    let progress = load_checkpoint(&mut model, &mut opt, &dir.path().join("checkpoint.safetensors"));
    assert_eq!(progress.expect("the last checkpoint loads").step, 2);
}
