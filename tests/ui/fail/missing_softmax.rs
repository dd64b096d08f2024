// No classifier output to train on.
cnn::cnn! {
    struct Net < input(784) fc(100) relu fc(10) >
}

fn main() {}
