// Softmax ends the model, never a block.
cnn::cnn! {
    struct Net < input(16) residual(fc(16) softmax) fc(3) softmax >
}

fn main() {}
