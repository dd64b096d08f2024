// Each head starts with its name and a colon.
cnn::cnn! {
    struct Net < input(16) fc(8) relu heads(fc(10) softmax, parity: fc(2) softmax) >
}

fn main() {}
