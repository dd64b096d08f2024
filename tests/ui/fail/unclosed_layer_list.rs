// The layer list is never closed.
cnn::cnn! {
    struct Net < input(784) fc(10) softmax
}

fn main() {}
