// The course's networks, as the zoo example declares them: each compiles and runs a step.
use cnn::{Model, Sgd};

#[path = "../../../examples/zoo/models.rs"]
mod models;

fn step<M: Model>(mut model: M, classes: usize) {
    let x = vec![0.5; 2 * M::INPUT_LEN];
    let labels = [0, classes - 1];
    let mut opt = Sgd::new(0.01, 0.9).unwrap();
    assert!(model.train_step(&mut opt, &x, &labels).unwrap().is_finite());
    assert_eq!(model.predict(&x).unwrap().len(), 2);
}

fn main() {
    step(models::Perceptron::new(), 2);
    step(models::Mlp::new(), 10);
    step(models::LeNet5::new(), 10);
    step(models::AlexNet32::new(), 10);
    step(models::ResNet8::new(), 10);
}
