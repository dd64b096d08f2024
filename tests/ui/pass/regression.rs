// Without softmax the output is linear and the loss is the mean squared error.
use cnn::{cnn, Loss, Model, Sgd};

cnn! {
    struct Net < input(784) fc(100) relu fc(10) >
}

fn main() {
    assert_eq!(Net::LOSS, Loss::MeanSquaredError);
    let mut model = Net::new();
    let x = vec![0.1; 2 * 784];
    let targets = vec![0.5; 2 * 10];
    let mut opt = Sgd::new(0.01, 0.0).unwrap();
    let first = model.train_step_targets(&mut opt, &x, &targets).unwrap();
    let second = model.train_step_targets(&mut opt, &x, &targets).unwrap();
    assert!(second < first);
}
