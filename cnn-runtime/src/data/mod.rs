//! Data sets: MNIST and Fashion-MNIST (IDX files, gzip-compressed or not) and CIFAR-10 (binary
//! version), read into memory as `f32` images in NCHW order, scaled to [0, 1]; and, with the
//! default `images` feature, image folders (one directory of PNG and JPEG files per class, as
//! torchvision's `ImageFolder`), read whole or streamed in batches by `FolderBatches`.
//!
//! Every malformed file is an [`Error::File`] naming the file and what is wrong with it. Gzip
//! files may hold several members (as `cat a.gz b.gz` makes); they are decompressed as they are
//! read.
//!
//! Each load call counts what it allocates (the decoded bytes of its files and the `f32` images
//! and labels made from them) against one [`Limit`](crate::Limit):
//! [`Limit::DEFAULT`](crate::Limit::DEFAULT) for `load_mnist`, `load_cifar10`, `read_idx_images`
//! and `read_idx_labels`, the one given for their `_with` forms. Buffers grow with the bytes
//! actually decoded, never with a header's promise, and every growth is checked against the
//! limit before it is allocated. A header whose counts would pass the limit is refused before
//! any data is read; a file that decodes to more than its header announces (or, without a
//! header, to more than the limit) is refused as soon as the excess is decoded. While a buffer
//! grows (the read buffer doubling, CIFAR-10's training images from one batch to the next) its
//! old copy may live beside the new one for a moment, so peak memory can briefly pass the limit
//! by the size of that old copy.
//!
//! Training on MNIST with [`Batches`], each epoch in its own order (the files are not part of
//! this crate):
//!
//! ```no_run
//! use std::path::Path;
//!
//! use cnn::augment::Shift;
//! use cnn::data::{load_mnist, Batches};
//! use cnn::{cnn, Model, Network, Sgd};
//!
//! cnn! { struct Digits < input(28x28x1) conv(5x5, 6, pad=2) relu pool(2) fc(10) softmax > }
//!
//! // The four IDX files of MNIST or Fashion-MNIST, gzip-compressed or not.
//! let (train, test) = load_mnist(Path::new("data/mnist"))?;
//! train.check_fits(Digits::INPUT, Digits::OUTPUT_LEN)?;
//! // 5,000 of the training images held out to choose the number of epochs by.
//! let (train, validation) = train.split(5_000, 7)?;
//!
//! let mut model = Digits::with_seed(1);
//! let mut opt = Sgd::new(0.05, 0.9)?;
//! let shift = Shift { max: 2 };
//! let mut batches = Batches::new(&train, 64, 42)?.augment(&shift);
//! for epoch in 0..3 {
//!     batches.start_epoch(epoch)?;
//!     while let Some(batch) = batches.next_batch()? {
//!         model.train_step(&mut opt, batch.images, batch.labels)?;
//!     }
//!     let eval = model.evaluate(&validation.images, &validation.labels, 256)?;
//!     println!("epoch {epoch}: validation accuracy {:.1} %", 100.0 * eval.accuracy);
//! }
//! let eval = model.evaluate(&test.images, &test.labels, 256)?;
//! println!("test accuracy: {:.1} %", 100.0 * eval.accuracy);
//! # Ok::<(), cnn::Error>(())
//! ```

mod batches;
mod cifar;
#[cfg(feature = "images")]
mod folder;
mod idx;

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

pub use batches::{Batch, Batches, LastBatch};
pub use cifar::{load_cifar10, load_cifar10_with};
#[cfg(feature = "images")]
pub use folder::{ChannelStats, FolderBatches, ImageFolder, OnError, Resize, Skipped};
pub use idx::{
    load_mnist, load_mnist_with, read_idx_images, read_idx_images_with, read_idx_labels, read_idx_labels_with,
    IdxImages,
};

use crate::limit::Budget;
use crate::{Error, Result, Shape};

