//! Data-parallel training with ranks as threads: the same bits for any number of ranks, the
//! fast reduction close to it, failures on one rank undone on all, and resuming on another
//! number of ranks. The same properties under MPI are checked by `tests/mpi.rs` (`mpi` feature).

use cnn::distributed::{BatchStats, Collective, DataParallel, Reduction, Threads};
use cnn::io::{load_checkpoint, save_checkpoint, Progress};
use cnn::{cnn, Error, Model, Network, Optimizer, Sgd, Targets};

cnn! {
    /// Every layer that looks at the batch or at randomness: batch normalisation, dropout.
    struct Regular <
        input(10x10x2)
        conv(3x3, 6, pad=1, bias=false) batchnorm relu pool(2)
        residual(conv(3x3, 6, pad=1) relu)
        fc(24) relu dropout(0.3) fc(5) softmax
    >
}

cnn! {
    /// Batch normalisation after a convolution and after `fc`, and nothing random.
    struct Normed <
        input(6x6x2)
        conv(3x3, 4, bias=false) batchnorm relu pool(2)
        fc(10) batchnorm relu fc(3) softmax
    >
}

cnn! {
    /// Nothing random and nothing across samples but the loss.
    struct Plain < input(6x6x1) conv(3x3, 4) relu fc(12) tanh fc(3) softmax >
}

fn batch<M: Model>(n: usize, seed: usize) -> (Vec<f32>, Vec<usize>) {
    let x = (0..n * M::INPUT_LEN).map(|i| (((i + seed * 131) * 7919) % 255) as f32 / 255.0).collect();
    let y = (0..n).map(|i| (i * 3 + seed) % M::OUTPUT_LEN).collect();
    (x, y)
}

/// Parameters and buffers as bits after `steps` steps on `ranks` ranks (every rank's copy).
fn train<M: Model>(new: fn(u64) -> M, ranks: usize, reduction: Reduction, n: usize, steps: usize) -> Vec<Vec<u32>> {
    Threads::run(ranks, |comm| {
        let mut model = new(3);
        let mut opt = Sgd::new(0.05, 0.9).unwrap().with_weight_decay(1e-3).unwrap();
        let mut dp = DataParallel::new(comm).with_reduction(reduction);
        for s in 0..steps {
            let (x, y) = batch::<M>(n, s);
            let loss = dp.train_step(&mut model, &mut opt, &x, &y).unwrap();
            assert!(loss.is_finite() && loss > 0.0);
        }
        model.params().iter().chain(model.buffers()).map(|v| v.to_bits()).collect()
    })
}

#[test]
fn one_two_three_and_four_ranks_train_the_same_bits() {
    // 30 samples do not split evenly into 8 groups; 64 do.
    for n in [30, 64] {
        let alone = train(Regular::with_seed, 1, Reduction::Exact, n, 4);
        for ranks in [2, 3, 4, 8] {
            let copies = train(Regular::with_seed, ranks, Reduction::Exact, n, 4);
            for (rank, copy) in copies.iter().enumerate() {
                assert!(copy == &alone[0], "batch {n}: rank {rank} of {ranks} differs from one rank alone");
            }
        }
    }
}

#[test]
fn the_fast_reduction_stays_close_to_the_exact_one() {
    let exact = train(Plain::with_seed, 1, Reduction::Exact, 48, 6);
    for ranks in [2, 4] {
        let fast = train(Plain::with_seed, ranks, Reduction::Fast, 48, 6);
        assert_eq!(fast[0], fast[ranks - 1], "every rank holds the same model");
        let worst = exact[0]
            .iter()
            .zip(&fast[0])
            .map(|(&a, &b)| (f32::from_bits(a) - f32::from_bits(b)).abs() / (1.0 + f32::from_bits(a).abs()))
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "{ranks} ranks: the fast reduction differs by {worst}");
        assert!(fast[0] != exact[0], "{ranks} ranks: the sums were expected to round differently");
    }
}

#[test]
fn exact_steps_on_one_rank_follow_plain_training_steps() {
    let (x, y) = batch::<Plain>(32, 1);
    let mut plain = Plain::with_seed(3);
    let mut opt = Sgd::new(0.05, 0.9).unwrap();
    for _ in 0..3 {
        plain.train_step(&mut opt, &x, &y).unwrap();
    }
    let dp = Threads::run(1, |comm| {
        let (mut model, mut opt) = (Plain::with_seed(3), Sgd::new(0.05, 0.9).unwrap());
        let mut dp = DataParallel::new(comm);
        for _ in 0..3 {
            dp.train_step(&mut model, &mut opt, &x, &y).unwrap();
        }
        model.params().to_vec()
    });
    for (a, b) in plain.params().iter().zip(&dp[0]) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + a.abs()), "{a} against {b}");
    }
}

