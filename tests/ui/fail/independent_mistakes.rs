// A misspelt argument and an independent shape mistake before it: both are reported.
cnn::cnn! {
    struct Net < input(28x28x1) conv(5x5, 6, stride=2) relu conv(3x3, 16, padding=1) relu fc(10) softmax >
}

fn main() {}
