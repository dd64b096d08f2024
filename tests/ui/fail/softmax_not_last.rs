// Something follows `softmax`.
cnn::cnn! {
    struct Net < input(784) fc(10) softmax fc(10) >
}

fn main() {}
