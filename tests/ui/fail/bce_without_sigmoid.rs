// Binary cross-entropy needs probabilities from a sigmoid.
cnn::cnn! {
    struct Net < input(16) fc(8) relu fc(3) loss(bce) >
}

fn main() {}
