// Cross-entropy needs class probabilities.
cnn::cnn! {
    struct Net < input(16) fc(8) relu fc(3) loss(cross_entropy) >
}

fn main() {}
