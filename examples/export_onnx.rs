//! Writes each of the course's networks as an ONNX file, with a random batch and the outputs the
//! model gives it, for `scripts/check_onnx.py` to compare with ONNX Runtime's:
//!
//! ```text
//! cargo run --release --example export_onnx -- out/onnx
//! python scripts/check_onnx.py out/onnx
//! ```
//!
//! For each model `NAME`: `NAME.onnx`, `NAME.input.bin` and `NAME.output.bin` (raw `f32`,
//! little-endian) and `NAME.json`, the shapes of the input and of the output. Each model is
//! seeded and trained for a few steps on random data first, so that batch normalisation's
//! running statistics are not the identity's.

#[path = "zoo/models.rs"]
mod models;

use std::error::Error;
use std::fs;
use std::path::Path;

use cnn::io::Meta;
use cnn::{Model, Network, Sgd};
use models::{AlexNet32, GoogLeNetMini, LeNet5, Mlp, Perceptron, ResNet8, ZFNet32};

/// Samples in the batch written.
const BATCH: usize = 2;

/// A small xorshift generator.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }

    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.unit()).collect()
    }
}

/// The batch shape of `n` samples of `M`'s input: `[n, D, H, W]` or `[n, len]`.
fn input_shape<M: Network>(n: usize) -> Vec<usize> {
    let s = M::INPUT;
    if s.flat {
        vec![n, s.len()]
    } else {
        vec![n, s.d, s.h, s.w]
    }
}

fn raw(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Trains `model` briefly, then writes its files as `dir/name.*`.
fn export<M: Model>(mut model: M, dir: &Path, name: &str) -> Result<(), Box<dyn Error>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut opt = Sgd::new(0.01, 0.9)?;
    for _ in 0..3 {
        let x = rng.vec(8 * M::INPUT_LEN);
        let labels: Vec<usize> = (0..8).map(|_| (rng.unit() * M::classes() as f32) as usize % M::classes()).collect();
        model.train_step(&mut opt, &x, &labels)?;
    }
    let x = rng.vec(BATCH * M::INPUT_LEN);
    let y = model.forward(&x)?.to_vec();
    cnn::onnx::save(&model, &Meta::default(), &dir.join(format!("{name}.onnx")))?;
    fs::write(dir.join(format!("{name}.input.bin")), raw(&x))?;
    fs::write(dir.join(format!("{name}.output.bin")), raw(&y))?;
    let shapes = format!(r#"{{"input": {:?}, "output": {:?}}}"#, input_shape::<M>(BATCH), [BATCH, M::OUTPUT_LEN]);
    fs::write(dir.join(format!("{name}.json")), shapes)?;
    println!("{name:<14} {} parameters", M::PARAM_COUNT);
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "out/onnx".into());
    let dir = Path::new(&dir);
    fs::create_dir_all(dir)?;
    export(Perceptron::with_seed(1), dir, "perceptron")?;
    export(Mlp::with_seed(1), dir, "mlp")?;
    export(LeNet5::with_seed(1), dir, "lenet5")?;
    export(AlexNet32::with_seed(1), dir, "alexnet32")?;
    export(ZFNet32::with_seed(1), dir, "zfnet32")?;
    export(ResNet8::with_seed(1), dir, "resnet8")?;
    export(GoogLeNetMini::with_seed(1), dir, "googlenet_mini")?;
    println!("written to {}", dir.display());
    Ok(())
}
