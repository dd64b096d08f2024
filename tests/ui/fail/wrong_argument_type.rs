// A fraction where a count is expected.
cnn::cnn! {
    struct Net < input(784) fc(12.5) relu fc(10) softmax >
}

fn main() {}
