//! How the examples train: as one process, or, built with the `mpi` feature and started by
//! `mpirun -np N`, as one of N ranks of a data-parallel job ([`cnn::distributed`]), every rank
//! computing its share of each batch and rank 0 printing and saving.

use std::error::Error;
use std::process::ExitCode;

#[cfg(feature = "mpi")]
use cnn::distributed::{mpi::Mpi, Collective, DataParallel};
use cnn::{Model, Optimizer};

/// Runs an example's `run` as one process, or as this process's rank of an MPI job; an error
/// ends the program (and, on MPI, the whole job) with its message.
pub fn main(run: impl FnOnce(&Ranks) -> Result<(), Box<dyn Error>>) -> ExitCode {
    let ranks = match Ranks::init() {
        Ok(ranks) => ranks,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(&ranks) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => ranks.fail(e),
    }
}

/// This process's place in the job.
pub struct Ranks {
    #[cfg(feature = "mpi")]
    comm: Mpi,
}

impl Ranks {
    /// One process alone; with the `mpi` feature, MPI's ranks (one of one without `mpirun`).
    pub fn init() -> Result<Self, Box<dyn Error>> {
        Ok(Ranks {
            #[cfg(feature = "mpi")]
            comm: Mpi::init()?,
        })
    }

    /// Whether this process prints and saves: rank 0.
    pub fn is_root(&self) -> bool {
        #[cfg(feature = "mpi")]
        return self.comm.rank() == 0;
        #[cfg(not(feature = "mpi"))]
        true
    }

    /// The training steps of this process, on MPI as `scheme` says.
    pub fn trainer(&self, scheme: Scheme) -> Trainer<'_> {
        #[cfg(not(feature = "mpi"))]
        let _ = scheme;
        Trainer {
            #[cfg(feature = "mpi")]
            dp: DataParallel::new(&self.comm)
                .with_reduction(if scheme.fast {
                    cnn::distributed::Reduction::Fast
                } else {
                    cnn::distributed::Reduction::Exact
                })
                .with_batch_stats(if scheme.local_batch_stats {
                    cnn::distributed::BatchStats::Local
                } else {
                    cnn::distributed::BatchStats::Global
                }),
            #[cfg(not(feature = "mpi"))]
            _alone: std::marker::PhantomData,
        }
    }

    /// A line saying how the job runs, `scheme` as for [`trainer`](Ranks::trainer).
    pub fn describe(&self, scheme: Scheme) -> String {
        #[cfg(feature = "mpi")]
        let line = {
            let stats = if scheme.local_batch_stats { "each pass's own" } else { "the whole batch's" };
            if scheme.fast {
                format!("{} MPI rank(s), gradients added by MPI_Allreduce, batch statistics {stats}", self.comm.size())
            } else {
                format!(
                    "{} MPI rank(s), each batch in {} groups added in a fixed order (the same model on any number of ranks), \
                     batch statistics {stats}",
                    self.comm.size(),
                    DataParallel::new(&self.comm).groups()
                )
            }
        };
        #[cfg(not(feature = "mpi"))]
        let line = {
            let _ = scheme;
            "one process".to_string()
        };
        line
    }

    /// Ends the program after `error`: on MPI, this rank prints it and ends the whole job
    /// (`MPI_Abort`), so that no rank waits for it.
    pub fn fail(&self, error: Box<dyn Error>) -> ExitCode {
        #[cfg(feature = "mpi")]
        if self.comm.size() > 1 {
            eprintln!("error on rank {} of {}: {error}", self.comm.rank(), self.comm.size());
            self.comm.abort(1);
        }
        eprintln!("error: {error}");
        ExitCode::FAILURE
    }
}

/// How the ranks of an MPI job train together.
#[derive(Clone, Copy, Debug, Default)]
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub struct Scheme {
    /// Add the gradients with MPI's own all-reduce (not bitwise the same on another number of
    /// ranks).
    pub fast: bool,
    /// Batch normalisation over each pass's own samples instead of the whole global batch.
    pub local_batch_stats: bool,
}

/// Training steps: a model's own, or data-parallel ones over the ranks.
pub struct Trainer<'c> {
    #[cfg(feature = "mpi")]
    dp: DataParallel<'c, Mpi>,
    #[cfg(not(feature = "mpi"))]
    _alone: std::marker::PhantomData<&'c ()>,
}

impl Trainer<'_> {
    /// One step on the batch `x` (every rank passes the same batch).
    pub fn step<M: Model, O: Optimizer>(
        &mut self,
        model: &mut M,
        opt: &mut O,
        x: &[f32],
        labels: &[usize],
    ) -> cnn::Result<f32> {
        #[cfg(feature = "mpi")]
        return self.dp.train_step(model, opt, x, labels);
        #[cfg(not(feature = "mpi"))]
        model.train_step(opt, x, labels)
    }

    /// Whether this process prints: rank 0.
    pub fn is_root(&self) -> bool {
        #[cfg(feature = "mpi")]
        return self.dp.is_root();
        #[cfg(not(feature = "mpi"))]
        true
    }
}
