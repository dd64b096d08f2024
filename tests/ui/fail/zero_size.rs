// A layer of size 0.
cnn::cnn! {
    struct Net < input(784) fc(0) relu fc(10) softmax >
}

fn main() {}
