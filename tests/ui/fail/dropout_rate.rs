// A dropout rate is the fraction of values dropped: it must be below 1.
cnn::cnn! {
    struct Net < input(784) fc(128) relu dropout(1.5) fc(10) softmax >
}

fn main() {}
