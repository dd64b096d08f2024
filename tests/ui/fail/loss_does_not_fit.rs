// Mean squared error on softmax probabilities is not offered.
cnn::cnn! {
    struct Net < input(16) fc(8) relu fc(4) softmax loss(mse) >
}

fn main() {}
