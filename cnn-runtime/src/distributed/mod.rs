//! Data-parallel training over several processes (ranks): each rank computes the gradient of its
//! shard of every global batch, the ranks combine their gradients, and every rank takes the same
//! optimizer step, so all of them hold the same model after each step.
//!
//! The ranks talk through a [`Collective`]: MPI with the `mpi` feature (`mpi::Mpi`), or
//! [`Threads`] (ranks as threads of one process, for tests and for trying a program without
//! MPI). [`DataParallel`] runs the steps.
//!
//! # Reproducible across rank counts
//! With [`Reduction::Exact`] (the default) a global batch of `n` samples is cut into `G` fixed
//! groups of consecutive samples (`G` = [`DataParallel::groups`], 8 unless set; group `g` holds
//! the samples `g·n/G .. (g+1)·n/G` of the batch). Each group's gradient is computed on its own,
//! exactly as a one-process run computes it, and the groups' gradients are added in one fixed
//! binary tree over the group indices. A rank owns a run of whole groups and adds its part of
//! the tree; the ranks then exchange their partial sums and each adds the rest of the tree in
//! the same order. Floating-point addition is not associative, but a fixed
//! tree of additions gives the same bits whoever computes its nodes, so 1, 2, 4 or any number of
//! ranks up to `G` train bitwise-identical models, and a run checkpointed on one number of ranks
//! resumes on another with the same result.
//!
//! What that costs, and what it means for the layers that look at the whole batch:
//! - Batch normalisation takes its statistics over the whole global batch
//!   ([`BatchStats::Global`], the default), as one process training on that batch would: a
//!   rank's passes (one per group it owns) run at once, each on its own thread and copy of the
//!   model, and at each batch normalisation they hand their per-channel sums (in `f64`) to the
//!   rank, which gathers every rank's and adds them in one fixed tree over the groups, the
//!   same on every rank. That is two small exchanges per batch normalisation per step (the
//!   sums of the values, shifted by the running mean, and of their squares forward; two
//!   gradient sums backward). [`BatchStats::Local`] normalises each group over its own samples
//!   instead (a "ghost batch" of `n/G`, whose running statistics follow the mean of the
//!   groups' updates), with no exchange during the passes and the passes one after the other;
//!   it is reproducible across rank counts too.
//! - Dropout masks and the model's other randomness depend on the step, the group and the
//!   sample's place in the group, i.e. on the sample's place in the global batch, never on the
//!   rank.
//! - Each rank makes one pass per group it owns (smaller matrix products than one pass over the
//!   shard). When the number of ranks `R` is a power of two, the ranks add the top of the tree
//!   in `log2 R` rounds of pairwise exchanges (rank `r` with `r ^ 2^k`), each rank receiving
//!   `log2 R` gradients per step, against about two for a ring all-reduce; for other `R` every
//!   rank gathers the others' partial sums (`MPI_Allgatherv`, `R − 1` gradients).
//!
//! [`Reduction::Fast`] instead makes one pass over each rank's shard and sums the gradients with
//! the collective's own all-reduce (`MPI_Allreduce`), whose order of additions is the
//! implementation's: faster, but the weights then depend (in their last bits, and through
//! dropout in more) on the number of ranks. Its batch normalisation takes its statistics over
//! the global batch as well (the ranks' sums added in rank order), or over each rank's shard
//! with [`BatchStats::Local`].
//!
//! # Failures
//! Every rank checks its passes as [`Model::train_step`] does. A rank whose pass fails (a
//! diverging step, a bad target) still takes part in the exchange, so no rank waits forever: it
//! returns its own error, and every other rank returns [`Error::Distributed`] naming it; all of
//! them leave the model as it was before the step. A rank that dies ends the job: MPI's launcher
//! stops the others (and [`Collective::abort`] ends the job from a rank that cannot go on).

mod batch_stats;
#[cfg(feature = "mpi")]
pub mod mpi;
mod threads;

use core::ops::Range;

use crate::init::splitmix;
use crate::optim::MAX_STEPS;
use crate::{Error, Model, Noise, Optimizer, Result, Targets, TensorKind};

use batch_stats::{has_batch_norm, Job, Leaves, Passes, Worker};
pub use threads::Threads;

