//! Batches streamed from an image folder: decoded ahead by background threads, within a
//! memory ceiling, handed out in the epoch's order.
//!
//! The epoch's order is a list of positions. Workers claim positions in order, decode each
//! image into a buffer of its own and send it back; the consumer takes them back in position
//! order (holding early arrivals aside) and fills the batch. A worker may only claim a position
//! less than `window` ahead of the next one the consumer needs, so at most `window` images are
//! decoded and waiting at any time, and the one the consumer waits for is always claimed or
//! claimable: the stream cannot stall.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use rayon::prelude::*;

use super::{ImageFolder, OnError, Skipped};
use crate::augment::Transform;
use crate::data::batches::{sample_rng, standardisation};
use crate::data::{epoch_order, Batch, LastBatch};
use crate::{Error, Result};

/// Batches decoded ahead unless set otherwise.
const PREFETCH: usize = 2;

/// Batches of an [`ImageFolder`], epoch after epoch, decoded by background threads: the
/// streaming counterpart of [`Batches`](crate::data::Batches), for folders too large to hold in
/// memory. Its batches borrow its buffers, as those of `Batches` do.
///
/// Epoch `e` visits the images in the order [`epoch_order`] gives for `(seed, e)` (or in index
/// order without shuffling), and augmentation draws each image's randomness from `(seed, e,
/// its index in the folder)`, exactly as `Batches` does; the batches are therefore the same as
/// those of `Batches` over the folder [`load`](ImageFolder::load)ed whole, and the same for any
/// number of threads. They come out in the epoch's order whichever thread finishes first.
///
/// Decoding starts with the epoch ([`start_epoch`](Self::start_epoch), or the first
/// [`next_batch`](Self::next_batch)): worker threads decode up to
/// [`prefetch`](Self::prefetch) batches ahead of the one being used, fewer when the
/// [`ceiling`](Self::ceiling) demands. Starting another epoch, or dropping the loader, stops and
/// joins them (after the image each is decoding).
///
/// An image that cannot be read is an error that ends the epoch ([`OnError::Fail`], the
/// default), or, with [`OnError::Skip`], is left out with its label, the batch filled with the
/// images that follow, and recorded in [`skipped`](Self::skipped).
pub struct FolderBatches<'a> {
    folder: ImageFolder,
    batch: usize,
    seed: u64,
    shuffle: bool,
    last: LastBatch,
    augment: Option<&'a dyn Transform>,
    /// Per channel: `(mean, 1 / std)`.
    standardise: Vec<(f32, f32)>,
    on_error: OnError,
    workers: usize,
    prefetch: usize,
    ceiling: Option<u64>,
    epoch: u64,
    order: Arc<Vec<usize>>,
    /// The next position of the order to hand out.
    next: usize,
    /// Whether the epoch has ended (its last batch handed out, or an error).
    ended: bool,
    running: Option<Running>,
    /// Image buffers no longer in use, for the next ones decoded.
    free: Vec<Vec<f32>>,
    images: Vec<f32>,
    labels: Vec<usize>,
    indices: Vec<usize>,
    skipped: Vec<Skipped>,
    skipped_indices: HashSet<usize>,
}

/// What the workers of an epoch share with the consumer.
struct Shared {
    folder: ImageFolder,
    order: Arc<Vec<usize>>,
    /// Positions a worker may run ahead of the consumer.
    window: usize,
    state: Mutex<State>,
    /// Signalled when the consumer frees a position or the workers must stop.
    moved: Condvar,
}

struct State {
    /// The next position to claim.
    claimed: usize,
    /// Positions the consumer is done with.
    consumed: usize,
    stop: bool,
    free: Vec<Vec<f32>>,
}

/// A decoded image (or why it could not be), at its position in the order.
struct Decoded {
    position: usize,
    image: Result<Vec<f32>>,
}

