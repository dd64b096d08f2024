//! Trains the README's LeNet-5 on real MNIST digits and leaves behind files a user can use.
//!
//! ```text
//! cargo run --release --example lenet5                      # the 8,000 / 2,000 digits in data/mnist
//! cargo run --release --example lenet5 -- --data ~/mnist    # the full MNIST, or Fashion-MNIST
//! cargo run --release --example lenet5 -- --help
//!
//! # Data-parallel on 2 processes (Debian: libopenmpi-dev openmpi-bin libclang-dev)
//! cargo build --release --features mpi --example lenet5
//! mpirun -np 2 target/release/examples/lenet5 --threads 1
//! ```
//!
//! Mini-batch SGD with momentum and a cosine learning-rate decay, with random shifts, small
//! rotations and scalings of the training digits. Pixels are scaled to [0, 1] and standardised
//! with MNIST's mean and standard deviation ([`MEAN`], [`STD`]), as torchvision's recipe does;
//! `predict` and the PyTorch snippet in the README do the same. Writes to `--out`:
//! `lenet5.safetensors` (the weights, loadable into the equivalent PyTorch model, with the
//! preprocessing and class names in its metadata), `lenet5.onnx` (the same for ONNX runtimes),
//! `checkpoint.safetensors` (after every epoch; `--resume` continues from it), `curves.png`,
//! `filters.png`, `misclassified.png`, and the feature visualisation of [`cnn::visual`]: the
//! feature maps of three test digits (`maps-0.png` to `maps-2.png`) and the patches of the test
//! digits that excite each filter of the two convolutions most (`patches-conv1.png`,
//! `patches-conv2.png`).

#[path = "../common/epoch.rs"]
mod epoch;
mod plots;
#[path = "../common/ranks.rs"]
mod ranks;

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use cnn::augment::{Compose, RotateScale, Shift};
use cnn::data::{load_mnist, Batches, Dataset};
use cnn::io::{load_checkpoint, save_checkpoint, save_model, Channels, Meta, Progress};
use cnn::schedule::Cosine;
use cnn::{cnn, visual, Model, Network, Sgd};
use ranks::Ranks;

cnn! {
    /// LeNet-style classifier for 28x28 grey digits.
    pub struct LeNet5 <
        input(28x28x1)
        conv(5x5, 6, pad=2) relu pool(2)
        conv(5x5, 16) relu pool(2)
        fc(120) relu fc(84) relu fc(10) softmax
    >
}

/// Mean of MNIST's training pixels in [0, 1].
pub const MEAN: f32 = 0.1307;
/// Standard deviation of MNIST's training pixels in [0, 1].
pub const STD: f32 = 0.3081;

/// Train LeNet-5 on MNIST-format digits.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Passes over the training set.
    #[arg(long, default_value_t = 20)]
    epochs: u64,
    /// Samples per mini-batch.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Peak learning rate (decays to 0 along a cosine).
    #[arg(long, default_value_t = 0.02)]
    lr: f32,
    /// Momentum of SGD.
    #[arg(long, default_value_t = 0.9)]
    momentum: f32,
    /// Seed of the initialisation, the data order and the augmentation.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Directory of MNIST IDX files (gzip or not).
    #[arg(long, default_value = "data/mnist")]
    data: PathBuf,
    /// Directory for the weights, the checkpoint and the pictures.
    #[arg(long, default_value = "out/lenet5")]
    out: PathBuf,
    /// Train on the digits as they are, without random shifts, rotations and scalings.
    #[arg(long)]
    no_augment: bool,
    /// Continue from `checkpoint.safetensors` in the output directory.
    #[arg(long)]
    resume: bool,
}

/// Standardises pixels in [0, 1] with MNIST's statistics.
fn standardise(values: &mut [f32]) {
    values.iter_mut().for_each(|v| *v = (*v - MEAN) / STD);
}

fn main() -> ExitCode {
    let args = Args::parse();
    ranks::main(|ranks| run(&args, ranks))
}