/// How the ranks of a job talk: the two collective operations data-parallel training needs.
///
/// Every rank calls each operation in the same order; a call returns once every rank has made
/// it.
pub trait Collective {
    /// This rank's index, from 0 to [`size`](Collective::size) − 1.
    fn rank(&self) -> usize;

    /// Number of ranks in the job.
    fn size(&self) -> usize;

    /// Gathers `counts[r]` values from each rank `r` (its `send`) into `recv`, rank after rank,
    /// on every rank. `counts` is the same on every rank and `recv` holds their sum.
    fn all_gather(&self, send: &[f32], counts: &[usize], recv: &mut [f32]) -> Result<()>;

    /// Sends `send` to rank `partner` and receives what it sends into `recv` (as many values):
    /// both ranks call it at once, as every rank does in a round of pairwise exchanges.
    fn exchange(&self, partner: usize, send: &[f32], recv: &mut [f32]) -> Result<()>;

    /// Replaces `values` with their sum over the ranks (element by element), added in the order
    /// the implementation chooses.
    fn all_sum(&self, values: &mut [f32]) -> Result<()>;

    /// Ends every rank of the job with exit status `code`, after this rank printed why.
    fn abort(&self, code: i32) -> !;
}

/// One process on its own: rank 0 of 1. [`DataParallel`] over it trains exactly as over any
/// number of ranks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Solo;

impl Collective for Solo {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn all_gather(&self, send: &[f32], counts: &[usize], recv: &mut [f32]) -> Result<()> {
        check_gather(send, counts, recv, 0)?;
        recv.copy_from_slice(send);
        Ok(())
    }

    fn exchange(&self, partner: usize, send: &[f32], recv: &mut [f32]) -> Result<()> {
        if partner != 0 || send.len() != recv.len() {
            return Err(Error::Distributed { reason: format!("rank 0 of 1 cannot exchange with rank {partner}") });
        }
        recv.copy_from_slice(send);
        Ok(())
    }

    fn all_sum(&self, _values: &mut [f32]) -> Result<()> {
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// `Err` unless `send` holds `counts[rank]` values and `recv` their sum over the ranks.
pub(crate) fn check_gather(send: &[f32], counts: &[usize], recv: &[f32], rank: usize) -> Result<()> {
    let total: usize = counts.iter().sum();
    if counts.get(rank) != Some(&send.len()) || recv.len() != total {
        return Err(Error::Distributed {
            reason: format!(
                "all_gather of {} values from rank {rank} with counts {counts:?} into {} values",
                send.len(),
                recv.len()
            ),
        });
    }
    Ok(())
}

/// How [`DataParallel`] combines the ranks' gradients.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// Fixed groups of samples added in a fixed tree: bitwise the same model for any number of
    /// ranks up to the number of groups (see the [module documentation](self)).
    #[default]
    Exact,
    /// One pass per rank and the collective's all-reduce: faster, reproducible only for the same
    /// number of ranks.
    Fast,
}

/// Where batch normalisation takes its training statistics in a data-parallel step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BatchStats {
    /// Over the whole global batch, every rank's samples, as one process training on the batch
    /// would: each pass's per-channel sums are added over the ranks at each batch normalisation
    /// (in one fixed tree with [`Reduction::Exact`]).
    #[default]
    Global,
    /// Over each pass's own samples ("ghost batches"): a group's with [`Reduction::Exact`], a
    /// rank's shard with [`Reduction::Fast`]. No exchange during the passes.
    Local,
}

