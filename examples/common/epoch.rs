//! The training epoch of the examples that train on files: batches from [`Batches`], the
//! learning rate from a schedule, the steps of a [`Trainer`] (one process or MPI ranks), a
//! progress bar on the process that prints.

use std::error::Error;
use std::path::Path;

use cnn::data::Batches;
use cnn::io::Progress;
use cnn::{Model, Optimizer, Schedule};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::ranks::Trainer;

/// Epoch `progress.epoch` (of `epochs`): one pass over its batches, counting steps in
/// `progress`; returns the mean loss. An error (a diverging step is one, and is undone) says
/// that nothing was saved and what `checkpoint` still holds, and leaves the bar where it stopped.
#[allow(clippy::too_many_arguments)]
pub fn train_epoch<M: Model, O: Optimizer>(
    trainer: &mut Trainer<'_>,
    epochs: u64,
    batches: &mut Batches<'_>,
    model: &mut M,
    opt: &mut O,
    progress: &mut Progress,
    schedule: &dyn Schedule,
    checkpoint: &Path,
) -> Result<f32, Box<dyn Error>> {
    let epoch = progress.epoch;
    let mut run = || -> Result<f32, Box<dyn Error>> {
        batches.start_epoch(progress.epoch)?;
        let bar = ProgressBar::new(batches.samples() as u64);
        if !trainer.is_root() {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_style(ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} {per_sec} ETA {eta}")?);
        bar.set_prefix(format!("{}/{epochs}", progress.epoch + 1));
        let (mut total, mut count) = (0.0f64, 0usize);
        while let Some(batch) = batches.next_batch()? {
            schedule.apply(opt, progress.step as usize)?;
            let loss = trainer.step(model, opt, batch.images, batch.labels).inspect_err(|_| bar.abandon())?;
            progress.step += 1;
            total += loss as f64 * batch.labels.len() as f64;
            count += batch.labels.len();
            bar.inc(batch.labels.len() as u64);
            bar.set_message(format!("loss {:.4}", total / count as f64));
        }
        bar.finish_and_clear();
        Ok((total / count.max(1) as f64) as f32)
    };
    run().map_err(|e| {
        // Nothing is saved, so the files of the last good epoch stay.
        let kept = if checkpoint.exists() {
            format!("{} still holds the last good epoch", checkpoint.display())
        } else {
            "no checkpoint was written".to_string()
        };
        format!("{e}\nstopped in epoch {}, nothing saved: {kept}", epoch + 1).into()
    })
}
