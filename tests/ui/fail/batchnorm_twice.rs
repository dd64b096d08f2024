// Two batch normalisations in a row.
cnn::cnn! {
    struct Net < input(28x28x1) conv(5x5, 6) batchnorm batchnorm relu pool(2) fc(10) softmax >
}

fn main() {}
