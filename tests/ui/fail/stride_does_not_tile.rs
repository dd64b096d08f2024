// The README's LeNet-5 with `pad=2` changed to `stride=2`: the error points at that layer,
// and the code that uses the model reports nothing more.
use cnn::{cnn, Model, Network, Sgd};

cnn! {
    pub struct LeNet5 <
        input(28x28x1)
        conv(5x5, 6, stride=2) relu pool(2)
        conv(5x5, 16) relu pool(2)
        fc(120) relu fc(84) relu fc(10) softmax
    >
}

fn main() {
    let mut model = LeNet5::new();
    let mut opt = Sgd::new(0.01, 0.9).unwrap();
    let x = vec![0.0; 784];
    let _ = model.train_step(&mut opt, &x, &[3]);
    let probs: [f32; 10] = model.probabilities(&[0.0; 784]);
    println!("{} {probs:?}", LeNet5::PARAM_COUNT);
}
