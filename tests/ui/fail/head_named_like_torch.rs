// The PyTorch model names its heads as written; `eval` is a method of every PyTorch module.
cnn::cnn! {
    struct Net < input(16) fc(8) relu heads(train: fc(2) softmax, eval: fc(1)) >
}

fn main() {}
