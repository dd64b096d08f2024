//! A short training run on a slice of the embedded MNIST digits must learn real digits, and
//! the saved weights must give the same predictions after loading.

use std::path::Path;

use cnn::augment::{augment_batch, Compose, Shift};
use cnn::data::{epoch_order, load_mnist};
use cnn::io::{load_weights, save_weights};
use cnn::{cnn, Model, Optimizer, Sgd};

cnn! {
    struct LeNet5 <
        input(28x28x1)
        conv(5x5, 6, pad=2) relu pool(2)
        conv(5x5, 16) relu pool(2)
        fc(120) relu fc(84) relu fc(10) softmax
    >
}

#[test]
fn lenet5_learns_real_digits_from_a_slice_of_the_embedded_data() {
    let (train, test) = load_mnist(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist")).unwrap();
    let train = train.take(4000);
    let mut test = test.take(1000);
    // Standardised with MNIST's pixel mean and deviation, as the lenet5 example does.
    let standardise = |v: &mut [f32]| v.iter_mut().for_each(|x| *x = (*x - 0.1307) / 0.3081);
    standardise(&mut test.images);
    let mut model = LeNet5::with_seed(1);
    let mut opt = Sgd::new(0.02, 0.9).unwrap();
    let augment = Compose::new().then(Shift { max: 1 });
    let (mut order, mut raw, mut batch, mut labels, mut scratch) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for epoch in 0..3 {
        epoch_order(train.len(), 5, epoch, &mut order).unwrap();
        for (step, indices) in order.chunks(32).enumerate() {
            raw.clear();
            labels.clear();
            for &i in indices {
                raw.extend_from_slice(train.sample(i).unwrap().0);
                labels.push(train.labels[i]);
            }
            batch.resize(raw.len(), 0.0);
            augment_batch(&augment, train.shape, &raw, &mut batch, epoch * 1000 + step as u64, &mut scratch).unwrap();
            standardise(&mut batch);
            model.train_step(&mut opt, &batch, &labels).unwrap();
        }
        opt.set_learning_rate(opt.learning_rate() * 0.5).unwrap();
    }
    let eval = model.evaluate(&test.images, &test.labels, 250).unwrap();
    println!("after 3 epochs on 4,000 digits: test accuracy {:.2} %", 100.0 * eval.accuracy);
    assert!(eval.accuracy > 0.9, "test accuracy {}", eval.accuracy);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lenet5.safetensors");
    save_weights(&model, &path).unwrap();
    let mut loaded = LeNet5::new();
    load_weights(&mut loaded, &path).unwrap();
    assert_eq!(loaded.predict(&test.images).unwrap(), model.predict(&test.images).unwrap());
}