/// Parameters and buffers after 3 data-parallel steps on a batch of 40 (every rank's copy).
fn normed_steps(ranks: usize, reduction: Reduction, stats: BatchStats) -> Vec<Vec<f32>> {
    let (x, y) = batch::<Normed>(40, 2);
    Threads::run(ranks, |comm| {
        let (mut model, mut opt) = (Normed::with_seed(4), Sgd::new(0.1, 0.9).unwrap());
        let mut dp = DataParallel::new(comm).with_reduction(reduction).with_batch_stats(stats);
        for _ in 0..3 {
            dp.train_step(&mut model, &mut opt, &x, &y).unwrap();
        }
        model.params().iter().chain(model.buffers()).copied().collect()
    })
}

/// The largest difference between `a` and `b`, relative to `1 + |a|`.
fn worst(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(a, b)| (a - b).abs() / (1.0 + a.abs())).fold(0.0, f32::max)
}

#[test]
fn batch_norm_takes_the_statistics_of_the_whole_global_batch() {
    let (x, y) = batch::<Normed>(40, 2);
    let (mut plain, mut opt) = (Normed::with_seed(4), Sgd::new(0.1, 0.9).unwrap());
    for _ in 0..3 {
        plain.train_step(&mut opt, &x, &y).unwrap();
    }
    let plain: Vec<f32> = plain.params().iter().chain(plain.buffers()).copied().collect();
    // Exact: 8 groups of 5 whose sums are added in one tree, on 1, 2 and 4 ranks.
    let exact = normed_steps(1, Reduction::Exact, BatchStats::Global);
    assert!(worst(&plain, &exact[0]) < 1e-5, "exact differs from one pass by {}", worst(&plain, &exact[0]));
    for ranks in [2, 4] {
        for copy in normed_steps(ranks, Reduction::Exact, BatchStats::Global) {
            assert!(copy.iter().map(|v| v.to_bits()).eq(exact[0].iter().map(|v| v.to_bits())), "{ranks} ranks");
        }
        let fast = normed_steps(ranks, Reduction::Fast, BatchStats::Global);
        assert!(worst(&plain, &fast[0]) < 1e-5, "fast on {ranks} ranks differs by {}", worst(&plain, &fast[0]));
    }
    // Statistics over each group alone train another model.
    let ghost = normed_steps(2, Reduction::Exact, BatchStats::Local);
    assert!(worst(&plain, &ghost[0]) > 1e-3, "ghost batches differ by only {}", worst(&plain, &ghost[0]));
}

#[test]
fn a_rank_that_fails_before_its_passes_still_ends_the_rounds_of_statistics() {
    for reduction in [Reduction::Exact, Reduction::Fast] {
        let errors = Threads::run(3, |comm| {
            let (mut model, mut opt) = (Normed::with_seed(1), Sgd::new(0.1, 0.0).unwrap());
            let mut dp = DataParallel::new(comm).with_reduction(reduction);
            let (x, y) = batch::<Normed>(24, 0);
            let shard = dp.shard(24);
            // Rank 1 gives one sample too few.
            let take = if comm.rank() == 1 { shard.start..shard.end - 1 } else { shard };
            let before = model.params().to_vec();
            let x_shard = &x[take.start * Normed::INPUT_LEN..take.end * Normed::INPUT_LEN];
            let err = dp.train_shard(&mut model, &mut opt, 24, x_shard, Targets::Labels(&y[take])).unwrap_err();
            assert!(before == model.params(), "rank {}: the failed step changed the model", comm.rank());
            dp.train_step(&mut model, &mut opt, &x, &y).unwrap();
            err.to_string()
        });
        assert!(errors[1].contains("computes samples"), "{reduction:?}, rank 1: {}", errors[1]);
        for rank in [0, 2] {
            let named = errors[rank].contains("rank 1") || errors[rank].contains("1 other rank");
            assert!(named, "{reduction:?}, rank {rank}: {}", errors[rank]);
        }
    }
}

