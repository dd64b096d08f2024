//! Batch normalisation over the whole global batch of a data-parallel step.
//!
//! A rank's passes (its groups, or its shard) run at once, each on a thread with its own rayon
//! pool and its own copy of the model; no more of them compute at a time than the caller's
//! rayon pool has threads (a pass waiting for sums gives its turn to another). When a pass
//! reaches a batch normalisation it hands its per-channel sums to the [`Board`] and waits; the
//! rank's calling thread collects the sums of every pass of the rank, gathers every rank's
//! ([`Collective::all_gather`]), adds them in one fixed tree over the passes' indices in the
//! global batch, and hands the totals back. Every
//! rank adds the same leaves in the same tree, so the totals have the same bits on every rank
//! and for any number of ranks.

use core::ops::Range;
use std::any::Any;
use std::sync::{Condvar, Mutex, MutexGuard};

use super::{slice_targets, Collective};
use crate::kernels::{with_batch_sums, BatchSums, Targets};
use crate::{Error, Model, Noise, Result, TensorKind};

/// Where the sums of a rank's passes meet the rank's calling thread.
pub(super) struct Board {
    state: Mutex<Inner>,
    deposited: Condvar,
    published: Condvar,
    /// Signalled when a turn to compute is given back.
    freed: Condvar,
    /// Samples in the global batch.
    samples: usize,
}

struct Inner {
    /// Each pass's sums of the round being collected.
    slots: Vec<Option<Vec<f64>>>,
    /// Passes still running.
    running: usize,
    /// Passes waiting for the totals of this round.
    waiting: usize,
    /// Rounds published so far.
    round: u64,
    /// The totals of the last round.
    totals: Vec<f64>,
    /// Turns to compute that no pass holds.
    turns: usize,
}

impl Board {
    /// A board for `passes` passes of this rank, all running, `turns` of them computing at a
    /// time, over a global batch of `samples`.
    pub(super) fn new(passes: usize, turns: usize, samples: usize) -> Self {
        let inner = Inner {
            slots: vec![None; passes],
            running: passes,
            waiting: 0,
            round: 0,
            totals: Vec::new(),
            turns: turns.max(1),
        };
        let (deposited, published, freed) = (Condvar::new(), Condvar::new(), Condvar::new());
        Board { state: Mutex::new(inner), deposited, published, freed, samples }
    }

    /// Waits for a turn to compute and takes it.
    fn take_turn<'s>(&self, mut state: MutexGuard<'s, Inner>) -> MutexGuard<'s, Inner> {
        while state.turns == 0 {
            state = self.freed.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        state.turns -= 1;
        state
    }

    /// Gives a turn back.
    fn give_turn(&self, state: &mut Inner) {
        state.turns += 1;
        self.freed.notify_all();
    }

    /// Starts a pass: waits for its turn.
    fn start(&self) {
        drop(self.take_turn(self.lock()));
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Gives pass `slot`'s sums and waits for the totals over the global batch.
    fn round(&self, slot: usize, sums: &mut [f64]) {
        let mut state = self.lock();
        state.slots[slot] = Some(sums.to_vec());
        state.waiting += 1;
        let round = state.round;
        self.give_turn(&mut state);
        self.deposited.notify_one();
        while state.round == round {
            state = self.published.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        let totals = state.totals.iter().chain(core::iter::repeat(&0.0));
        sums.iter_mut().zip(totals).for_each(|(s, t)| *s = *t);
        drop(self.take_turn(state));
    }

    /// Marks one pass as ended, and gives its turn back.
    fn finish(&self) {
        let mut state = self.lock();
        state.running -= 1;
        self.give_turn(&mut state);
        self.deposited.notify_one();
    }

    /// Waits until every running pass has given its sums for the next round, and takes them;
    /// `None` once every pass has ended.
    fn collect(&self) -> Option<Vec<Option<Vec<f64>>>> {
        let mut state = self.lock();
        while state.waiting < state.running {
            state = self.deposited.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        if state.waiting == 0 {
            return None;
        }
        Some(state.slots.iter_mut().map(Option::take).collect())
    }

    /// Hands `totals` to the passes waiting for this round.
    fn publish(&self, totals: Vec<f64>) {
        let mut state = self.lock();
        state.totals = totals;
        state.waiting = 0;
        state.round += 1;
        self.published.notify_all();
    }
}

/// One pass's side of the board: its slot, and its weight in the global loss (its samples over
/// the global batch's), which puts its backward sums in the units of the global loss.
struct Leaf<'b> {
    board: &'b Board,
    slot: usize,
    weight: f64,
}

impl BatchSums for Leaf<'_> {
    fn forward(&self, sums: &mut [f64]) -> usize {
        self.board.round(self.slot, sums);
        self.board.samples
    }

    fn backward(&self, sums: &mut [f64]) -> usize {
        sums.iter_mut().for_each(|s| *s *= self.weight);
        self.board.round(self.slot, sums);
        sums.iter_mut().for_each(|s| *s /= self.weight);
        self.board.samples
    }
}