/// Labelled images held in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// All images, sample after sample, each `shape.len()` values in NCHW order, in [0, 1].
    pub images: Vec<f32>,
    /// One class index per image.
    pub labels: Vec<usize>,
    /// The shape of one image.
    pub shape: Shape,
    /// Number of classes.
    pub classes: usize,
    /// Where the images came from, for messages.
    pub source: PathBuf,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no sample.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image `i` and its label, or `None` when there is no sample `i` (or its image lies past
    /// the end of `images`).
    pub fn sample(&self, i: usize) -> Option<(&[f32], usize)> {
        let n = self.values_per_sample()?;
        let start = i.checked_mul(n)?;
        Some((self.images.get(start..start.checked_add(n)?)?, *self.labels.get(i)?))
    }

    /// The first `n` samples (all of them if there are fewer).
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        let values = self.values_per_sample().map_or(usize::MAX, |v| v.saturating_mul(n)).min(self.images.len());
        Dataset { images: self.images[..values].to_vec(), labels: self.labels[..n].to_vec(), ..self.clone_empty() }
    }

    /// Values per image; `None` when `shape` holds more than `usize` counts (its fields are
    /// public, so nothing else stops that).
    fn values_per_sample(&self) -> Option<usize> {
        self.shape.w.checked_mul(self.shape.h)?.checked_mul(self.shape.d)
    }

    fn clone_empty(&self) -> Dataset {
        Dataset {
            images: Vec::new(),
            labels: Vec::new(),
            shape: self.shape,
            classes: self.classes,
            source: self.source.clone(),
        }
    }

    /// Checks that the images fit a model's input and its classes fit the model's outputs.
    pub fn check_fits(&self, input: Shape, outputs: usize) -> Result<()> {
        if self.values_per_sample() != Some(input.len()) || (!input.flat && self.shape != input) {
            return Err(self.error(format!("images are {}, the model takes {input}", self.shape)));
        }
        if self.classes > outputs {
            return Err(self.error(format!("{} classes, the model has {outputs} outputs", self.classes)));
        }
        Ok(())
    }

    fn error(&self, reason: String) -> Error {
        Error::File { path: self.source.clone(), reason }
    }
}

/// The order in which to visit `len` samples in epoch `epoch`: a permutation drawn from
/// `(seed, epoch)` alone, written into `order` (reused from epoch to epoch). Resuming training
/// at an epoch therefore needs only the seed.
///
/// `order` ends up holding `len` indices, as much memory as the labels of a data set of `len`
/// samples; nothing else is allocated. A `len` whose indices memory cannot hold is an `Err`,
/// with `order` left empty.
pub fn epoch_order(len: usize, seed: u64, epoch: u64, order: &mut Vec<usize>) -> Result<()> {
    use rand::{RngExt as _, SeedableRng};
    let mut rng = crate::init::Rng::seed_from_u64(seed ^ epoch.wrapping_add(1).wrapping_mul(0xd6e8_feb8_6659_fd93));
    order.clear();
    order.try_reserve_exact(len).map_err(|e| Error::InvalidArgument {
        name: "len",
        reason: format!("the order of {len} samples does not fit in memory: {e}"),
    })?;
    order.extend(0..len);
    for i in (1..len).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    Ok(())
}

/// The error for `path`.
pub(crate) fn file_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::File { path: path.to_path_buf(), reason: reason.into() }
}

/// Bytes a buffer of unknown final size first grows to.
const FIRST_PIECE: u64 = 64 << 10;

/// A file opened for reading, decompressed on the fly when it is gzip (any number of members).
pub(crate) struct Input<'a> {
    pub(crate) path: &'a Path,
    reader: Box<dyn Read>,
    gzip: bool,
}

impl<'a> Input<'a> {
    /// Opens `path`; it is gzip when it starts with the gzip magic bytes.
    pub(crate) fn open(path: &'a Path) -> Result<Input<'a>> {
        let mut file = File::open(path).map_err(|e| file_error(path, format!("cannot open: {e}")))?;
        let mut magic = [0u8; 2];
        let got = fill(&mut file, &mut magic).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
        let head = std::io::Cursor::new(magic).take(got as u64);
        let gzip = magic[..got] == [0x1f, 0x8b];
        let reader: Box<dyn Read> = if gzip {
            Box::new(flate2::read::MultiGzDecoder::new(head.chain(file)))
        } else {
            Box::new(BufReader::new(head.chain(file)))
        };
        Ok(Input { path, reader, gzip })
    }

    /// An input reading `reader` as the (already decompressed) contents of `path`.
    #[cfg(test)]
    fn from_reader(path: &'a Path, reader: impl Read + 'static) -> Input<'a> {
        Input { path, reader: Box::new(reader), gzip: false }
    }

