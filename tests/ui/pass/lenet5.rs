// The README's model, item form, with a doc comment and a derive-free attribute.
use cnn::{cnn, Network};

cnn! {
    /// LeNet-style classifier for 28x28 grey digits.
    #[allow(dead_code)]
    pub struct LeNet5 <
        input(28x28x1)
        conv(5x5, 6, pad=2) relu pool(2)
        conv(5x5, 16) relu pool(2)
        fc(120) relu fc(84) relu fc(10) softmax
    >
}

fn main() {
    let mut model = LeNet5::new();
    let class: usize = model.classify(&[0.0; 784]);
    assert!(class < 10);
    assert_eq!(LeNet5::PARAM_COUNT, 61_706);
}
