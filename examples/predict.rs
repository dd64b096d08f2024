//! Classifies image files with the weights the `lenet5` example saved.
//!
//! ```text
//! cargo run --release --example predict -- digit.png other.jpg
//! cargo run --release --example predict -- --weights out/lenet5/lenet5.safetensors --invert photo.jpg
//! ```
//!
//! Each image (PNG or JPEG) is converted to grey, resized to 28x28, scaled to [0, 1] and
//! standardised as in training. MNIST digits are white on black: pass `--invert` for dark ink
//! on light paper.

use std::error::Error;
use std::path::PathBuf;

use clap::Parser;
use cnn::cnn;
use cnn::io::load_weights;
use image::imageops::FilterType;

cnn! {
    /// LeNet-style classifier for 28x28 grey digits (the same model as the `lenet5` example).
    pub struct LeNet5 <
        input(28x28x1)
        conv(5x5, 6, pad=2) relu pool(2)
        conv(5x5, 16) relu pool(2)
        fc(120) relu fc(84) relu fc(10) softmax
    >
}

/// MNIST's pixel mean and standard deviation, as the `lenet5` example standardises with.
const MEAN: f32 = 0.1307;
const STD: f32 = 0.3081;

/// Classify digit images with trained LeNet-5 weights.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Weights written by the `lenet5` example (or by PyTorch, in the same layout).
    #[arg(long, default_value = "out/lenet5/lenet5.safetensors")]
    weights: PathBuf,
    /// Invert grey levels first (for dark digits on a light background).
    #[arg(long)]
    invert: bool,
    /// PNG or JPEG files.
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let mut model = LeNet5::new();
    load_weights(&mut model, &args.weights)?;
    for path in &args.images {
        let image = image::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let grey = image.to_luma8();
        let small = image::imageops::resize(&grey, 28, 28, FilterType::Triangle);
        let mut x = [0.0f32; 784];
        for (v, p) in x.iter_mut().zip(small.pixels()) {
            let level = p.0[0] as f32 / 255.0;
            let level = if args.invert { 1.0 - level } else { level };
            *v = (level - MEAN) / STD;
        }
        let probs = model.probabilities(&x);
        let best = model.classify(&x);
        let listed: Vec<String> = probs.iter().enumerate().map(|(d, p)| format!("{d}: {p:.3}")).collect();
        println!("{}: {best} ({:.1} %)\n    {}", path.display(), 100.0 * probs[best], listed.join("  "));
    }
    Ok(())
}