/// Data-parallel training steps of a model over the ranks of a [`Collective`].
///
/// Every rank builds its model from the same seed (or loads the same checkpoint), draws the same
/// global batches (the same [`Batches`](crate::data::Batches) seed) and calls
/// [`train_step`](DataParallel::train_step) with them; each computes the part of the batch
/// [`shard`](DataParallel::shard) names, and all of them take the same optimizer step.
///
/// ```
/// use cnn::distributed::{DataParallel, Threads};
/// use cnn::{cnn, Model, Network, Sgd};
///
/// cnn! { struct Tiny < input(4) fc(8) relu fc(3) softmax > }
///
/// let x: Vec<f32> = (0..64).map(|i| (i % 7) as f32 / 7.0).collect();
/// let labels: Vec<usize> = (0..16).map(|i| i % 3).collect();
/// // Two ranks, as two threads; with MPI each would be a process.
/// let weights: Vec<Vec<f32>> = Threads::run(2, |comm| {
///     let mut model = Tiny::with_seed(1);
///     let mut opt = Sgd::new(0.1, 0.9).unwrap();
///     let mut dp = DataParallel::new(comm);
///     for _ in 0..3 {
///         dp.train_step(&mut model, &mut opt, &x, &labels).unwrap();
///     }
///     model.params().to_vec()
/// });
/// // The same bits on both ranks, and as one process alone would train it.
/// assert_eq!(weights[0], weights[1]);
/// let alone = Threads::run(1, |comm| {
///     let (mut model, mut opt) = (Tiny::with_seed(1), Sgd::new(0.1, 0.9).unwrap());
///     let mut dp = DataParallel::new(comm);
///     for _ in 0..3 {
///         dp.train_step(&mut model, &mut opt, &x, &labels).unwrap();
///     }
///     model.params().to_vec()
/// });
/// assert_eq!(alone[0], weights[0]);
/// ```
pub struct DataParallel<'c, C: Collective + ?Sized> {
    comm: &'c C,
    groups: usize,
    reduction: Reduction,
    /// The buffers before the step.
    old: Vec<f32>,
    /// Partial sums of the tree, in the order of their groups.
    stack: Vec<Node>,
    /// Vectors of finished nodes, for reuse.
    spare: Vec<Vec<f32>>,
    send: Vec<f32>,
    recv: Vec<f32>,
    batch_stats: BatchStats,
    /// Threads and model copies of the passes that run at once.
    workers: Vec<Worker>,
}

/// A node of the tree over the groups: level `level` covers groups `index << level ..
/// (index + 1) << level`; `None` when all of them are empty.
struct Node {
    level: u32,
    index: usize,
    values: Option<Vec<f32>>,
}

/// Most groups a global batch is cut into.
pub const MAX_GROUPS: usize = 1 << 12;

impl<'c, C: Collective + ?Sized> DataParallel<'c, C> {
    /// Steps over the ranks of `comm`, with [`Reduction::Exact`] over 8 groups, or over as many
    /// groups as there are ranks when there are more (the next power of two).
    pub fn new(comm: &'c C) -> Self {
        let groups = comm.size().max(8).next_power_of_two().min(MAX_GROUPS);
        DataParallel {
            comm,
            groups,
            reduction: Reduction::Exact,
            old: Vec::new(),
            stack: Vec::new(),
            spare: Vec::new(),
            send: Vec::new(),
            recv: Vec::new(),
            batch_stats: BatchStats::Global,
            workers: Vec::new(),
        }
    }

    /// Cuts each global batch into `groups` groups: a power of two, at least the number of
    /// ranks. Runs with the same number of groups give the same model on any number of ranks.
    pub fn with_groups(mut self, groups: usize) -> Result<Self> {
        let size = self.comm.size();
        if !groups.is_power_of_two() || groups < size || groups > MAX_GROUPS {
            return Err(Error::InvalidArgument {
                name: "groups",
                reason: format!(
                    "{groups} groups: give a power of two from the number of ranks ({size}) to {MAX_GROUPS}"
                ),
            });
        }
        self.groups = groups;
        Ok(self)
    }

    /// Combines the ranks' gradients as `reduction` says.
    pub fn with_reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    /// Takes batch normalisation's statistics as `stats` says.
    pub fn with_batch_stats(mut self, stats: BatchStats) -> Self {
        self.batch_stats = stats;
        self
    }

    /// Where batch normalisation takes its statistics.
    pub fn batch_stats(&self) -> BatchStats {
        self.batch_stats
    }

    /// The number of groups a global batch is cut into.
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// The reduction in use.
    pub fn reduction(&self) -> Reduction {
        self.reduction
    }

    /// This rank's index.
    pub fn rank(&self) -> usize {
        self.comm.rank()
    }

    /// Number of ranks.
    pub fn size(&self) -> usize {
        self.comm.size()
    }

    /// Whether this is rank 0, the one that prints and saves.
    pub fn is_root(&self) -> bool {
        self.comm.rank() == 0
    }