    /// Fills `buf` until it is full or the input ends; returns the bytes read.
    pub(crate) fn fill(&mut self, buf: &mut [u8]) -> Result<usize> {
        fill(&mut self.reader, buf).map_err(|e| {
            let what = if self.gzip { "corrupt gzip data" } else { "cannot read" };
            file_error(self.path, format!("{what}: {e}"))
        })
    }

    /// Whether the input has no byte left (it reads one byte to find out).
    pub(crate) fn at_end(&mut self) -> Result<bool> {
        Ok(self.fill(&mut [0u8])? == 0)
    }

    /// Reads up to `max` bytes (fewer when the input ends first) into a buffer that grows with
    /// the bytes read, doubling from 64 KiB but never past `max`; each growth is taken from
    /// `budget` before it is allocated, as `what`, and the room left unfilled at the end is
    /// freed and given back, so that the budget keeps exactly the bytes read.
    pub(crate) fn read_up_to(&mut self, budget: &mut Budget, max: u64, what: &str) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        let mut filled = 0;
        loop {
            if filled == buf.len() {
                let len = buf.len() as u64;
                let grow = len.max(FIRST_PIECE).min(max - len);
                if grow == 0 {
                    break;
                }
                budget.take(self.path, grow, what)?;
                let grow = usize::try_from(grow).map_err(|_| self.no_memory(len + grow, what))?;
                buf.try_reserve_exact(grow).map_err(|_| self.no_memory(len + grow as u64, what))?;
                buf.resize(buf.len() + grow, 0);
            }
            let got = self.fill(&mut buf[filled..])?;
            if got == 0 {
                break;
            }
            filled += got;
        }
        // The room the input did not fill is freed and given back.
        budget.give_back((buf.len() - filled) as u64);
        buf.truncate(filled);
        buf.shrink_to_fit();
        Ok(buf)
    }

    fn no_memory(&self, bytes: u64, what: &str) -> Error {
        file_error(self.path, format!("cannot allocate {bytes} bytes for {what}"))
    }
}

/// Makes room in `v` for exactly `more` values, taken from `budget` first as `what` of `path`;
/// the room is only reserved, so a failed allocation is an error, not an abort.
pub(crate) fn grow<T>(path: &Path, budget: &mut Budget, v: &mut Vec<T>, more: usize, what: &str) -> Result<()> {
    let size = core::mem::size_of::<T>();
    budget.take_values(path, more, size, what)?;
    v.try_reserve_exact(more)
        .map_err(|_| file_error(path, format!("cannot allocate {more} values of {size} bytes for {what}")))
}

