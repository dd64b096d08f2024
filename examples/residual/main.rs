//! The experiment behind residual networks (He et al., 2015, figure 1 and section 4.2). The
//! paper's finding: stacking more layers on a plain network makes its *training* loss worse, not
//! better (a degradation that is not overfitting), and adding shortcuts around each pair of
//! layers removes it. This example measures that here, on Fashion-MNIST, and reports what it
//! finds; the README shows one run.
//!
//! ```text
//! sudo apt-get install dataset-fashion-mnist      # Debian and Ubuntu: the four IDX files
//! cargo run --release --example residual                       # about 25 min on 2 cores
//! cargo run --release --example residual -- --train 5000 --epochs 1   # a quick look
//! cargo run --release --example residual -- --data data/mnist          # the embedded digits
//! ```
//!
//! Eight networks ([`models`]): plain and residual, 20 and 56 layers, without and with batch
//! normalisation, trained one after the other the same way on the same images: the same
//! initialisation seed (PyTorch's default initialisation), the same shuffled batches, SGD with
//! momentum, weight decay and the same cosine learning-rate decay. Nothing is tuned per network.
//! A training step that would make the parameters not finite is refused by the library; such a
//! network is reported as diverged at that step and its curve stops there.
//!
//! Prints each network's training loss and error (over the training images, in evaluation mode,
//! after training) and test error, and writes to `--out`: `curves.png` (the training loss of
//! every network, one panel without and one with batch normalisation) and `curves.csv` (the
//! points drawn).

mod models;
mod plot;

use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use cnn::data::{load_mnist, Batches, Dataset};
use cnn::schedule::Cosine;
use cnn::{Error as CnnError, Model, Network, Schedule, Sgd};
use models::{Plain20, Plain20Bn, Plain56, Plain56Bn, Res20, Res20Bn, Res56, Res56Bn};

/// Train plain and residual networks of equal depth and compare their training loss.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Directory of MNIST-format IDX files (gzip or not): Fashion-MNIST by default.
    #[arg(long, default_value = "/usr/share/datasets/fashion-mnist")]
    data: PathBuf,
    /// Training images used (the first ones of the training set; 0: all).
    #[arg(long, default_value_t = 20_000)]
    train: usize,
    /// Passes over those images.
    #[arg(long, default_value_t = 3)]
    epochs: u64,
    /// Samples per mini-batch.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Peak learning rate (decays to 0 along a cosine).
    #[arg(long, default_value_t = 0.05)]
    lr: f32,
    /// Momentum of SGD.
    #[arg(long, default_value_t = 0.9)]
    momentum: f32,
    /// L2 weight decay of SGD (the paper's 1e-4).
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f32,
    /// Seed of every network's initialisation and of the batches' order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Points of the training-loss curve per epoch (each the mean loss of its steps).
    #[arg(long, default_value_t = 10)]
    points: usize,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Directory for the pictures.
    #[arg(long, default_value = "out/residual")]
    out: PathBuf,
}

/// What one network's training gave.
pub struct Run {
    /// Its name, such as `plain-20`.
    pub name: &'static str,
    /// Whether it has batch normalisation.
    pub bn: bool,
    /// Whether it has shortcuts.
    pub residual: bool,
    /// Layers with weights on the main path.
    pub depth: usize,
    /// `(epoch, mean training loss)` of each stretch of steps.
    pub curve: Vec<(f32, f32)>,
    /// The step a diverging update was refused at, if one was.
    pub diverged: Option<u64>,
    /// Loss and error over the training images and error over the test images, in evaluation
    /// mode, after training.
    pub train_loss: f32,
    /// Fraction of training images misclassified.
    pub train_error: f32,
    /// Fraction of test images misclassified.
    pub test_error: f32,
    /// Parameters.
    pub params: usize,
    /// Seconds of training.
    pub seconds: f64,
}

