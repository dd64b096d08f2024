//! The training epoch of the examples that train on files: batches from [`Batches`], the
//! learning rate from a schedule, a progress bar.

use std::error::Error;

use cnn::data::Batches;
use cnn::io::Progress;
use cnn::{Model, Optimizer, Schedule};
use indicatif::{ProgressBar, ProgressStyle};

/// One pass over the epoch's batches, counting steps in `progress`; returns the mean loss. On
/// an error (a diverging step is one, and is undone) the bar is left where it stopped.
pub fn train_epoch<M: Model, O: Optimizer>(
    epochs: u64,
    batches: &mut Batches<'_>,
    model: &mut M,
    opt: &mut O,
    progress: &mut Progress,
    schedule: &dyn Schedule,
) -> Result<f32, Box<dyn Error>> {
    let bar = ProgressBar::new(batches.samples() as u64);
    bar.set_style(ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} {per_sec} ETA {eta}")?);
    bar.set_prefix(format!("{}/{epochs}", progress.epoch + 1));
    let (mut total, mut count) = (0.0f64, 0usize);
    while let Some(batch) = batches.next_batch()? {
        schedule.apply(opt, progress.step as usize)?;
        let loss = model.train_step(opt, batch.images, batch.labels).inspect_err(|_| bar.abandon())?;
        progress.step += 1;
        total += loss as f64 * batch.labels.len() as f64;
        count += batch.labels.len();
        bar.inc(batch.labels.len() as u64);
        bar.set_message(format!("loss {:.4}", total / count as f64));
    }
    bar.finish_and_clear();
    Ok((total / count.max(1) as f64) as f32)
}
