// A typo in a layer name.
cnn::cnn! {
    struct Net < input(784) fc(100) rleu fc(10) softmax >
}

fn main() {}
