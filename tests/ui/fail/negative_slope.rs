// Leaky ReLU slopes are not negative.
cnn::cnn! {
    struct Net < input(16) fc(8) leaky_relu(-0.1) fc(3) softmax >
}

fn main() {}
