//! Trains a small VGG-style CNN on the full Fashion-MNIST (60,000 training and 10,000 test images
//! of clothes in 10 classes).
//!
//! ```text
//! sudo apt-get install dataset-fashion-mnist      # Debian and Ubuntu: the four IDX files
//! cargo run --release --example fashion
//! cargo run --release --example fashion -- --data DIR --epochs 12 --seed 2
//!
//! # Data-parallel on 4 processes (Debian: libopenmpi-dev openmpi-bin libclang-dev)
//! cargo build --release --features mpi --example fashion
//! mpirun -np 4 target/release/examples/fashion --threads 1
//! ```
//!
//! Mini-batch SGD with momentum, weight decay and a cosine learning-rate decay; each training
//! image is shifted by up to 2 pixels (as torchvision's `RandomCrop(28, padding=2)`). Pixels are
//! scaled to [0, 1] and standardised with the training set's mean and standard deviation.
//! [`cnn::data::Batches`] shuffles, augments and standardises each batch. After every epoch the
//! model and optimizer are saved to `--out` (`checkpoint.safetensors`; `--resume` continues from
//! it), and at the end the weights alone (`fashion.safetensors`), loadable into the network that
//! `fashion_pytorch.py` (the model's `PYTORCH` text, also written there) builds.

#[path = "../common/epoch.rs"]
mod epoch;
#[path = "../common/ranks.rs"]
mod ranks;

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use cnn::augment::Shift;
use cnn::data::{load_mnist, Batches, Dataset, LastBatch};
use cnn::io::{load_checkpoint, save_checkpoint, save_weights, Progress};
use cnn::schedule::Cosine;
use cnn::{cnn, Model, Network, Sgd};
use ranks::Ranks;

cnn! {
    /// Two stages of two 3x3 convolutions with batch normalisation, each stage pooled, and a
    /// classifier with dropout: 38 MFLOP per image forward.
    pub struct FashionNet <
        input(28x28x1)
        conv(3x3, 32, pad=1, bias=false) batchnorm relu
        conv(3x3, 32, pad=1, bias=false) batchnorm relu maxpool(2)
        conv(3x3, 64, pad=1, bias=false) batchnorm relu
        conv(3x3, 64, pad=1, bias=false) batchnorm relu maxpool(2)
        fc(256) relu dropout(0.3)
        fc(10) softmax
    >
}

/// Mean of Fashion-MNIST's training pixels in [0, 1].
pub const MEAN: f32 = 0.2860;
/// Standard deviation of Fashion-MNIST's training pixels in [0, 1].
pub const STD: f32 = 0.3530;

/// Where Debian's `dataset-fashion-mnist` puts the files.
const DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The four files of an MNIST-format set.
const FILES: [&str; 4] =
    ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

/// Train a CNN on Fashion-MNIST.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Passes over the training set.
    #[arg(long, default_value_t = 10)]
    epochs: u64,
    /// Samples per mini-batch.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Peak learning rate (decays to 0 along a cosine).
    #[arg(long, default_value_t = 0.05)]
    lr: f32,
    /// Momentum of SGD.
    #[arg(long, default_value_t = 0.9)]
    momentum: f32,
    /// L2 weight decay of SGD.
    #[arg(long, default_value_t = 5e-4)]
    weight_decay: f32,
    /// Seed of the initialisation, the data order, the augmentation and dropout.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Directory of the four Fashion-MNIST IDX files (gzip or not).
    #[arg(long, default_value = DEBIAN_DIR)]
    data: PathBuf,
    /// Directory for the weights and the checkpoint.
    #[arg(long, default_value = "out/fashion")]
    out: PathBuf,
    /// Continue from `checkpoint.safetensors` in the output directory.
    #[arg(long)]
    resume: bool,
    /// Under MPI: add the ranks' gradients with MPI's all-reduce, one pass per rank (faster;
    /// the model then depends on the number of ranks).
    #[arg(long)]
    fast_reduction: bool,
    /// Under MPI: batch normalisation over each pass's own samples (a group of the batch, or a
    /// rank's share with `--fast-reduction`) instead of the whole batch; no exchange during the
    /// passes.
    #[arg(long)]
    local_batch_stats: bool,
}

impl Args {
    /// How the ranks train together.
    fn scheme(&self) -> ranks::Scheme {
        ranks::Scheme { fast: self.fast_reduction, local_batch_stats: self.local_batch_stats }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    ranks::main(|ranks| run(&args, ranks))
}

/// The files missing from `dir` (each may be gzip-compressed, with `.gz`).
fn missing(dir: &Path) -> Vec<&'static str> {
    FILES.into_iter().filter(|f| !dir.join(f).exists() && !dir.join(format!("{f}.gz")).exists()).collect()
}