#[test]
fn a_failing_rank_leaves_every_rank_as_before_the_step() {
    let results = Threads::run(4, |comm| {
        let mut model = Regular::with_seed(5);
        let mut opt = Sgd::new(0.05, 0.9).unwrap();
        let mut dp = DataParallel::new(comm);
        let (x, mut y) = batch::<Regular>(32, 0);
        dp.train_step(&mut model, &mut opt, &x, &y).unwrap();
        let before = (model.params().to_vec(), model.buffers().to_vec(), model.noise(), sgd_state(&opt));
        // A label out of range in rank 2's shard (samples 16..24).
        y[17] = 99;
        let err = dp.train_step(&mut model, &mut opt, &x, &y).unwrap_err();
        let after = (model.params().to_vec(), model.buffers().to_vec(), model.noise(), sgd_state(&opt));
        assert!(before == after, "rank {}: the failed step changed the model", comm.rank());
        // The next step goes on as if the failed one had not been tried.
        y[17] = 0;
        dp.train_step(&mut model, &mut opt, &x, &y).unwrap();
        err
    });
    for (rank, err) in results.iter().enumerate() {
        if rank == 2 {
            assert!(matches!(err, Error::LabelOutOfRange { .. }), "rank 2: {err}");
        } else {
            let text = err.to_string();
            assert!(matches!(err, Error::Distributed { .. }) && text.contains("rank 2"), "rank {rank}: {text}");
        }
    }
}

/// The optimizer's state as bits.
fn sgd_state(opt: &Sgd) -> Vec<Vec<u32>> {
    opt.state().iter().map(|(_, v)| v.iter().map(|x| x.to_bits()).collect()).collect()
}

#[test]
fn a_checkpoint_resumes_on_another_number_of_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    let steps =
        |model: &mut Regular, opt: &mut Sgd, dp: &mut DataParallel<'_, Threads>, range: std::ops::Range<usize>| {
            for s in range {
                let (x, y) = batch::<Regular>(40, s);
                dp.train_step(model, opt, &x, &y).unwrap();
            }
        };
    let straight = Threads::run(1, |comm| {
        let (mut model, mut opt) = (Regular::with_seed(2), Sgd::new(0.05, 0.9).unwrap());
        steps(&mut model, &mut opt, &mut DataParallel::new(comm), 0..4);
        model.params().to_vec()
    });
    Threads::run(2, |comm| {
        let (mut model, mut opt) = (Regular::with_seed(2), Sgd::new(0.05, 0.9).unwrap());
        let mut dp = DataParallel::new(comm);
        steps(&mut model, &mut opt, &mut dp, 0..2);
        if dp.is_root() {
            save_checkpoint(&model, &opt, Progress { epoch: 0, step: 2, seed: 0 }, &path).unwrap();
        }
    });
    let resumed = Threads::run(4, |comm| {
        let (mut model, mut opt) = (Regular::with_seed(99), Sgd::new(0.05, 0.9).unwrap());
        let progress = load_checkpoint(&mut model, &mut opt, &path).unwrap();
        assert_eq!(progress.step, 2);
        steps(&mut model, &mut opt, &mut DataParallel::new(comm), 2..4);
        model.params().to_vec()
    });
    for copy in &resumed {
        assert!(copy.iter().map(|v| v.to_bits()).eq(straight[0].iter().map(|v| v.to_bits())));
    }
}

#[test]
fn bad_arguments_are_errors() {
    Threads::run(2, |comm| {
        assert!(DataParallel::new(comm).with_groups(6).is_err());
        assert!(DataParallel::new(comm).with_groups(1).is_err());
        assert_eq!(DataParallel::new(comm).with_groups(2).unwrap().groups(), 2);
        let mut dp = DataParallel::new(comm);
        let (mut model, mut opt) = (Plain::with_seed(1), Sgd::new(0.1, 0.0).unwrap());
        let (x, y) = batch::<Plain>(16, 0);
        // Both ranks see the same wrong argument, so neither waits for the other.
        let err = dp.train_step(&mut model, &mut opt, &x[..x.len() - 1], &y).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { name: "x", .. }), "{err}");
        let err =
            dp.train_shard(&mut model, &mut opt, 16, &x[..3 * Plain::INPUT_LEN], Targets::Labels(&y[..3])).unwrap_err();
        assert!(err.to_string().contains("computes samples"), "{err}");
        assert_eq!(dp.shard(16), [0..8, 8..16][comm.rank()]);
    });
}