/// The workers of the current epoch.
struct Running {
    shared: Arc<Shared>,
    decoded: Receiver<Decoded>,
    /// Images that arrived before their turn, by position.
    early: HashMap<usize, Result<Vec<f32>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<'a> FolderBatches<'a> {
    /// Batches of `batch` images of `folder` (all of them when it has fewer), shuffled from
    /// `seed`, the last one kept even when smaller, neither augmented nor standardised, an
    /// unreadable image an error, decoded by as many threads as the machine has cores,
    /// [`prefetch`](Self::prefetch)ing two batches, without a ceiling; epoch 0 is started, its
    /// decoding not yet.
    ///
    /// Fails when `batch` is 0 or one batch of images does not fit in memory.
    pub fn new(folder: &ImageFolder, batch: usize, seed: u64) -> Result<Self> {
        if batch == 0 {
            return Err(Error::InvalidArgument { name: "batch", reason: "must be at least 1".into() });
        }
        let batch = batch.min(folder.len().max(1));
        let per = folder.shape().len();
        let mut images = Vec::new();
        images.try_reserve_exact(batch.saturating_mul(per)).map_err(|e| Error::InvalidArgument {
            name: "batch",
            reason: format!("{batch} images of {} do not fit in memory: {e}", folder.shape()),
        })?;
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut batches = FolderBatches {
            folder: folder.clone(),
            batch,
            seed,
            shuffle: true,
            last: LastBatch::Keep,
            augment: None,
            standardise: Vec::new(),
            on_error: OnError::Fail,
            workers,
            prefetch: PREFETCH,
            ceiling: None,
            epoch: 0,
            order: Arc::new(Vec::new()),
            next: 0,
            ended: false,
            running: None,
            free: Vec::new(),
            images,
            labels: Vec::with_capacity(batch),
            indices: Vec::with_capacity(batch),
            skipped: Vec::new(),
            skipped_indices: HashSet::new(),
        };
        batches.reset(0)?;
        Ok(batches)
    }

    /// Visits the images in index order (`false`) or shuffled per epoch (`true`, the default);
    /// restarts the current epoch.
    pub fn shuffle(mut self, shuffle: bool) -> Result<Self> {
        self.shuffle = shuffle;
        self.reset(self.epoch)?;
        Ok(self)
    }

    /// What to do with the images left over at the end of an epoch; restarts the current epoch.
    pub fn last(mut self, last: LastBatch) -> Self {
        self.last = last;
        self.restart();
        self
    }

    /// Applies `transform` to every image of every batch, in parallel (on rayon's threads, as
    /// [`Batches`](crate::data::Batches) does); restarts the current epoch.
    pub fn augment(mut self, transform: &'a dyn Transform) -> Self {
        self.augment = Some(transform);
        self.restart();
        self
    }

    /// Standardises every image after augmentation, `(x - mean) / std`, with one `mean` and
    /// `std` for all channels or one per channel (as [`ChannelStats`](super::ChannelStats)
    /// gives them).
    ///
    /// Fails when the lengths fit neither, or a `std` is not positive and finite or a `mean`
    /// not finite.
    pub fn standardise(mut self, mean: &[f32], std: &[f32]) -> Result<Self> {
        self.standardise = standardisation(mean, std, self.folder.shape().d)?;
        self.restart();
        Ok(self)
    }

    /// What to do with an image that cannot be read ([`OnError::Fail`] by default); restarts
    /// the current epoch.
    pub fn on_error(mut self, on_error: OnError) -> Self {
        self.on_error = on_error;
        self.restart();
        self
    }

    /// Decodes with `workers` background threads (at least 1); restarts the current epoch. The
    /// batches do not depend on it.
    pub fn workers(mut self, workers: usize) -> Result<Self> {
        if workers == 0 {
            return Err(Error::InvalidArgument { name: "workers", reason: "must be at least 1".into() });
        }
        self.workers = workers;
        self.restart();
        Ok(self)
    }

    /// Decodes up to `batches` batches ahead of the one in use (at least 1; 2 by default), as
    /// the ceiling allows; restarts the current epoch.
    pub fn prefetch(mut self, batches: usize) -> Result<Self> {
        if batches == 0 {
            return Err(Error::InvalidArgument { name: "prefetch", reason: "must be at least 1".into() });
        }
        self.prefetch = batches;
        self.restart();
        Ok(self)
    }

    /// Keeps the decoded images in memory under `bytes`: the batch handed out plus the images
    /// decoded ahead of it, `f32` values each, as many as fit. The images being decoded are
    /// counted too, but not the decoders' own memory (each thread holds the file it decodes, up
    /// to [`ImageFolder::max_pixels`] pixels) nor rayon's per-thread copy of an image for
    /// augmentation. Restarts the current epoch.
    ///
    /// Fails when one batch and one image more do not fit under `bytes`.
    pub fn ceiling(mut self, bytes: u64) -> Result<Self> {
        self.ceiling = Some(bytes);
        self.window()?;
        self.restart();
        Ok(self)
    }

    /// Starts epoch `epoch` (any, in any order): the workers of the current one are stopped,
    /// the order is drawn again and decoding starts.
    pub fn start_epoch(&mut self, epoch: u64) -> Result<()> {
        self.reset(epoch)?;
        self.spawn()
    }

    /// The next batch of the epoch, or `None` at its end: the images (augmented and
    /// standardised as asked), their labels and their indices in the folder.
    ///
    /// Fails with the image's [`Error::File`] when one cannot be read under [`OnError::Fail`]
    /// (the epoch then ends), or when the augmentation refuses its parameters.
    pub fn next_batch(&mut self) -> Result<Option<Batch<'_>>> {
        if self.ended {
            return Ok(None);
        }
        if self.running.is_none() {
            self.spawn()?;
        }
        self.images.clear();
        self.labels.clear();
        self.indices.clear();
        let per = self.folder.shape().len();
        while self.labels.len() < self.batch && self.next < self.order.len() {
            let position = self.next;
            let index = self.order[position];
            let decoded = self.take(position);
            self.next += 1;
            match decoded {
                Ok(image) => {
                    self.images.extend_from_slice(&image[..per]);
                    self.labels.push(self.folder.label(index));
                    self.indices.push(index);
                    self.release(image);
                }
                Err(e) if self.on_error == OnError::Skip && matches!(e, Error::File { .. }) => {
                    if self.skipped_indices.insert(index) {
                        self.skipped.push(Skipped::new(index, e));
                    }
                    self.release(Vec::new());
                }
                Err(e) => {
                    self.end();
                    return Err(e);
                }
            }
        }
        let whole = self.labels.len() == self.batch || (self.last == LastBatch::Keep && !self.labels.is_empty());
        if self.next >= self.order.len() {
            self.stop();
        }
        if !whole {
            self.end();
            return Ok(None);
        }
        self.augment_and_standardise()?;
        Ok(Some(Batch { images: &self.images, labels: &self.labels, indices: &self.indices }))
    }

