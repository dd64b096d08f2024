// A loss weight weighs a head against the other heads; a model with one output has none.
cnn::cnn! {
    struct Net < input(16) fc(2) softmax loss(cross_entropy, weight=0.5) >
}

fn main() {}
