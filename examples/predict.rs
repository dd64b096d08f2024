//! Classifies image files with a trained LeNet-5, whose type is read from the model file
//! committed with the repository and whose preprocessing and class names are read from the
//! weights file it is given.
//!
//! ```text
//! cargo run --release --example predict -- digit.png other.jpg
//! cargo run --release --example predict -- --weights out/lenet5/lenet5.safetensors --invert photo.jpg
//! cargo run --release --example predict -- --maps out/maps digit.png   # and its feature maps
//! ```
//!
//! Each image (PNG or JPEG) is converted to the model's channels (grey here) and resized to its
//! input; then the steps the file's metadata names are applied: the range, the mean and the
//! standard deviation the model was trained with. MNIST digits are white on black: pass
//! `--invert` for dark ink on light paper.

use std::error::Error;
use std::path::PathBuf;

use clap::Parser;
use cnn::io::{load_weights, read_meta, Channels, Meta};
use cnn::{cnn, visual};
use cnn::{Network, Shape};
use image::imageops::FilterType;

cnn! {
    /// The LeNet-5 of the `lenet5` example, its layers read from the committed model file.
    pub struct LeNet5 = "models/lenet5.safetensors"
}

/// Classify images with a trained model.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Weights of this model, with their preprocessing in the metadata (as the `lenet5`
    /// example writes them).
    #[arg(long, default_value = "models/lenet5.safetensors")]
    weights: PathBuf,
    /// Invert grey levels first (for dark digits on a light background).
    #[arg(long)]
    invert: bool,
    /// Also write, for each image, the feature maps of every convolution as the model saw the
    /// image (`NAME-maps.png` in this directory; see `cnn::visual`).
    #[arg(long, value_name = "DIR")]
    maps: Option<PathBuf>,
    /// PNG or JPEG files.
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let mut model = LeNet5::new();
    load_weights(&mut model, &args.weights)?;
    let meta = read_meta(&args.weights)?;
    meta.check(LeNet5::INPUT.d, 10).map_err(|e| format!("{}: {e}", args.weights.display()))?;
    if meta.mean.is_empty() {
        eprintln!("note: {} names no standardisation; the pixels go in as [0, 1]", args.weights.display());
    }
    for path in &args.images {
        let x = input(path, &meta, args.invert)?;
        let x: &[f32; 784] = x.as_slice().try_into()?;
        let probs = model.probabilities(x);
        let best = model.classify(x);
        let name = |c: usize| meta.classes.get(c).cloned().unwrap_or_else(|| c.to_string());
        let listed: Vec<String> = probs.iter().enumerate().map(|(c, p)| format!("{}: {p:.3}", name(c))).collect();
        println!("{}: {} ({:.1} %)\n    {}", path.display(), name(best), 100.0 * probs[best], listed.join("  "));
        if let Some(dir) = &args.maps {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let stem = path.file_stem().map_or("image".into(), |s| s.to_string_lossy());
            let file = dir.join(format!("{stem}-maps.png"));
            let caption = format!("{}: {} ({:.1} %)", path.display(), name(best), 100.0 * probs[best]);
            let maps = visual::feature_maps(&mut model, x)?;
            visual::save_feature_maps(&file, x, LeNet5::INPUT, &maps, &caption)?;
            println!("    feature maps: {}", file.display());
        }
    }
    Ok(())
}

/// The image at `path` as the model's input: its channels, resized, in [0, 1] (inverted if
/// asked), then prepared as `meta` says.
fn input(path: &PathBuf, meta: &Meta, invert: bool) -> Result<Vec<f32>, Box<dyn Error>> {
    let Shape { w, h, d, .. } = LeNet5::INPUT;
    let image = image::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let image = image.resize_exact(w as u32, h as u32, FilterType::Triangle);
    let channels = meta.channels.unwrap_or(if d == 1 { Channels::Grey } else { Channels::Rgb });
    // Interleaved pixels in the file's channel order.
    let pixels: Vec<u8> = match channels {
        Channels::Grey => image.to_luma8().into_raw(),
        Channels::Rgb => image.to_rgb8().into_raw(),
        Channels::Bgr => image.to_rgb8().pixels().flat_map(|p| [p[2], p[1], p[0]]).collect(),
    };
    // Channel by channel, as the model reads them.
    let mut x = vec![0.0f32; w * h * d];
    for (i, &p) in pixels.iter().enumerate() {
        let level = p as f32 / 255.0;
        x[(i % d) * w * h + i / d] = if invert { 1.0 - level } else { level };
    }
    meta.prepare(&mut x, d);
    Ok(x)
}