/// Marks its pass as ended when dropped, however the pass ended (after [`Board::start`]).
struct Finish<'b>(&'b Board);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// A pass of this rank: its slot, its samples in the rank's shard, its weight and its dropout
/// seed.
pub(super) struct Job {
    pub slot: usize,
    pub samples: Range<usize>,
    pub weight: f32,
    pub seed: u64,
}

/// A thread pool and a copy of the model for one of a rank's concurrent passes, kept from step
/// to step.
pub(super) struct Worker {
    pool: rayon::ThreadPool,
    model: Option<Box<dyn Any + Send>>,
}

/// Whether the model has batch normalisation, whose statistics then need the whole batch.
pub(super) fn has_batch_norm<M: Model>() -> bool {
    M::TENSORS.iter().any(|t| t.kind == TensorKind::Statistic)
}

/// Most values one batch normalisation's sums hold: two per channel, in its backward pass.
fn max_sums<M: Model>() -> usize {
    M::TENSORS.iter().filter(|t| t.kind == TensorKind::Statistic).map(|t| 2 * t.len()).max().unwrap_or(0)
}

/// What a rank's passes give: per job, the pass's tree leaf (gradient, buffer changes, loss,
/// times its weight) or its error.
pub(super) type Leaves = Vec<Result<Vec<f32>>>;

/// The passes of one step and the collective they meet over.
pub(super) struct Passes<'a, C: Collective + ?Sized> {
    pub comm: &'a C,
    /// The leaves (global indices) each rank owns, in rank order.
    pub owned: Vec<Range<usize>>,
    /// Samples in the global batch.
    pub samples: usize,
}

