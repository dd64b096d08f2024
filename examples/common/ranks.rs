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

    /// The training steps of this process; with `fast`, the ranks add their gradients with
    /// MPI's own all-reduce (not bitwise the same on another number of ranks).
    pub fn trainer(&self, fast: bool) -> Trainer<'_> {
        #[cfg(not(feature = "mpi"))]
        let _ = fast;
        Trainer {
            #[cfg(feature = "mpi")]
            dp: DataParallel::new(&self.comm).with_reduction(if fast {
                cnn::distributed::Reduction::Fast
            } else {
                cnn::distributed::Reduction::Exact
            }),
            #[cfg(not(feature = "mpi"))]
            _alone: std::marker::PhantomData,
        }
    }

    /// A line saying how the job runs, `fast` as for [`trainer`](Ranks::trainer).
    pub fn describe(&self, fast: bool) -> String {
        #[cfg(feature = "mpi")]
        return if fast {
            format!("{} MPI rank(s), gradients added by MPI_Allreduce", self.comm.size())
        } else {
            format!(
                "{} MPI rank(s), each batch in {} groups added in a fixed order (the same model on any number of ranks)",
                self.comm.size(),
                DataParallel::new(&self.comm).groups()
            )
        };
        #[cfg(not(feature = "mpi"))]
        {
            let _ = fast;
            "one process".to_string()
        }
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
