// `relu` takes no arguments.
cnn::cnn! {
    struct Net < input(784) fc(100) relu(0.1) fc(10) softmax >
}

fn main() {}
