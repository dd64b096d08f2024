// The expression form reports the same errors, and the value stays usable.
use cnn::Model;

fn main() {
    let mut mlp = cnn::cnn!(< input(4) fc(8) relu fc(3) sofmax >);
    let _ = mlp.forward(&[0.0; 4]);
}