    /// Images that could not be read and were left out, under [`OnError::Skip`]: each once, in
    /// the order they were met, over all epochs so far.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Batches per epoch when no image is skipped (an upper bound otherwise).
    pub fn len(&self) -> usize {
        self.last.batches(self.folder.len(), self.batch)
    }

    /// Whether an epoch has no batch (never, for an opened folder).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Images per epoch when none is skipped.
    pub fn samples(&self) -> usize {
        self.last.samples(self.folder.len(), self.batch)
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Images that may be decoded and waiting at once: [`prefetch`](Self::prefetch) batches,
    /// fewer if the ceiling demands, at least one. Fails when the ceiling leaves no room for one.
    pub(super) fn window(&self) -> Result<usize> {
        let image = self.folder.shape().len() as u64 * 4;
        // The batch handed out: its images, labels and indices.
        let batch = self.batch as u64 * (image + 16);
        let wanted = self.prefetch.saturating_mul(self.batch).min(self.folder.len()).max(1);
        let Some(ceiling) = self.ceiling else { return Ok(wanted) };
        let room = ceiling.checked_sub(batch).map_or(0, |room| room / image.max(1));
        if room == 0 {
            return Err(Error::InvalidArgument {
                name: "ceiling",
                reason: format!(
                    "{ceiling} bytes: one batch of {} images of {} takes {batch} bytes, and one more image {image}",
                    self.batch,
                    self.folder.shape()
                ),
            });
        }
        Ok(wanted.min(usize::try_from(room).unwrap_or(usize::MAX)))
    }

    /// Stops the workers and makes `epoch` the current one, at its start.
    fn reset(&mut self, epoch: u64) -> Result<()> {
        self.stop();
        self.epoch = epoch;
        self.next = 0;
        self.ended = false;
        let order = Arc::make_mut(&mut self.order);
        if self.shuffle {
            epoch_order(self.folder.len(), self.seed, epoch, order)
        } else {
            order.clear();
            order.extend(0..self.folder.len());
            Ok(())
        }
    }

    /// Stops the workers and goes back to the start of the current epoch (whose order is kept).
    fn restart(&mut self) {
        self.stop();
        self.next = 0;
        self.ended = false;
    }

    /// Ends the epoch: the rest of it is not decoded.
    fn end(&mut self) {
        self.stop();
        self.ended = true;
    }

    /// Starts the workers of the epoch from its current position.
    fn spawn(&mut self) -> Result<()> {
        self.stop();
        let left = self.order.len() - self.next;
        if left == 0 {
            return Ok(());
        }
        let window = self.window()?;
        // Buffers beyond the window (kept from a larger one) would pass the ceiling.
        self.free.truncate(window);
        let shared = Arc::new(Shared {
            folder: self.folder.clone(),
            order: Arc::clone(&self.order),
            window,
            state: Mutex::new(State {
                claimed: self.next,
                consumed: self.next,
                stop: false,
                free: core::mem::take(&mut self.free),
            }),
            moved: Condvar::new(),
        });
        let (sender, decoded) = channel();
        let mut threads = Vec::new();
        for _ in 0..self.workers.min(window).min(left) {
            let (shared, sender) = (Arc::clone(&shared), sender.clone());
            match std::thread::Builder::new().name("cnn-image-decoder".into()).spawn(move || work(&shared, &sender)) {
                Ok(thread) => threads.push(thread),
                Err(_) if !threads.is_empty() => break,
                Err(e) => {
                    return Err(Error::InvalidArgument {
                        name: "workers",
                        reason: format!("cannot start a thread to decode images: {e}"),
                    })
                }
            }
        }
        self.running = Some(Running { shared, decoded, early: HashMap::new(), threads });
        Ok(())
    }

    /// Stops and joins the workers, if any, and keeps their buffers.
    fn stop(&mut self) {
        let Some(running) = self.running.take() else { return };
        running.shared.lock().stop = true;
        running.shared.moved.notify_all();
        for thread in running.threads {
            // A worker catches its decoder's panics; a join error would only repeat one.
            let _ = thread.join();
        }
        let arrived = running.decoded.try_iter().map(|d| d.image).chain(running.early.into_values());
        self.free.extend(arrived.filter_map(Result::ok));
        self.free.append(&mut running.shared.lock().free);
    }

    /// The image at `position`, waiting for it if it is still being decoded.
    fn take(&mut self, position: usize) -> Result<Vec<f32>> {
        let stopped = || Error::InvalidArgument {
            name: "workers",
            reason: "the threads decoding images stopped before the epoch's end".into(),
        };
        let Some(running) = self.running.as_mut() else { return Err(stopped()) };
        loop {
            if let Some(image) = running.early.remove(&position) {
                return image;
            }
            match running.decoded.recv() {
                Ok(d) => {
                    running.early.insert(d.position, d.image);
                }
                // Unreachable while a worker is alive: the position is claimed or claimable.
                Err(_) => return Err(stopped()),
            }
        }
    }

    /// Marks the current position done and keeps `image`'s buffer for another.
    fn release(&mut self, image: Vec<f32>) {
        if let Some(running) = &self.running {
            let mut state = running.shared.lock();
            state.consumed += 1;
            if image.capacity() > 0 {
                state.free.push(image);
            }
            drop(state);
            running.shared.moved.notify_all();
        }
    }

    fn augment_and_standardise(&mut self) -> Result<()> {
        let shape = self.folder.shape();
        let per = shape.len();
        if let Some(transform) = self.augment {
            let (seed, epoch) = (self.seed, self.epoch);
            self.images.par_chunks_mut(per).zip(self.indices.par_iter()).try_for_each_init(
                || vec![0.0f32; per],
                |scratch, (image, &i)| transform.apply(image, shape, &mut sample_rng(seed, epoch, i), scratch),
            )?;
        }
        if !self.standardise.is_empty() {
            let plane = shape.w * shape.h;
            let standardise = &self.standardise;
            self.images.par_chunks_mut(per).for_each(|image| {
                for (channel, &(mean, inv)) in image.chunks_mut(plane).zip(standardise) {
                    channel.iter_mut().for_each(|v| *v = (*v - mean) * inv);
                }
            });
        }
        Ok(())
    }
}

impl Drop for FolderBatches<'_> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A worker: claims the next position within the window, decodes its image, sends it; until
/// the order ends, the consumer is gone or it is told to stop.
fn work(shared: &Shared, sender: &Sender<Decoded>) {
    let per = shared.folder.shape().len();
    loop {
        let (position, mut buffer) = {
            let mut state = shared.lock();
            loop {
                if state.stop || state.claimed >= shared.order.len() {
                    return;
                }
                if state.claimed < state.consumed + shared.window {
                    break;
                }
                state = shared.moved.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
            state.claimed += 1;
            (state.claimed - 1, state.free.pop().unwrap_or_default())
        };
        let index = shared.order[position];
        let image = match buffer.try_reserve_exact(per.saturating_sub(buffer.len())) {
            Ok(()) => {
                buffer.resize(per, 0.0);
                shared.folder.read_image(index, &mut buffer).map(|()| buffer)
            }
            Err(e) => Err(crate::data::file_error(
                shared.folder.path(index).unwrap_or(shared.folder.root()),
                format!("cannot allocate the decoded image: {e}"),
            )),
        };
        if sender.send(Decoded { position, image }).is_err() {
            return;
        }
    }
}
