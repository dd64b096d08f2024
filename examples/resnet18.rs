//! ResNet-18 as `torchvision.models.resnet18` builds it, loaded from torchvision's weights with
//! one call that maps its module names (`conv1`, `layer1.0.bn1`, `layer2.0.downsample.0`, `fc`,
//! ...) onto the model's by structure and shape, then run on a batch of images.
//!
//! ```text
//! cargo run --release --example resnet18 -- --weights resnet18.safetensors --input x.safetensors --output logits.safetensors
//! ```
//!
//! The weights are a torchvision state_dict saved with its order in the metadata
//! (`state_dict_order`, see `cnn::io::load_mapped_with`), as `scripts/torchvision_resnet18.py`
//! writes them; the input a safetensors file holding `x`, a batch of 224x224 RGB images
//! [N, 3, 224, 224] in `f32`, preprocessed as the weights expect; the output gets `logits`
//! [N, 1000], the model's outputs before any softmax, as torchvision's model returns them. The
//! mapping is printed, then each image's top classes.

use std::collections::HashMap;
use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use cnn::io::{load_mapped_with, MapOptions};
use cnn::{cnn, Model};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

cnn! {
    /// ResNet-18 (He et al., 2015) as torchvision builds it: a 7x7 stride-2 stem and a 3x3
    /// stride-2 max pooling, four stages of two basic blocks (two 3x3 convolutions, each followed
    /// by batch normalisation, added to the block's input) of 64, 128, 256 and 512 channels, the
    /// first block of stages 2 to 4 halving the resolution with a stride-2 convolution and a
    /// projected shortcut, global average pooling and a linear classifier of 1000 classes whose
    /// outputs are logits. Its 62 tensors of parameters and 40 of buffers are torchvision's, in
    /// torchvision's order.
    pub struct ResNet18 <
        input(224x224x3)
        conv(7x7, 64, stride=2, pad=3, bias=false) batchnorm relu
        maxpool(3, stride=2, pad=1)
        residual(
            conv(3x3, 64, pad=1, bias=false) batchnorm relu
            conv(3x3, 64, pad=1, bias=false) batchnorm
        ) relu
        residual(
            conv(3x3, 64, pad=1, bias=false) batchnorm relu
            conv(3x3, 64, pad=1, bias=false) batchnorm
        ) relu
        residual(
            conv(3x3, 128, stride=2, pad=1, bias=false) batchnorm relu
            conv(3x3, 128, pad=1, bias=false) batchnorm,
            shortcut=conv(1x1, 128, stride=2, bias=false) batchnorm
        ) relu
        residual(
            conv(3x3, 128, pad=1, bias=false) batchnorm relu
            conv(3x3, 128, pad=1, bias=false) batchnorm
        ) relu
        residual(
            conv(3x3, 256, stride=2, pad=1, bias=false) batchnorm relu
            conv(3x3, 256, pad=1, bias=false) batchnorm,
            shortcut=conv(1x1, 256, stride=2, bias=false) batchnorm
        ) relu
        residual(
            conv(3x3, 256, pad=1, bias=false) batchnorm relu
            conv(3x3, 256, pad=1, bias=false) batchnorm
        ) relu
        residual(
            conv(3x3, 512, stride=2, pad=1, bias=false) batchnorm relu
            conv(3x3, 512, pad=1, bias=false) batchnorm,
            shortcut=conv(1x1, 512, stride=2, bias=false) batchnorm
        ) relu
        residual(
            conv(3x3, 512, pad=1, bias=false) batchnorm relu
            conv(3x3, 512, pad=1, bias=false) batchnorm
        ) relu
        avgpool(7) fc(1000)
    >
}

/// Run torchvision's ResNet-18 weights on a batch of images.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// torchvision's state_dict in safetensors, with its order under `state_dict_order`.
    #[arg(long)]
    weights: PathBuf,
    /// A safetensors file holding `x`, images [N, 3, 224, 224] in f32.
    #[arg(long)]
    input: PathBuf,
    /// Where to write the logits [N, 1000] (tensor `logits`).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Load what matches when the file matches the model only in part (another classifier).
    #[arg(long)]
    allow_partial: bool,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let mut model = ResNet18::new();
    let options = MapOptions { allow_partial: args.allow_partial, ..MapOptions::DEFAULT };
    let mapping = load_mapped_with(&mut model, &args.weights, options)?;
    println!("{mapping}");

    let bytes = std::fs::read(&args.input).map_err(|e| format!("{}: {e}", args.input.display()))?;
    let tensors = SafeTensors::deserialize(&bytes)?;
    let x = tensors.tensor("x").map_err(|e| format!("{}: tensor `x`: {e}", args.input.display()))?;
    let per_image = [3, 224, 224];
    if x.dtype() != Dtype::F32 || x.shape().len() != 4 || x.shape()[1..] != per_image {
        return Err(format!("`x` is {:?} {:?}, expected F32 [N, 3, 224, 224]", x.dtype(), x.shape()).into());
    }
    let n = x.shape()[0];
    let x: Vec<f32> = x.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();

    let start = Instant::now();
    let logits = model.forward(&x)?.to_vec();
    println!("{n} images in {:.2} s", start.elapsed().as_secs_f64());
    for (i, row) in logits.chunks(ResNet18::OUTPUT_LEN).enumerate() {
        let mut order: Vec<usize> = (0..row.len()).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        let top: Vec<String> = order[..5].iter().map(|&c| format!("{c}: {:.3}", row[c])).collect();
        println!("image {i}: top classes {}", top.join("  "));
    }

    if let Some(path) = &args.output {
        let data: Vec<u8> = logits.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = TensorView::new(Dtype::F32, vec![n, ResNet18::OUTPUT_LEN], &data)?;
        safetensors::serialize_to_file([("logits", view)], None::<HashMap<String, String>>, path)?;
        println!("logits written to {}", path.display());
    }
    Ok(())
}
