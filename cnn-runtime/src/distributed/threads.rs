//! Ranks as threads of one process.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::{check_gather, Collective};
use crate::{Error, Result};

/// A [`Collective`] whose ranks are threads of one process: for tests, and for trying a
/// distributed program without MPI. [`Threads::run`] starts the ranks.
///
/// A rank that panics or returns breaks the group for the others: their next collective call
/// is an `Err` instead of a wait that never ends.
pub struct Threads {
    rank: usize,
    shared: Arc<Shared>,
}

struct Shared {
    size: usize,
    state: Mutex<Round>,
    turn: Condvar,
}

/// The collective call in progress: what each rank gave, how many have arrived and left.
struct Round {
    slots: Vec<Vec<f32>>,
    arrived: usize,
    /// Bumped when every rank has arrived; a rank waits for it to change.
    generation: u64,
    /// Ranks that have read the round's result since the last change of generation.
    read: usize,
    /// A rank that ended (returned or panicked) while others still run.
    gone: Option<usize>,
}

impl Threads {
    /// Runs `body` on `ranks` threads, each with its rank's collective, and returns what each
    /// returned, in rank order. A panic in a rank is raised again here, after the others ended.
    pub fn run<R: Send>(ranks: usize, body: impl Fn(&Threads) -> R + Sync) -> Vec<R> {
        let ranks = ranks.max(1);
        let shared = Arc::new(Shared {
            size: ranks,
            state: Mutex::new(Round { slots: vec![Vec::new(); ranks], arrived: 0, generation: 0, read: 0, gone: None }),
            turn: Condvar::new(),
        });
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..ranks)
                .map(|rank| {
                    let comm = Threads { rank, shared: Arc::clone(&shared) };
                    let body = &body;
                    scope.spawn(move || {
                        let _leave = Leave(&comm);
                        body(&comm)
                    })
                })
                .collect();
            let results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
            results.into_iter().map(|r| r.unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
        })
    }

    fn lock(&self) -> MutexGuard<'_, Round> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts `values` in this rank's slot, waits for every rank, runs `read` on all slots, and
    /// waits until every rank has read before the slots can be reused.
    fn round(&self, values: &[f32], read: impl FnOnce(&[Vec<f32>])) -> Result<()> {
        let size = self.shared.size;
        let mut round = self.lock();
        if let Some(gone) = round.gone {
            return Err(ended(gone));
        }
        round.slots[self.rank].clear();
        round.slots[self.rank].extend_from_slice(values);
        round.arrived += 1;
        let generation = round.generation;
        if round.arrived == size {
            round.arrived = 0;
            round.read = 0;
            round.generation += 1;
            self.shared.turn.notify_all();
        } else {
            while round.generation == generation && round.gone.is_none() {
                round = self.shared.turn.wait(round).unwrap_or_else(|e| e.into_inner());
            }
            if round.generation == generation {
                return Err(ended(round.gone.unwrap_or_default()));
            }
        }
        read(&round.slots);
        round.read += 1;
        let read_generation = round.generation;
        if round.read == size {
            // Everyone has read: the next round may start.
            round.generation += 1;
            self.shared.turn.notify_all();
        } else {
            while round.generation == read_generation && round.gone.is_none() {
                round = self.shared.turn.wait(round).unwrap_or_else(|e| e.into_inner());
            }
        }
        Ok(())
    }
}

/// Marks a rank as gone when its body ends, so that the others stop waiting for it.
struct Leave<'a>(&'a Threads);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut round = self.0.lock();
        round.gone.get_or_insert(self.0.rank);
        self.0.shared.turn.notify_all();
    }
}

fn ended(rank: usize) -> Error {
    Error::Distributed { reason: format!("rank {rank} ended while the others still exchange gradients") }
}

impl Collective for Threads {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.shared.size
    }

    fn all_gather(&self, send: &[f32], counts: &[usize], recv: &mut [f32]) -> Result<()> {
        check_gather(send, counts, recv, self.rank)?;
        self.round(send, |slots| {
            let mut at = 0;
            for slot in slots {
                recv[at..at + slot.len()].copy_from_slice(slot);
                at += slot.len();
            }
        })
    }

    fn exchange(&self, partner: usize, send: &[f32], recv: &mut [f32]) -> Result<()> {
        if partner >= self.shared.size || send.len() != recv.len() {
            return Err(Error::Distributed {
                reason: format!("rank {} cannot exchange {} values with rank {partner}", self.rank, send.len()),
            });
        }
        let mut length = Ok(());
        self.round(send, |slots| {
            if slots[partner].len() == recv.len() {
                recv.copy_from_slice(&slots[partner]);
            } else {
                length = Err(Error::Distributed {
                    reason: format!(
                        "rank {partner} sent {} values, rank {} expected {}",
                        slots[partner].len(),
                        self.rank,
                        recv.len()
                    ),
                });
            }
        })?;
        length
    }

    fn all_sum(&self, values: &mut [f32]) -> Result<()> {
        let sent = values.to_vec();
        self.round(&sent, |slots| {
            values.fill(0.0);
            for slot in slots {
                for (v, s) in values.iter_mut().zip(slot) {
                    *v += s;
                }
            }
        })
    }

    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}
