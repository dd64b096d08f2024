// A multi-task model as a user writes it: typed targets, outputs and evaluations by head name,
// generic code over any model with heads, and the expression form.
use cnn::prelude::*;
use cnn::{cnn, Sgd, Targets};

cnn! {
    /// Digits and their parity from one trunk.
    pub struct Digits <
        input(8x8x1)
        conv(3x3, 4, pad=1) relu pool(2)
        heads(digit: fc(10) softmax, parity: fc(1) sigmoid loss(bce, weight=0.5))
    >
}

/// Every head's accuracy, by name, for any model with heads.
fn accuracies<M: MultiTask>(model: &mut M, x: &[f32], labels: &[usize]) -> Vec<(&'static str, f32)> {
    let targets = M::Heads::from_fn(|_| Targets::Labels(labels));
    let eval = model.evaluate(x, targets, 8).unwrap();
    M::HEADS.iter().enumerate().map(|(h, head)| (head.name, eval.get(h).unwrap().accuracy)).collect()
}

fn main() {
    let mut model = Digits::with_seed(3);
    let x = vec![0.5; 2 * Digits::INPUT_LEN];
    let (digits, parity) = ([3, 8], [1, 0]);
    let mut opt = Sgd::new(0.1, 0.9).unwrap();
    let targets = DigitsHeads { digit: Targets::Labels(&digits), parity: Targets::Labels(&parity) };
    let loss: f32 = model.train_step(&mut opt, &x, targets).unwrap();
    assert!(loss.is_finite());
    let out: DigitsHeads<&[f32]> = model.forward(&x).unwrap();
    assert_eq!((out.digit.len(), out.parity.len()), (20, 2));
    let one: DigitsHeads<usize> = model.classify(&[0.0; 64]);
    assert!(one.digit < 10 && one.parity < 2);
    model.freeze(Digits::trunk()).unwrap();
    assert_eq!(accuracies(&mut model, &x, &parity).len(), 2);

    let mut anonymous = cnn!(<input(4) heads(a: fc(2) softmax, b: fc(1))>);
    let out = anonymous.forward(&[1.0, 2.0, 3.0, 4.0]).unwrap();
    assert_eq!(out.get(1).unwrap().len(), 1);
}