/// The data and the recipe every network is trained with.
struct Setup<'a> {
    args: &'a Args,
    train: Dataset,
    test: Dataset,
    mean: f32,
    std: f32,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    if args.batch_size == 0 || args.points == 0 || args.epochs == 0 {
        return Err("--batch-size, --points and --epochs must be at least 1".into());
    }
    if args.threads > 0 {
        rayon::ThreadPoolBuilder::new().num_threads(args.threads).build_global()?;
    }
    let (train, test) = load_mnist(&args.data).map_err(|e| {
        format!("{e}\n(install Fashion-MNIST with `sudo apt-get install dataset-fashion-mnist`, or pass --data DIR)")
    })?;
    let train = if args.train == 0 { train } else { train.take(args.train) };
    train.check_fits(Plain20::INPUT, Plain20::OUTPUT_LEN)?;
    // Standardised with the statistics of the images trained on.
    let n = train.images.len() as f64;
    let mean = train.images.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = train.images.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let (mean, std) = (mean as f32, var.sqrt().max(1e-6) as f32);
    let mut setup = Setup { args: &args, train, test, mean, std };
    setup.test.images.iter_mut().for_each(|v| *v = (*v - mean) / std);
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    println!(
        "{} training and {} test images from {}, {} epochs, batch {}, lr {} (cosine), momentum {}, weight decay {}, seed {}, {} threads",
        setup.train.len(),
        setup.test.len(),
        args.data.display(),
        args.epochs,
        args.batch_size,
        args.lr,
        args.momentum,
        args.weight_decay,
        args.seed,
        rayon::current_num_threads()
    );

    let runs = vec![
        train_one::<Plain20>(&setup, "plain-20", 20, false, false)?,
        train_one::<Plain56>(&setup, "plain-56", 56, false, false)?,
        train_one::<Res20>(&setup, "residual-20", 20, true, false)?,
        train_one::<Res56>(&setup, "residual-56", 56, true, false)?,
        train_one::<Plain20Bn>(&setup, "plain-20", 20, false, true)?,
        train_one::<Plain56Bn>(&setup, "plain-56", 56, false, true)?,
        train_one::<Res20Bn>(&setup, "residual-20", 20, true, true)?,
        train_one::<Res56Bn>(&setup, "residual-56", 56, true, true)?,
    ];

    println!("\n{}", table(&runs));
    for bn in [false, true] {
        let find = |name: &str| runs.iter().find(|r| r.bn == bn && r.name == name);
        let (Some(p20), Some(p56), Some(r56)) = (find("plain-20"), find("plain-56"), find("residual-56")) else {
            continue;
        };
        let label = if bn { "with batch normalisation" } else { "without batch normalisation" };
        let verb = |a: f32, b: f32| match a - b {
            d if d.abs() < 5e-4 => "the same as",
            d if d < 0.0 => "lower than",
            _ => "higher than",
        };
        println!(
            "{label}: plain-56's final training loss is {} plain-20's ({:.4} vs {:.4}); residual-56's is {} plain-56's ({:.4} vs {:.4})",
            verb(p56.train_loss, p20.train_loss),
            p56.train_loss,
            p20.train_loss,
            verb(r56.train_loss, p56.train_loss),
            r56.train_loss,
            p56.train_loss
        );
    }
    let png = args.out.join("curves.png");
    plot::curves(&png, &runs, args.epochs)?;
    let csv = args.out.join("curves.csv");
    let mut text = String::from("network,batchnorm,epoch,training_loss\n");
    for r in &runs {
        for (e, l) in &r.curve {
            writeln!(text, "{},{},{e},{l}", r.name, r.bn)?;
        }
    }
    std::fs::write(&csv, text).map_err(|e| format!("{}: {e}", csv.display()))?;
    println!("wrote {} and {}", png.display(), csv.display());
    Ok(())
}

/// Trains a fresh `M` with the setup's recipe and measures it.
fn train_one<M: Model + Default>(
    setup: &Setup<'_>,
    name: &'static str,
    depth: usize,
    residual: bool,
    bn: bool,
) -> Result<Run, Box<dyn Error>> {
    let args = setup.args;
    let mut model = M::default();
    model.init(args.seed);
    let mut opt = Sgd::new(args.lr, args.momentum)?.with_weight_decay(args.weight_decay)?;
    let mut batches =
        Batches::new(&setup.train, args.batch_size, args.seed)?.standardise(&[setup.mean], &[setup.std])?;
    let per_epoch = batches.len();
    let total = args.epochs as usize * per_epoch;
    let schedule = Cosine::new(args.lr, 0.0, total)?;
    let stretch = per_epoch.div_ceil(args.points).max(1);
    let (mut curve, mut diverged, mut step) = (Vec::new(), None, 0usize);
    let (mut sum, mut count) = (0.0f64, 0usize);
    let started = Instant::now();
    'epochs: for epoch in 0..args.epochs {
        batches.start_epoch(epoch)?;
        while let Some(batch) = batches.next_batch()? {
            schedule.apply(&mut opt, step)?;
            match model.train_step(&mut opt, batch.images, batch.labels) {
                Ok(loss) => {
                    sum += loss as f64;
                    count += 1;
                }
                Err(CnnError::Diverged { .. }) => {
                    diverged = Some(step as u64);
                    break 'epochs;
                }
                Err(e) => return Err(e.into()),
            }
            step += 1;
            if count == stretch || (step % per_epoch == 0 && count > 0) {
                curve.push((step as f32 / per_epoch as f32, (sum / count as f64) as f32));
                (sum, count) = (0.0, 0);
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let train_eval =
        model.evaluate(&standardised(&setup.train.images, setup.mean, setup.std), &setup.train.labels, 250)?;
    let test_eval = model.evaluate(&setup.test.images, &setup.test.labels, 250)?;
    let run = Run {
        name,
        bn,
        residual,
        depth,
        curve,
        diverged,
        train_loss: train_eval.loss,
        train_error: 1.0 - train_eval.accuracy,
        test_error: 1.0 - test_eval.accuracy,
        params: M::PARAM_COUNT,
        seconds,
    };
    println!(
        "{:<12} {:<8} training loss {:.4}, training error {:>5.2} %, test error {:>5.2} %{}  ({:.0} s)",
        run.name,
        if bn { "with BN" } else { "no BN" },
        run.train_loss,
        100.0 * run.train_error,
        100.0 * run.test_error,
        run.diverged.map_or(String::new(), |s| format!(", diverged at step {s}")),
        seconds
    );
    Ok(run)
}

/// `images` standardised with `mean` and `std`.
fn standardised(images: &[f32], mean: f32, std: f32) -> Vec<f32> {
    images.iter().map(|v| (v - mean) / std).collect()
}

/// The results as a Markdown table.
fn table(runs: &[Run]) -> String {
    let mut t = String::from(
        "| network | batch norm | parameters | final training loss | training error | test error | diverged |\n|---|---|---|---|---|---|---|\n",
    );
    for r in runs {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {:.4} | {:.2} % | {:.2} % | {} |",
            r.name,
            if r.bn { "yes" } else { "no" },
            r.params,
            r.train_loss,
            100.0 * r.train_error,
            100.0 * r.test_error,
            r.diverged.map_or("no".to_string(), |s| format!("at step {s}"))
        );
    }
    t
}