    /// The collective the steps run over.
    pub fn collective(&self) -> &'c C {
        self.comm
    }

    /// The samples of a global batch of `n` that this rank computes: whole groups, about
    /// `n / size` of them.
    pub fn shard(&self, n: usize) -> Range<usize> {
        let groups = self.rank_groups(self.comm.rank());
        group_range(n, self.groups, groups.start).start..group_range(n, self.groups, groups.end).start
    }

    /// The groups rank `rank` owns.
    fn rank_groups(&self, rank: usize) -> Range<usize> {
        let (g, r) = (self.groups, self.comm.size());
        rank * g / r..(rank + 1) * g / r
    }

    /// One training step on the global batch `x` (`n` samples, the same on every rank) against
    /// class labels: this rank's [`shard`](DataParallel::shard) of the gradient, the exchange,
    /// and the optimizer's update. Returns the mean loss over the whole batch.
    pub fn train_step<M: Model, O: Optimizer + ?Sized>(
        &mut self,
        model: &mut M,
        opt: &mut O,
        x: &[f32],
        labels: &[usize],
    ) -> Result<f32> {
        let n = labels.len();
        let shard = self.shard(n);
        let x = shard_of::<M>(x, n, &shard)?;
        self.train_shard(model, opt, n, x, Targets::Labels(&labels[shard]))
    }

    /// [`train_step`](DataParallel::train_step) against target values (`n * OUTPUT_LEN` of them).
    pub fn train_step_targets<M: Model, O: Optimizer + ?Sized>(
        &mut self,
        model: &mut M,
        opt: &mut O,
        x: &[f32],
        targets: &[f32],
    ) -> Result<f32> {
        let n = targets.len() / M::OUTPUT_LEN.max(1);
        if !targets.len().is_multiple_of(M::OUTPUT_LEN.max(1)) {
            return Err(Error::TargetLength { samples: n, outputs: M::OUTPUT_LEN, found: targets.len() });
        }
        let shard = self.shard(n);
        let x = shard_of::<M>(x, n, &shard)?;
        let t = &targets[shard.start * M::OUTPUT_LEN..shard.end * M::OUTPUT_LEN];
        self.train_shard(model, opt, n, x, Targets::Dense(t))
    }

    /// One training step when this rank holds only its [`shard`](DataParallel::shard) of a
    /// global batch of `n` samples: `x` and `targets` are the shard's samples.
    pub fn train_shard<M: Model, O: Optimizer + ?Sized>(
        &mut self,
        model: &mut M,
        opt: &mut O,
        n: usize,
        x: &[f32],
        targets: Targets<'_>,
    ) -> Result<f32> {
        if n == 0 {
            return Err(Error::EmptyBatch);
        }
        // A rank given the wrong shard still takes part in the exchange, so that the others
        // return an error instead of waiting for it.
        let shard = self.shard(n);
        let given = match targets {
            Targets::Labels(l) => l.len(),
            Targets::Dense(t) => t.len() / M::OUTPUT_LEN.max(1),
        };
        let mut failure = None;
        if x.len() != shard.len() * M::INPUT_LEN || given != shard.len() {
            failure = Some(Error::InvalidArgument {
                name: "x",
                reason: format!(
                    "rank {} computes samples {shard:?} of a batch of {n}: {} values and {} targets expected, {} values and {given} targets given",
                    self.comm.rank(),
                    shard.len() * M::INPUT_LEN,
                    shard.len(),
                    x.len()
                ),
            });
        }
        let noise = model.noise();
        if noise.step >= MAX_STEPS {
            return Err(Error::InvalidArgument {
                name: "training pass count",
                reason: format!("{} passes: at most {MAX_STEPS}", noise.step),
            });
        }
        self.old.clear();
        self.old.extend_from_slice(model.buffers());
        let result = match self.reduction {
            Reduction::Exact => self.exact_gradient(model, n, x, targets, failure),
            Reduction::Fast => self.fast_gradient(model, n, x, targets, failure),
        };
        let state = model.state_mut();
        state.buffers.copy_from_slice(&self.old);
        state.noise = noise;
        // At most one spare vector per group and two more are ever taken in a step.
        self.spare.truncate(self.groups + 2);
        let (root, loss) = result?;
        finish_step(model, &self.old, &root);
        self.spare.push(root);
        model.set_noise(Noise { seed: noise.seed, step: noise.step + 1 });
        if let Err(e) = model.apply(opt) {
            model.buffers_mut().copy_from_slice(&self.old);
            model.set_noise(noise);
            return Err(e);
        }
        Ok(loss)
    }

    /// The gradient of the global batch by fixed groups and the fixed tree; returns the root
    /// of the tree (gradient, buffer changes, loss) and the loss.
    fn exact_gradient<M: Model>(
        &mut self,
        model: &mut M,
        n: usize,
        x: &[f32],
        targets: Targets<'_>,
        mut failure: Option<Error>,
    ) -> Result<(Vec<f32>, f32)> {
        let len = values_len::<M>();
        let shard = self.shard(n);
        let owned = self.rank_groups(self.comm.rank());
        let noise = model.noise();
        // One pass per non-empty group this rank owns.
        let mut jobs = Vec::new();
        for g in owned.clone().filter(|_| failure.is_none()) {
            let range = group_range(n, self.groups, g);
            if range.is_empty() {
                continue;
            }
            if range.len() < M::MIN_TRAIN_BATCH {
                failure = Some(Error::InvalidArgument {
                    name: "batch",
                    reason: format!(
                        "group {g} of a batch of {n} holds {} samples, and a training pass of this model needs {}: \
                         use a larger batch or fewer groups",
                        range.len(),
                        M::MIN_TRAIN_BATCH
                    ),
                });
                jobs.clear();
                break;
            }
            jobs.push(Job {
                slot: g - owned.start,
                samples: range.start - shard.start..range.end - shard.start,
                weight: range.len() as f32 / n as f32,
                seed: group_seed(noise, g as u64),
            });
        }
        let owners = (0..self.comm.size()).map(|r| self.rank_groups(r)).collect();
        let (leaves, mismatch) = self.passes(model, owners, n, &jobs, x, targets);
        self.stack.clear();
        let (mut leaves, mut jobs) = (leaves.into_iter(), jobs.iter().peekable());
        for g in owned.clone().filter(|_| failure.is_none() && mismatch.is_none()) {
            let values = match jobs.next_if(|job| job.slot == g - owned.start).map(|_| leaves.next()) {
                None => None,
                Some(Some(Ok(values))) => Some(values),
                Some(Some(Err(e))) => {
                    failure = Some(e);
                    break;
                }
                Some(None) => break,
            };
            push(&mut self.stack, &mut self.spare, Node { level: 0, index: g, values });
        }
        let root = if self.comm.size().is_power_of_two() {
            self.pairwise_tree(n, len, failure, noise.step)?
        } else {
            self.gathered_tree(n, len, failure, noise.step)?
        };
        if let Some(e) = mismatch {
            self.spare.push(root);
            return Err(e);
        }
        let loss = root[len - 1];
        Ok((root, loss))
    }

    /// Runs this rank's passes: one after the other on `model`, or at once on copies of it when
    /// batch normalisation takes its statistics over the global batch (the leaves `owners[r]`
    /// belonging to rank `r`). Returns the passes' leaves, which stop at the first error when
    /// run one after the other, and the error of rounds of statistics that did not match.
    fn passes<M: Model>(
        &mut self,
        model: &mut M,
        owners: Vec<Range<usize>>,
        n: usize,
        jobs: &[Job],
        x: &[f32],
        targets: Targets<'_>,
    ) -> (Leaves, Option<Error>) {
        if self.batch_stats == BatchStats::Global && has_batch_norm::<M>() {
            let passes = Passes { comm: self.comm, owned: owners, samples: n };
            return match passes.run(&mut self.workers, &mut self.spare, model, &self.old, jobs, x, targets) {
                Ok(leaves) => (leaves, None),
                Err(e) => (Vec::new(), Some(e)),
            };
        }
        let mut leaves = Vec::new();
        for job in jobs {
            model.buffers_mut().copy_from_slice(&self.old);
            model.set_noise(Noise::new(job.seed));
            let r = job.samples.clone();
            let x = &x[r.start * M::INPUT_LEN..r.end * M::INPUT_LEN];
            let pass = model.loss_and_grad_targets_of(x, slice_targets(targets, r, M::OUTPUT_LEN));
            let failed = pass.is_err();
            leaves.push(pass.map(|loss| self.weighted(model, loss, job.weight)));
            if failed {
                break;
            }
        }
        (leaves, None)
    }

    /// The root of the tree when the number of ranks is a power of two: each rank holds one node
    /// (in `self.stack`), and in round `k` the ranks `r` and `r ^ 2^k` swap theirs and both add
    /// the pair, so that after `log2 R` rounds every rank holds the root.
    fn pairwise_tree(&mut self, n: usize, len: usize, failure: Option<Error>, step: u64) -> Result<Vec<f32>> {
        let (rank, size) = (self.comm.rank(), self.comm.size());
        let level = (self.groups / size).trailing_zeros();
        let mut mine = self.stack.pop().and_then(|node| node.values).filter(|_| failure.is_none());
        for node in self.stack.drain(..) {
            self.spare.extend(node.values);
        }
        // The lowest rank whose step failed, if any.
        let mut failed = failure.is_some().then_some(rank);
        let (mut send, mut recv) = (core::mem::take(&mut self.send), core::mem::take(&mut self.recv));
        let mut result = Ok(());
        for k in 0..size.trailing_zeros() {
            let partner = rank ^ (1 << k);
            send.clear();
            send.push(failed.map_or(0.0, |r| r as f32 + 1.0));
            match &mine {
                Some(v) => send.extend_from_slice(v),
                None => send.resize(1 + len, 0.0),
            }
            recv.clear();
            recv.resize(1 + len, 0.0);
            result = self.comm.exchange(partner, &send, &mut recv);
            if result.is_err() {
                break;
            }
            if recv[0] != 0.0 {
                let theirs = recv[0] as usize - 1;
                failed = Some(failed.map_or(theirs, |r| r.min(theirs)));
            }
            if failed.is_none() && block_present(n, self.groups, level + k, partner >> k) {
                // Addition is commutative, so both ranks of the pair get the same bits.
                match &mut mine {
                    Some(v) => v.iter_mut().zip(&recv[1..]).for_each(|(a, b)| *a += b),
                    None => mine = Some(reused(&mut self.spare, recv[1..].iter().copied())),
                }
            }
        }
        (self.send, self.recv) = (send, recv);
        result?;
        match (failure, failed) {
            (Some(e), _) => Err(e),
            (None, Some(r)) => Err(peer_failed(r, step)),
            (None, None) => mine.ok_or_else(|| no_gradient(n)),
        }
    }

    /// The root of the tree for any number of ranks: every rank's nodes gathered on every rank
    /// (`R − 1` partial sums received per rank), and the tree finished from them in group order.
    fn gathered_tree(&mut self, n: usize, len: usize, failure: Option<Error>, step: u64) -> Result<Vec<f32>> {
        // A status value, then this rank's finished nodes; zeros after a failure, so that every
        // rank sends what the others expect.
        let counts: Vec<usize> = (0..self.comm.size()).map(|r| 1 + self.present_nodes(n, r) * len).collect();
        self.send.clear();
        self.send.push(if failure.is_some() { 1.0 } else { 0.0 });
        if failure.is_none() {
            for node in &self.stack {
                if let Some(v) = &node.values {
                    self.send.extend_from_slice(v);
                }
            }
        }
        self.send.resize(counts[self.comm.rank()], 0.0);
        for node in self.stack.drain(..) {
            self.spare.extend(node.values);
        }
        self.recv.clear();
        self.recv.resize(counts.iter().sum(), 0.0);
        self.comm.all_gather(&self.send, &counts, &mut self.recv)?;
        if let Some(e) = failure {
            return Err(e);
        }
        let mut at = 0;
        for (r, &count) in counts.iter().enumerate() {
            if self.recv[at] != 0.0 {
                return Err(peer_failed(r, step));
            }
            at += count;
        }
        let mut at = 0;
        for r in 0..self.comm.size() {
            at += 1;
            for (level, index) in aligned_blocks(self.rank_groups(r)) {
                let values = if block_present(n, self.groups, level, index) {
                    let v = reused(&mut self.spare, self.recv[at..at + len].iter().copied());
                    at += len;
                    Some(v)
                } else {
                    None
                };
                push(&mut self.stack, &mut self.spare, Node { level, index, values });
            }
        }
        match (self.stack.len(), self.stack.pop()) {
            (1, Some(Node { values: Some(v), .. })) => Ok(v),
            _ => Err(no_gradient(n)),
        }
    }

    /// The gradient of the global batch by one pass per rank and the collective's sum.
    fn fast_gradient<M: Model>(
        &mut self,
        model: &mut M,
        n: usize,
        x: &[f32],
        targets: Targets<'_>,
        mut failure: Option<Error>,
    ) -> Result<(Vec<f32>, f32)> {
        let len = values_len::<M>();
        let shard = self.shard(n);
        let noise = model.noise();
        let seed = group_seed(noise, self.rank_groups(self.comm.rank()).start as u64);
        let weight = shard.len() as f32 / n as f32;
        let job = Job { slot: 0, samples: 0..shard.len(), weight, seed };
        let jobs = if shard.is_empty() || failure.is_some() { Vec::new() } else { vec![job] };
        let owners = (0..self.comm.size()).map(|r| r..r + 1).collect();
        let (mut leaves, mismatch) = self.passes(model, owners, n, &jobs, x, targets);
        // Zeros from a rank with nothing to add, so that the sum has every rank's values.
        let mut values = match leaves.pop() {
            Some(Ok(values)) => values,
            other => {
                if let Some(Err(e)) = other {
                    failure = Some(e);
                }
                reused(&mut self.spare, core::iter::repeat_n(0.0, len))
            }
        };
        values.push(if failure.is_some() { 1.0 } else { 0.0 });
        self.comm.all_sum(&mut values)?;
        let failed = values.pop().unwrap_or_default();
        if let Some(e) = failure {
            self.spare.push(values);
            return Err(e);
        }
        if failed != 0.0 {
            self.spare.push(values);
            return Err(Error::Distributed {
                reason: format!(
                    "{failed} other rank(s) could not complete training step {} (their own output says why); \
                     every rank undid the step",
                    noise.step
                ),
            });
        }
        if let Some(e) = mismatch {
            self.spare.push(values);
            return Err(e);
        }
        let loss = values[len - 1];
        Ok((values, loss))
    }

    /// The model's last pass as a tree leaf: gradient, buffer changes and loss, times `weight`.
    fn weighted<M: Model>(&mut self, model: &M, loss: f32, weight: f32) -> Vec<f32> {
        let spare = self.spare.pop().unwrap_or_default();
        leaf_values(model, &self.old, loss, weight, spare)
    }

    /// How many of rank `rank`'s tree nodes hold values for a batch of `n`.
    fn present_nodes(&self, n: usize, rank: usize) -> usize {
        aligned_blocks(self.rank_groups(rank))
            .filter(|&(level, index)| block_present(n, self.groups, level, index))
            .count()
    }
}

