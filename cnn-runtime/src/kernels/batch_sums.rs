//! The hook through which batch normalisation takes its statistics over a batch larger than
//! its pass's own samples: a data-parallel step whose global batch is spread over several passes
//! (groups of samples, ranks) sets it on the thread of each pass. Without the `std` feature
//! there is no data-parallel training, and no hook.

#[cfg(feature = "std")]
use core::cell::Cell;

/// Totals of batch normalisation's per-channel sums over all the passes of one global batch.
///
/// Every pass of the batch calls the same methods in the same order (its layers' order), and
/// each call returns once every pass has made it.
pub(crate) trait BatchSums: Sync {
    /// Replaces `sums`, per-channel sums of this pass's forward values, with their totals over
    /// the global batch; returns the number of samples in the global batch.
    fn forward(&self, sums: &mut [f64]) -> usize;

    /// Replaces `sums`, per-channel sums of this pass's backward values (in units of its own
    /// loss, a mean over its own samples), with their totals over the global batch, in the
    /// same units; returns the number of samples in the global batch.
    fn backward(&self, sums: &mut [f64]) -> usize;
}

/// A [`BatchSums`] lent to this thread by [`with_batch_sums`].
#[cfg(feature = "std")]
type Hook = *const (dyn BatchSums + 'static);

#[cfg(feature = "std")]
thread_local! {
    static HOOK: Cell<Option<Hook>> = const { Cell::new(None) };
}

/// Runs `f` on this thread with `hook` giving the statistics of every batch normalisation it
/// trains.
#[cfg(feature = "std")]
pub(crate) fn with_batch_sums<R>(hook: &dyn BatchSums, f: impl FnOnce() -> R) -> R {
    /// Puts the previous hook back when `f` ends, returns or panics.
    struct Restore(Option<Hook>);
    impl Drop for Restore {
        fn drop(&mut self) {
            HOOK.with(|h| h.set(self.0));
        }
    }
    // SAFETY: only the lifetime is erased. The pointer is read by `batch_sums` on this thread
    // while `f` runs, and `Restore` takes it out before the borrow of `hook` ends.
    let hook = unsafe { core::mem::transmute::<*const (dyn BatchSums + '_), Hook>(hook) };
    let _restore = Restore(HOOK.with(|h| h.replace(Some(hook))));
    f()
}

/// Calls `f` with the hook [`with_batch_sums`] set on this thread, if any.
pub(crate) fn batch_sums<R>(f: impl FnOnce(Option<&dyn BatchSums>) -> R) -> R {
    #[cfg(feature = "std")]
    let hook = HOOK.with(|h| h.get());
    #[cfg(not(feature = "std"))]
    let hook: Option<*const dyn BatchSums> = None;
    // SAFETY: set by `with_batch_sums`, whose borrow lasts while it is set.
    f(hook.map(|h| unsafe { &*h }))
}