impl<C: Collective + ?Sized> Passes<'_, C> {
    /// Runs `jobs` at once with synchronised batch statistics, each on a copy of `model` with
    /// buffers `old`, and takes this rank's part in every round of sums (also when it runs no
    /// pass). The leaves go into vectors taken from `spare`. Returns the leaves, or an error
    /// when the ranks' rounds did not match (which only happens when a rank failed).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run<M: Model>(
        &self,
        workers: &mut Vec<Worker>,
        spare: &mut Vec<Vec<f32>>,
        model: &M,
        old: &[f32],
        jobs: &[Job],
        x: &[f32],
        targets: Targets<'_>,
    ) -> Result<Leaves> {
        let threads = rayon::current_num_threads();
        while workers.len() < jobs.len() {
            let threads = (threads / jobs.len()).max(1);
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("cnn-pass-{i}"))
                .build()
                .map_err(|e| Error::Distributed { reason: format!("cannot start the threads of a pass: {e}") })?;
            workers.push(Worker { pool, model: None });
        }
        let board = Board::new(jobs.len(), threads, self.samples);
        std::thread::scope(|scope| {
            let handles: Vec<_> = jobs
                .iter()
                .zip(workers.iter_mut())
                .map(|(job, worker)| {
                    let (board, into) = (&board, spare.pop().unwrap_or_default());
                    scope.spawn(move || {
                        board.start();
                        let _finish = Finish(board);
                        run_pass(worker, board, job, model, old, x, targets, into)
                    })
                })
                .collect();
            let rounds = self.coordinate(&board, max_sums::<M>());
            let leaves: Leaves = handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::Distributed { reason: "a pass of this rank panicked".to_string() })
                    })
                })
                .collect();
            rounds.map(|()| leaves)
        })
    }

    /// This rank's part in the rounds of sums, until every pass of every rank has ended.
    fn coordinate(&self, board: &Board, width: usize) -> Result<()> {
        let (rank, size) = (self.comm.rank(), self.comm.size());
        // Per rank: a status (0 while its passes run, 1 once they all ended), then per leaf a
        // marker (0 when absent, else 1 + its length) and 2·width halves of f64s.
        let stride = 1 + 2 * width;
        let counts: Vec<usize> = self.owned.iter().map(|o| 1 + o.len() * stride).collect();
        let (mut send, mut recv) = (Vec::new(), vec![0.0f32; counts.iter().sum()]);
        let mut matched = true;
        loop {
            let mine = board.collect();
            send.clear();
            send.push(if mine.is_some() { 0.0 } else { 1.0 });
            for slot in 0..self.owned[rank].len() {
                let sums = mine.as_ref().and_then(|m| m[slot].as_deref()).filter(|s| s.len() <= width);
                send.push(sums.map_or(0.0, |s| (1 + s.len()) as f32));
                let halves = sums.unwrap_or_default().iter().flat_map(|v| {
                    let bits = v.to_bits();
                    [f32::from_bits(bits as u32), f32::from_bits((bits >> 32) as u32)]
                });
                send.extend(halves.chain(core::iter::repeat(0.0)).take(2 * width));
            }
            self.comm.all_gather(&send, &counts, &mut recv)?;
            let mut at = 0;
            let mut ended = 0;
            let mut leaves: Vec<Option<Vec<f64>>> = Vec::new();
            for owned in &self.owned {
                ended += usize::from(recv[at] != 0.0);
                at += 1;
                for _ in owned.clone() {
                    let len = (recv[at] as usize).saturating_sub(1).min(width);
                    let halves = &recv[at + 1..at + 1 + 2 * len];
                    leaves.push((recv[at] != 0.0).then(|| {
                        halves
                            .chunks_exact(2)
                            .map(|h| f64::from_bits(u64::from(h[0].to_bits()) | (u64::from(h[1].to_bits()) << 32)))
                            .collect()
                    }));
                    at += stride;
                }
            }
            if ended == size {
                break;
            }
            let lens: Vec<usize> = leaves.iter().flatten().map(Vec::len).collect();
            // A rank whose passes ended while others still run, or sums of different lengths:
            // a rank failed, and its error ends the step after the passes.
            let consistent = ended == 0 && lens.windows(2).all(|w| w[0] == w[1]);
            matched &= consistent;
            let totals = if consistent { tree_sum(&leaves).unwrap_or_default() } else { Vec::new() };
            board.publish(totals);
        }
        if matched {
            Ok(())
        } else {
            Err(Error::Distributed {
                reason: "the ranks' passes did not reach the same batch normalisations: a rank failed".to_string(),
            })
        }
    }
}

/// Runs one job on its worker's copy of the model with the board's statistics; its leaf goes
/// into `into`.
#[allow(clippy::too_many_arguments)]
fn run_pass<M: Model>(
    worker: &mut Worker,
    board: &Board,
    job: &Job,
    model: &M,
    old: &[f32],
    x: &[f32],
    targets: Targets<'_>,
    into: Vec<f32>,
) -> Result<Vec<f32>> {
    if worker.model.as_ref().is_none_or(|m| !m.is::<M>()) {
        worker.model = Some(Box::new(model.clone()));
    }
    let copy = worker
        .model
        .as_mut()
        .and_then(|m| m.downcast_mut::<M>())
        .ok_or_else(|| Error::Distributed { reason: "a pass's copy of the model has another type".to_string() })?;
    let state = copy.state_mut();
    state.params.copy_from_slice(model.params());
    state.buffers.copy_from_slice(old);
    state.noise = Noise::new(job.seed);
    let leaf = Leaf { board, slot: job.slot, weight: f64::from(job.weight) };
    let range = job.samples.clone();
    let (x, targets) =
        (&x[range.start * M::INPUT_LEN..range.end * M::INPUT_LEN], slice_targets(targets, range, M::OUTPUT_LEN));
    let loss = worker.pool.install(|| with_batch_sums(&leaf, || copy.loss_and_grad_targets_of(x, targets)))?;
    Ok(super::leaf_values(copy, old, loss, job.weight, into))
}

/// The sum of the present leaves in a fixed binary tree over their indices (each half of a
/// range added first); `None` when none is present.
fn tree_sum(leaves: &[Option<Vec<f64>>]) -> Option<Vec<f64>> {
    match leaves {
        [] => None,
        [leaf] => leaf.clone(),
        _ => {
            let (left, right) = leaves.split_at(leaves.len() / 2);
            match (tree_sum(left), tree_sum(right)) {
                (Some(mut a), Some(b)) => {
                    a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                    Some(a)
                }
                (a, b) => a.or(b),
            }
        }
    }
}
