// `heads` ends the model, so it cannot stand inside a block.
cnn::cnn! {
    struct Net < input(16) residual(fc(16) relu heads(a: fc(2) softmax, b: fc(1))) >
}

fn main() {}
