// LRN divides by (k + ...)^beta: k must be positive.
cnn::cnn! {
    struct Net < input(32x32x3) conv(5x5, 16, pad=2) relu lrn(5, k=0) fc(10) softmax >
}

fn main() {}
