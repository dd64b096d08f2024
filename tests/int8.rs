//! Int8 inference of the committed LeNet-5 on the 2,000 test digits: as accurate as the float
//! model, the same integers on every kernel, and models it cannot run refused by name.

#[path = "common/committed.rs"]
mod committed;

use cnn::data::Dataset;
use cnn::prelude::*;
use cnn::quant::{quantize, Kernel};
use cnn::{cnn, Error};

cnn! { struct Digits = "models/lenet5.safetensors" }

/// The committed model and the training and test digits, prepared as the model's file says.
fn setup() -> (Digits, Dataset, Dataset) {
    let mut model = Digits::new();
    let meta = committed::load(&mut model);
    let (train, test) = committed::digits(&meta);
    (model, train, test)
}

#[test]
fn int8_lenet5_is_as_accurate_as_float_on_the_test_digits() {
    let (mut model, train, test) = setup();
    // 500 training digits calibrate; the test digits are never seen.
    let mut int8 = quantize(&model, &train.images[..500 * 784]).unwrap();
    let float = model.evaluate(&test.images, &test.labels, 250).unwrap().accuracy;
    let quantised = int8.accuracy(&test.images, &test.labels).unwrap();
    println!("float {:.2} %, int8 {:.2} %", 100.0 * float, 100.0 * quantised);
    assert!((float - quantised).abs() <= 0.003, "float {float}, int8 {quantised}");
    // Probabilities stay close to the float model's, not only the classes.
    let (p, q) =
        (model.forward(&test.images[..100 * 784]).unwrap().to_vec(), int8.forward(&test.images[..100 * 784]).unwrap());
    let worst = p.iter().zip(q).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst < 0.1, "a probability moved by {worst}");
    // One sample at a time gives the batch's answers.
    let batch = int8.predict(&test.images[..20 * 784]).unwrap();
    let one: Vec<usize> = test.images[..20 * 784].chunks(784).map(|x| int8.classify(x).unwrap()).collect();
    assert_eq!(one, batch);
}

#[test]
fn every_kernel_gives_the_same_outputs() {
    let (model, train, test) = setup();
    let mut int8 = quantize(&model, &train.images[..200 * 784]).unwrap();
    let x = &test.images[..300 * 784];
    let best = int8.forward(x).unwrap().to_vec();
    println!("best kernel here: {:?}", int8.kernel());
    for kernel in [Kernel::Avx2, Kernel::Portable] {
        if kernel.available() {
            int8.set_kernel(kernel).unwrap();
            let out = int8.forward(x).unwrap();
            assert!(out.iter().zip(&best).all(|(a, b)| a.to_bits() == b.to_bits()), "{kernel:?} differs");
        } else {
            assert!(int8.set_kernel(kernel).is_err());
        }
    }
}

cnn! {
    /// Every layer int8 inference runs: strided, padded, rectangular convolution, average
    /// pooling with padding, tanh, leaky ReLU on its own after pooling, dropout, a volume out.
    struct Mixed <
        input(9x7x2) conv(3x2, 5, stride=2x1, pad=1x0) tanh avgpool(3, stride=1, pad=1) leaky_relu(0.1) dropout(0.2)
        conv(1x1, 4) fc(6) sigmoid fc(3)
    >
}

#[test]
fn other_layers_follow_the_float_model() {
    let model = Mixed::with_seed(3);
    let mut float = model.clone();
    let x: Vec<f32> = (0..400 * Mixed::INPUT_LEN).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
    let mut int8 = quantize(&model, &x[..300 * Mixed::INPUT_LEN]).unwrap();
    let want = float.forward(&x).unwrap();
    let got = int8.forward(&x).unwrap();
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let worst = want.iter().zip(got).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    println!("largest output {scale}, largest difference {worst}");
    assert!(worst < 0.05 * scale, "outputs differ by {worst} (largest output {scale})");
}

cnn! { struct Normed < input(6x6x1) conv(3x3, 2) batchnorm relu fc(3) softmax > }

#[test]
fn unsupported_layers_and_bad_batches_are_errors() {
    let model = Normed::with_seed(1);
    let error = quantize(&model, &[0.5; 36]).unwrap_err();
    assert!(error.to_string().contains("does not support `batchnorm`"), "{error}");
    let (model, _, _) = setup();
    assert!(matches!(quantize(&model, &[]), Err(Error::EmptyBatch)));
    assert!(matches!(quantize(&model, &[0.0; 783]), Err(Error::InputLength { .. })));
    let mut nan = vec![0.0; 784];
    nan[5] = f32::NAN;
    assert!(matches!(quantize(&model, &nan), Err(Error::NonFiniteInput { index: 5, .. })));
    let mut int8 = quantize(&model, &[0.25; 784]).unwrap();
    assert!(matches!(int8.forward(&nan), Err(Error::NonFiniteInput { .. })));
    assert!(matches!(int8.classify(&[0.0; 1568]), Err(Error::InputLength { .. })));
}
