// A head's loss must fit the head's last layer, as a model's must. The code using the model
// reports nothing more: its heads, their struct and the multi-task API are there.
use cnn::{MultiTask, Network, Targets};

cnn::cnn! {
    struct Net < input(16) fc(8) relu heads(a: fc(2) softmax, b: fc(3) loss(bce, weight=0.5)) >
}

fn main() {
    let mut model = Net::with_seed(1);
    let x = [0.0; 16];
    let targets = NetHeads { a: Targets::Labels(&[1]), b: Targets::Dense(&[0.0, 1.0, 0.0]) };
    let _ = model.loss_and_grad(&x, targets);
    let out: NetHeads<usize> = model.classify(&x);
    let _ = (out.a, out.b, Net::HEADS, Net::PARAM_COUNT);
}