/// Fills `buf` from `reader` until it is full or the input ends; returns the bytes read.
fn fill(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Error as IoError};

    use super::*;
    use crate::Limit;

    /// Hands out its bytes a few at a time, failing with `Interrupted` between pieces, as a
    /// slow device or a signal may.
    struct Trickle {
        data: Cursor<Vec<u8>>,
        interrupt: bool,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(IoError::from(ErrorKind::Interrupted));
            }
            let n = buf.len().min(7);
            self.data.read(&mut buf[..n])
        }
    }

    fn trickle(len: usize) -> (Vec<u8>, Trickle) {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        (data.clone(), Trickle { data: Cursor::new(data), interrupt: false })
    }

    #[test]
    fn a_known_length_is_read_whole_into_exactly_its_size_of_budget() {
        let path = Path::new("p");
        let (data, reader) = trickle(200_000);
        let mut input = Input::from_reader(path, reader);
        let mut budget = Budget::new(Limit::bytes(1 << 20));
        let got = input.read_up_to(&mut budget, 200_000, "data").unwrap();
        assert_eq!(got, data);
        assert_eq!(got.capacity(), 200_000);
        assert_eq!(budget.left(), (1 << 20) - 200_000);
        assert!(input.at_end().unwrap());
    }

    #[test]
    fn reading_stops_at_its_maximum_and_leaves_the_rest() {
        let path = Path::new("p");
        let (data, reader) = trickle(1000);
        let mut input = Input::from_reader(path, reader);
        let mut budget = Budget::new(Limit::DEFAULT);
        assert_eq!(input.read_up_to(&mut budget, 600, "data").unwrap(), data[..600]);
        assert!(!input.at_end().unwrap());
        // A short input ends the read early, with what there was.
        let left = budget.left();
        let mut input = Input::from_reader(path, Cursor::new(vec![5u8; 10]));
        let short = input.read_up_to(&mut budget, 600, "data").unwrap();
        assert_eq!((short.as_slice(), short.capacity()), (&[5u8; 10][..], 10));
        // Of the room taken for 600 bytes, what the 10 did not fill is given back.
        assert_eq!(budget.left(), left - 10);
    }

    #[test]
    fn growing_past_the_budget_is_refused_before_it_is_allocated() {
        let path = Path::new("big");
        let mut input = Input::from_reader(path, std::io::repeat(0));
        let mut budget = Budget::new(Limit::bytes(100_000));
        let Err(Error::File { path: p, reason }) = input.read_up_to(&mut budget, u64::MAX, "the decoded data") else {
            panic!("an endless input read within a budget")
        };
        assert_eq!(p, path);
        assert!(reason.contains("the decoded data would need") && reason.contains("limit of 100000 bytes"), "{reason}");
        // 64 KiB was taken, the next doubling (64 KiB more) was not.
        assert_eq!(budget.left(), 100_000 - (64 << 10));
    }

    #[test]
    fn growing_a_vector_takes_its_values_from_the_budget() {
        let path = Path::new("v");
        let mut budget = Budget::new(Limit::bytes(100));
        let mut v: Vec<f32> = Vec::new();
        grow(path, &mut budget, &mut v, 20, "the f32 images").unwrap();
        assert!(v.capacity() >= 20);
        assert_eq!(budget.left(), 20);
        let err = grow(path, &mut budget, &mut v, 6, "the f32 images").unwrap_err().to_string();
        assert!(err.contains("the f32 images would need 24 bytes"), "{err}");
        assert!(grow::<u64>(path, &mut budget, &mut Vec::new(), usize::MAX, "x").is_err());
    }

    fn set(images: Vec<f32>, labels: Vec<usize>) -> Dataset {
        Dataset { images, labels, shape: Shape::volume(2, 1, 1), classes: 3, source: PathBuf::from("s") }
    }

    #[test]
    fn a_sample_out_of_range_is_none() {
        let s = set(vec![0.0, 0.1, 0.2, 0.3], vec![2, 1]);
        assert_eq!(s.sample(1), Some((&[0.2, 0.3][..], 1)));
        assert_eq!(s.sample(2), None);
        assert_eq!(s.sample(usize::MAX), None);
        // Fields are public: a set whose images run short has no sample there either.
        let short = set(vec![0.0, 0.1, 0.2], vec![2, 1]);
        assert_eq!(short.sample(1), None);
        assert_eq!(short.take(5).images, [0.0, 0.1, 0.2]);
        let huge = Dataset { shape: Shape::volume(usize::MAX, 2, 1), ..s.clone() };
        assert_eq!(huge.sample(1), None);
        assert_eq!(huge.take(1).images.len(), 4);
    }

    #[test]
    fn epoch_orders_of_no_and_one_sample() {
        let mut order = vec![9, 9];
        epoch_order(0, 1, 2, &mut order).unwrap();
        assert!(order.is_empty());
        epoch_order(1, 1, 2, &mut order).unwrap();
        assert_eq!(order, [0]);
        assert!(epoch_order(usize::MAX, 1, 2, &mut order).is_err());
        assert!(order.is_empty());
    }
}