/// A vector of `values`, in the allocation of a spare one when there is one.
fn reused(spare: &mut Vec<Vec<f32>>, values: impl Iterator<Item = f32>) -> Vec<f32> {
    let mut v = spare.pop().unwrap_or_default();
    v.clear();
    v.extend(values);
    v
}

/// The model's last pass as a tree leaf, in `v`: gradient, buffer changes from `old` and `loss`,
/// times `weight`.
fn leaf_values<M: Model>(model: &M, old: &[f32], loss: f32, weight: f32, mut v: Vec<f32>) -> Vec<f32> {
    v.clear();
    v.extend(model.grads().iter().map(|g| g * weight));
    v.extend(model.buffers().iter().zip(old).map(|(b, o)| (b - o) * weight));
    v.push(loss * weight);
    v
}

/// Values of one tree node of a model `M`: gradient, buffer changes, loss.
fn values_len<M: Model>() -> usize {
    M::PARAM_COUNT + M::BUFFER_COUNT + 1
}

/// Sets the model's gradient and buffers from the root of the tree.
fn finish_step<M: Model>(model: &mut M, old: &[f32], root: &[f32]) {
    let state = model.state_mut();
    let p = M::PARAM_COUNT;
    state.grads.copy_from_slice(&root[..p]);
    for ((b, o), d) in state.buffers.iter_mut().zip(old).zip(&root[p..p + M::BUFFER_COUNT]) {
        *b = o + d;
    }
    // A count of batches goes up by one per step, whatever the groups.
    for t in M::TENSORS.iter().filter(|t| t.kind == TensorKind::Count) {
        let range = t.offset..t.offset + t.len();
        for (b, o) in state.buffers[range.clone()].iter_mut().zip(&old[range]) {
            *b = o + 1.0;
        }
    }
}

