// The expression form evaluates to a fresh model; two of them do not clash.
use cnn::Model;

fn main() {
    let mut perceptron = cnn::cnn!(< input(2) fc(2) softmax >);
    let mut mlp = cnn::cnn!(< input(4) fc(16) relu fc(16) relu fc(3) softmax >);
    assert_eq!(perceptron.forward(&[1.0, 2.0]).unwrap().len(), 2);
    assert_eq!(mlp.forward(&[0.0; 8]).unwrap().len(), 6);
}