fn run(args: &Args, ranks: &Ranks) -> Result<(), Box<dyn Error>> {
    let root = ranks.is_root();
    if args.batch_size == 0 {
        return Err("--batch-size must be at least 1".into());
    }
    let absent = missing(&args.data);
    if !absent.is_empty() {
        return Err(format!(
            "Fashion-MNIST is not in {} ({} missing). Install it with\n\n    sudo apt-get install dataset-fashion-mnist\n\n\
             (Debian and Ubuntu; the files go to {DEBIAN_DIR}), or pass --data DIR with the four IDX files.",
            args.data.display(),
            absent.join(", ")
        )
        .into());
    }
    if args.threads > 0 {
        rayon::ThreadPoolBuilder::new().num_threads(args.threads).build_global()?;
    }
    let (train, mut test) = load_mnist(&args.data)?;
    train.check_fits(FashionNet::INPUT, FashionNet::OUTPUT_LEN)?;
    test.check_fits(FashionNet::INPUT, FashionNet::OUTPUT_LEN)?;
    test.images.iter_mut().for_each(|v| *v = (*v - MEAN) / STD);
    let checkpoint = args.out.join("checkpoint.safetensors");
    if root {
        std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
        // The same network in PyTorch, for `scripts/fashion_torch.py`.
        let torch = args.out.join("fashion_pytorch.py");
        std::fs::write(&torch, FashionNet::PYTORCH).map_err(|e| format!("{}: {e}", torch.display()))?;
        println!("{}", FashionNet::SUMMARY);
        println!(
            "{} training and {} test images from {}, {} threads, {}",
            train.len(),
            test.len(),
            args.data.display(),
            rayon::current_num_threads(),
            ranks.describe(args.scheme())
        );
    }

    let mut model = FashionNet::with_seed(args.seed);
    let mut opt = Sgd::new(args.lr, args.momentum)?.with_weight_decay(args.weight_decay)?;
    let mut progress = Progress { epoch: 0, step: 0, seed: args.seed };
    if args.resume {
        progress = load_checkpoint(&mut model, &mut opt, &checkpoint)?;
        if root {
            println!("resumed from {} after epoch {}", checkpoint.display(), progress.epoch);
        }
    }
    let shift = Shift { max: 2 };
    let mut batches = Batches::new(&train, args.batch_size, progress.seed)?
        .last(LastBatch::Keep)
        .augment(&shift)
        .standardise(&[MEAN], &[STD])?;
    let total_steps = args.epochs * batches.len() as u64;
    let schedule = Cosine::new(args.lr, 0.0, total_steps.max(1) as usize)?;
    let mut trainer = ranks.trainer(args.scheme());
    let (started, mut training) = (Instant::now(), Duration::ZERO);
    while progress.epoch < args.epochs {
        let epoch_started = Instant::now();
        let loss = epoch::train_epoch(
            &mut trainer,
            args.epochs,
            &mut batches,
            &mut model,
            &mut opt,
            &mut progress,
            &schedule,
            &checkpoint,
        )?;
        training += epoch_started.elapsed();
        progress.epoch += 1;
        if !root {
            continue;
        }
        let eval = model.evaluate(&test.images, &test.labels, 250)?;
        println!(
            "epoch {:>2}/{}  train loss {loss:.4}  test loss {:.4}  test accuracy {:.2} %  ({:.1} s)",
            progress.epoch,
            args.epochs,
            eval.loss,
            100.0 * eval.accuracy,
            started.elapsed().as_secs_f64()
        );
        save_checkpoint(&model, &opt, progress, &checkpoint)?;
    }
    if !root {
        return Ok(());
    }
    let accuracy = per_class(&mut model, &test)?;
    println!(
        "test accuracy {:.2} % after {} epochs: {:.1} s of training ({:.1} s with the evaluations)",
        100.0 * accuracy,
        progress.epoch,
        training.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let weights = args.out.join("fashion.safetensors");
    save_weights(&model, &weights)?;
    println!("wrote {}", weights.display());
    Ok(())
}

/// Prints the test accuracy of each class; returns the accuracy over all of them.
fn per_class(model: &mut FashionNet, test: &Dataset) -> Result<f64, Box<dyn Error>> {
    const NAMES: [&str; 10] =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];
    let mut predictions = vec![0; test.len()];
    for (x, out) in test.images.chunks(250 * FashionNet::INPUT_LEN).zip(predictions.chunks_mut(250)) {
        model.predict_into(x, out)?;
    }
    let (mut right, mut all) = ([0usize; 10], [0usize; 10]);
    for (&p, &l) in predictions.iter().zip(&test.labels) {
        all[l] += 1;
        right[l] += usize::from(p == l);
    }
    for (c, name) in NAMES.iter().enumerate() {
        println!("  {name:<12} {:6.2} %", 100.0 * right[c] as f64 / all[c].max(1) as f64);
    }
    Ok(right.iter().sum::<usize>() as f64 / test.len().max(1) as f64)
}
