//! MPI as the [`Collective`] of data-parallel training (the `mpi` feature; the `mpi` crate over
//! the system's MPI, e.g. Open MPI from Debian's `libopenmpi-dev openmpi-bin`).
//!
//! A program calls [`Mpi::init`] once and runs under the launcher, `mpirun -np 4 program ...`;
//! started without it, it is one rank of one.

use core::cell::RefCell;

use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives};
use mpi::{Count, Rank};

use super::{check_gather, Collective};
use crate::{Error, Result};

/// The ranks of `MPI_COMM_WORLD`. Dropping it finalises MPI.
pub struct Mpi {
    world: SimpleCommunicator,
    scratch: RefCell<Vec<f32>>,
    // Dropped last: finalises MPI.
    _universe: Universe,
}

impl Mpi {
    /// Initialises MPI (its calls may come from any one thread at a time), or `Err` when it
    /// cannot be initialised or already was.
    pub fn init() -> Result<Self> {
        let (universe, _level) = mpi::initialize_with_threading(mpi::Threading::Serialized).ok_or_else(|| {
            Error::Distributed { reason: "MPI could not be initialised (or was initialised before)".into() }
        })?;
        Ok(Mpi { world: universe.world(), scratch: RefCell::new(Vec::new()), _universe: universe })
    }

    /// The name of the processor this rank runs on.
    pub fn processor_name(&self) -> String {
        mpi::environment::processor_name().unwrap_or_default()
    }
}

/// `value` as an MPI count.
fn count(value: usize) -> Result<Count> {
    Count::try_from(value)
        .map_err(|_| Error::Distributed { reason: format!("{value} values are more than one MPI call can send") })
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn all_gather(&self, send: &[f32], counts: &[usize], recv: &mut [f32]) -> Result<()> {
        check_gather(send, counts, recv, self.rank())?;
        count(recv.len())?;
        let counts: Vec<Count> = counts.iter().map(|&c| count(c)).collect::<Result<_>>()?;
        let displs: Vec<Count> = counts
            .iter()
            .scan(0, |at, &c| {
                let d = *at;
                *at += c;
                Some(d)
            })
            .collect();
        let mut partition = PartitionMut::new(recv, counts, displs);
        self.world.all_gather_varcount_into(send, &mut partition);
        Ok(())
    }

    fn exchange(&self, partner: usize, send: &[f32], recv: &mut [f32]) -> Result<()> {
        count(send.len())?;
        let size = self.size();
        if partner >= size || send.len() != recv.len() {
            return Err(Error::Distributed {
                reason: format!(
                    "rank {} cannot exchange {} values with rank {partner} of {size}",
                    self.rank(),
                    send.len()
                ),
            });
        }
        let process = self.world.process_at_rank(partner as Rank);
        mpi::point_to_point::send_receive_into(send, &process, recv, &process);
        Ok(())
    }

    fn all_sum(&self, values: &mut [f32]) -> Result<()> {
        count(values.len())?;
        let mut scratch = self.scratch.borrow_mut();
        scratch.clear();
        scratch.extend_from_slice(values);
        self.world.all_reduce_into(&scratch[..], values, mpi::collective::SystemOperation::sum());
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}