/// Adds `node` to the stack, adding it to its left sibling (and so on up) where that is the top.
fn push(stack: &mut Vec<Node>, spare: &mut Vec<Vec<f32>>, mut node: Node) {
    while let Some(top) = stack.last() {
        if top.level != node.level || node.index % 2 != 1 || top.index + 1 != node.index {
            break;
        }
        let Some(mut left) = stack.pop() else { break };
        left.values = match (left.values.take(), node.values.take()) {
            (Some(mut a), Some(b)) => {
                for (x, y) in a.iter_mut().zip(&b) {
                    *x += y;
                }
                spare.push(b);
                Some(a)
            }
            (a, b) => a.or(b),
        };
        node = Node { level: node.level + 1, index: node.index / 2, values: left.values };
    }
    stack.push(node);
}

/// The largest aligned blocks of the tree that cover `groups`, in order, as (level, index).
fn aligned_blocks(groups: Range<usize>) -> impl Iterator<Item = (u32, usize)> {
    let mut at = groups.start;
    core::iter::from_fn(move || {
        if at >= groups.end {
            return None;
        }
        let mut level = 0;
        while at.is_multiple_of(2 << level) && at + (2 << level) <= groups.end {
            level += 1;
        }
        let block = (level, at >> level);
        at += 1 << level;
        Some(block)
    })
}

