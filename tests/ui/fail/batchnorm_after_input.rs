// Batch normalisation normalises what a layer computes, not the raw input.
cnn::cnn! {
    struct Net < input(28x28x1) batchnorm conv(5x5, 6) relu pool(2) fc(10) softmax >
}

fn main() {}
