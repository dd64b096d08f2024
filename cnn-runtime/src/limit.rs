//! How much memory one load call may allocate.

use core::marker::PhantomData;
#[cfg(feature = "std")]
use std::path::Path;

use crate::prelude::*;
use crate::{Error, Result};

/// What a load reads, named in its errors: a file, or bytes in memory.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Origin<'a> {
    /// The file at this path.
    #[cfg(feature = "std")]
    File(&'a Path),
    /// Bytes given in memory.
    Bytes(PhantomData<&'a [u8]>),
}

impl Origin<'_> {
    /// Bytes given in memory.
    pub(crate) const BYTES: Origin<'static> = Origin::Bytes(PhantomData);

    /// The error of a load of this origin: [`Error::File`] or [`Error::Bytes`].
    pub(crate) fn error(self, reason: impl Into<String>) -> Error {
        match self {
            #[cfg(feature = "std")]
            Origin::File(path) => crate::data::file_error(path, reason),
            Origin::Bytes(_) => Error::Bytes { reason: reason.into() },
        }
    }
}

#[cfg(feature = "std")]
impl<'a> From<&'a Path> for Origin<'a> {
    fn from(path: &'a Path) -> Self {
        Origin::File(path)
    }
}

/// The most memory one load call may allocate for what it reads: the decoded bytes of its files
/// and the buffers made from them (`f32` images, labels, tensors), added up over the call.
///
/// Every load checks its running total against the limit before it allocates, and grows its
/// buffers with the data it actually reads, never with what a header promises. The default,
/// [`Limit::DEFAULT`], is 4 GiB; raise it for larger data sets with [`Limit::bytes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    bytes: u64,
}

impl Limit {
    /// The default limit: 4 GiB.
    pub const DEFAULT: Limit = Limit { bytes: 4 << 30 };

    /// A limit of `bytes` bytes.
    pub const fn bytes(bytes: u64) -> Limit {
        Limit { bytes }
    }

    /// The limit in bytes.
    pub const fn max_bytes(self) -> u64 {
        self.bytes
    }
}

impl Default for Limit {
    fn default() -> Self {
        Limit::DEFAULT
    }
}

/// What is left of a [`Limit`] during one load call.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u64,
    used: u64,
}

impl Budget {
    /// The whole of `limit`.
    pub(crate) fn new(limit: Limit) -> Budget {
        Budget { limit: limit.bytes, used: 0 }
    }

    /// Bytes not yet taken.
    pub(crate) fn left(&self) -> u64 {
        self.limit - self.used
    }

    /// Fails, naming the limit, when `bytes` more for `what` of `path` would pass it; takes
    /// nothing.
    pub(crate) fn check<'a>(&self, path: impl Into<Origin<'a>>, bytes: u64, what: &str) -> Result<()> {
        let left = self.left();
        if bytes > left {
            return Err(
                self.exceeded(path, format!("{what} would need {bytes} bytes, more than the {left} bytes left"))
            );
        }
        Ok(())
    }

    /// Takes `bytes` for `what` of `path`, or fails, naming the limit, before anything is
    /// allocated.
    pub(crate) fn take<'a>(&mut self, path: impl Into<Origin<'a>>, bytes: u64, what: &str) -> Result<()> {
        self.check(path, bytes, what)?;
        self.used += bytes;
        Ok(())
    }

    /// Gives back `bytes` taken earlier and since freed.
    #[cfg(feature = "std")]
    pub(crate) fn give_back(&mut self, bytes: u64) {
        self.used -= bytes.min(self.used);
    }

    /// The error for `path` passing the limit; `reason` says by what, and ends where "of this
    /// load's limit" follows.
    pub(crate) fn exceeded<'a>(&self, path: impl Into<Origin<'a>>, reason: String) -> crate::Error {
        path.into()
            .error(format!("{reason} of this load's limit of {} bytes (raise it with cnn::Limit::bytes)", self.limit))
    }

    /// Takes `count` values of `size` bytes each.
    pub(crate) fn take_values<'a>(
        &mut self,
        path: impl Into<Origin<'a>>,
        count: usize,
        size: usize,
        what: &str,
    ) -> Result<()> {
        let bytes = (count as u64).saturating_mul(size as u64);
        self.take(path, bytes, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_refuses_what_passes_its_limit_and_keeps_its_total() {
        let path = Path::new("x");
        let mut b = Budget::new(Limit::bytes(100));
        b.take(path, 60, "a").unwrap();
        let e = b.take(path, 41, "b").unwrap_err().to_string();
        assert!(e.contains("41 bytes") && e.contains("40 bytes left") && e.contains("limit of 100"), "{e}");
        b.take(path, 40, "c").unwrap();
        assert_eq!(b.left(), 0);
        assert!(b.take_values(path, usize::MAX, 4, "d").is_err());
    }

    #[test]
    fn a_check_takes_nothing_and_what_is_given_back_can_be_taken_again() {
        let path = Path::new("x");
        let mut b = Budget::new(Limit::bytes(100));
        b.check(path, 100, "a").unwrap();
        assert!(b.check(path, 101, "a").is_err());
        b.take(path, 100, "b").unwrap();
        b.give_back(30);
        assert_eq!(b.left(), 30);
        b.take(path, 30, "c").unwrap();
        let e = b.exceeded(path, "it goes on".into()).to_string();
        assert!(e.ends_with("it goes on of this load's limit of 100 bytes (raise it with cnn::Limit::bytes)"), "{e}");
    }
}