/// Whether any group under the node (level, index) holds a sample of a batch of `n`.
fn block_present(n: usize, groups: usize, level: u32, index: usize) -> bool {
    let first = index << level;
    let last = ((index + 1) << level).min(groups);
    group_range(n, groups, first).start < group_range(n, groups, last).start
}

/// The samples of group `g` of `groups` in a batch of `n` (`g == groups` gives the empty range
/// at the end).
fn group_range(n: usize, groups: usize, g: usize) -> Range<usize> {
    let at = |g: usize| (g as u128 * n as u128 / groups as u128) as usize;
    at(g)..at((g + 1).min(groups))
}

/// The dropout seed of group `g` in the step `noise.step` of a run seeded `noise.seed`.
fn group_seed(noise: Noise, g: u64) -> u64 {
    splitmix(noise.seed ^ splitmix(noise.step ^ splitmix(g.wrapping_add(0x2545_f491_4f6c_dd1d))))
}

/// The targets of the samples `range`.
fn slice_targets(targets: Targets<'_>, range: Range<usize>, outputs: usize) -> Targets<'_> {
    match targets {
        Targets::Labels(l) => Targets::Labels(l.get(range).unwrap_or_default()),
        Targets::Dense(t) => Targets::Dense(t.get(range.start * outputs..range.end * outputs).unwrap_or_default()),
    }
}

/// The samples `shard` of the global batch `x`, which must hold `n` samples of `M` (checked
/// whole, so that every rank given the same batch gives the same answer).
fn shard_of<'x, M: Model>(x: &'x [f32], n: usize, shard: &Range<usize>) -> Result<&'x [f32]> {
    if n.checked_mul(M::INPUT_LEN) != Some(x.len()) {
        return Err(Error::InvalidArgument {
            name: "x",
            reason: format!(
                "{} values for {n} targets: the whole global batch is {} values",
                x.len(),
                n * M::INPUT_LEN
            ),
        });
    }
    Ok(&x[shard.start * M::INPUT_LEN..shard.end * M::INPUT_LEN])
}

/// The error for a batch of `n` samples whose tree has no values.
fn no_gradient(n: usize) -> Error {
    Error::Distributed { reason: format!("the batch of {n} samples left no gradient") }
}

/// The error every other rank returns when rank `rank` could not complete step `step`.
fn peer_failed(rank: usize, step: u64) -> Error {
    Error::Distributed {
        reason: format!(
            "rank {rank} could not complete training step {step} (its own output says why); every rank undid the step"
        ),
    }
}

#[cfg(test)]
mod tests;