fn run(args: &Args, ranks: &Ranks) -> Result<(), Box<dyn Error>> {
    let root = ranks.is_root();
    if args.batch_size == 0 {
        return Err("--batch-size must be at least 1".into());
    }
    if args.threads > 0 {
        rayon::ThreadPoolBuilder::new().num_threads(args.threads).build_global()?;
    }
    let (train, mut test) = load_mnist(&args.data)?;
    train.check_fits(LeNet5::INPUT, LeNet5::OUTPUT_LEN)?;
    test.check_fits(LeNet5::INPUT, LeNet5::OUTPUT_LEN)?;
    standardise(&mut test.images);
    let checkpoint = args.out.join("checkpoint.safetensors");
    if root {
        std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
        println!("{}", LeNet5::SUMMARY);
        println!(
            "{} training and {} test digits from {}, {} threads, {}",
            train.len(),
            test.len(),
            args.data.display(),
            rayon::current_num_threads(),
            ranks.describe(ranks::Scheme::default())
        );
    }

    let mut model = LeNet5::with_seed(args.seed);
    let mut opt = Sgd::new(args.lr, args.momentum)?;
    let mut progress = Progress { epoch: 0, step: 0, seed: args.seed };
    let mut history = Vec::new();
    if args.resume {
        progress = load_checkpoint(&mut model, &mut opt, &checkpoint)?;
        if root {
            println!("resumed from {} after epoch {}", checkpoint.display(), progress.epoch);
        }
    }
    let augment = Compose::new().then(Shift { max: 2 }).then(RotateScale { max_degrees: 10.0, max_scale: 0.1 });
    let batches = Batches::new(&train, args.batch_size, progress.seed)?;
    let mut batches = if args.no_augment { batches } else { batches.augment(&augment) }.standardise(&[MEAN], &[STD])?;
    let total_steps = args.epochs * batches.len() as u64;
    let schedule = Cosine::new(args.lr, 0.0, total_steps.max(1) as usize)?;
    let mut trainer = ranks.trainer(ranks::Scheme::default());
    let started = Instant::now();
    while progress.epoch < args.epochs {
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
        progress.epoch += 1;
        if !root {
            continue;
        }
        let eval = model.evaluate(&test.images, &test.labels, 100)?;
        println!(
            "epoch {:>2}/{}  train loss {loss:.4}  test loss {:.4}  test accuracy {:.2} %  ({:.1} s)",
            progress.epoch,
            args.epochs,
            eval.loss,
            100.0 * eval.accuracy,
            started.elapsed().as_secs_f64()
        );
        history.push((progress.epoch, loss, eval.accuracy));
        save_checkpoint(&model, &opt, progress, &checkpoint)?;
    }
    if !root {
        return Ok(());
    }

    // In batches, so that the workspace stays sized for a hundred samples.
    let mut predictions = vec![0; test.labels.len()];
    for (x, out) in test.images.chunks(100 * LeNet5::INPUT_LEN).zip(predictions.chunks_mut(100)) {
        model.predict_into(x, out)?;
    }
    let confusion = confusion(&predictions, &test.labels);
    print_confusion(&confusion);
    let correct = predictions.iter().zip(&test.labels).filter(|(p, l)| p == l).count();
    println!("test accuracy {:.2} % ({correct} of {})", 100.0 * correct as f64 / test.len() as f64, test.len());

    let weights = args.out.join("lenet5.safetensors");
    save_model(&model, &meta(), &weights)?;
    cnn::onnx::save(&model, &meta(), &args.out.join("lenet5.onnx"))?;
    if !history.is_empty() {
        plots::curves(&args.out.join("curves.png"), &history)?;
    }
    let filters = model.layer_params(1).ok_or("LeNet5 has a first convolution")?;
    plots::filters(&args.out.join("filters.png"), &filters[..6 * 25], 6, 5)?;
    pictures(&mut model, &test, &args.out)?;
    let wrong: Vec<(usize, usize, usize)> = (0..test.len())
        .filter(|&i| predictions[i] != test.labels[i])
        .map(|i| (i, predictions[i], test.labels[i]))
        .collect();
    plots::misclassified(&args.out.join("misclassified.png"), &test, &wrong, MEAN, STD)?;
    println!(
        "wrote {} (and lenet5.onnx) and its pictures (curves, filters, misclassified, maps, patches) to {}",
        weights.display(),
        args.out.display()
    );
    Ok(())
}

/// Feature visualisation: the feature maps of every convolution for the first three test
/// digits (`maps-N.png`), and for each filter of the two convolutions the test digits' patches
/// that excite it most (`patches-conv1.png`, `patches-conv2.png`).
fn pictures(model: &mut LeNet5, test: &Dataset, out: &Path) -> Result<(), Box<dyn Error>> {
    for i in 0..test.len().min(3) {
        let (x, label) = test.sample(i).ok_or("a test digit")?;
        let probs = model.forward(x)?;
        let best = LeNet5::LOSS.classify(probs);
        let caption = format!("test digit {i} (a {label}): classified as {best}, p = {:.3}", probs[best]);
        let maps = visual::feature_maps(model, x)?;
        visual::save_feature_maps(&out.join(format!("maps-{i}.png")), x, LeNet5::INPUT, &maps, &caption)?;
    }
    for (k, &row) in visual::convolutions::<LeNet5>().iter().take(2).enumerate() {
        let patches = visual::strongest_patches(model, &test.images, row, 8, 100)?;
        let caption = format!(
            "{}: the {} test digits' patches that excite each filter most (pixels standardised)",
            LeNet5::LAYERS[row].layer,
            test.len()
        );
        visual::save_patches(
            &out.join(format!("patches-conv{}.png", k + 1)),
            &test.images,
            LeNet5::INPUT,
            &patches,
            &caption,
        )?;
    }
    Ok(())
}

/// How the digits were prepared, and the classes' names, saved with the weights.
fn meta() -> Meta {
    Meta {
        channels: Some(Channels::Grey),
        range: Some([0.0, 1.0]),
        mean: vec![MEAN],
        std: vec![STD],
        classes: (0..10).map(|d| d.to_string()).collect(),
    }
}

/// `matrix[true][predicted]` counts.
fn confusion(predictions: &[usize], labels: &[usize]) -> [[usize; 10]; 10] {
    let mut m = [[0; 10]; 10];
    for (&p, &l) in predictions.iter().zip(labels) {
        m[l][p] += 1;
    }
    m
}

fn print_confusion(m: &[[usize; 10]; 10]) {
    println!("confusion matrix (rows: true digit, columns: predicted)");
    println!("      {}", (0..10).map(|d| format!("{d:>5}")).collect::<String>());
    for (digit, row) in m.iter().enumerate() {
        println!("  {digit:>2}  {}", row.iter().map(|c| format!("{c:>5}")).collect::<String>());
    }
}
