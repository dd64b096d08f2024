// `heads` ends the model: nothing may follow it.
cnn::cnn! {
    struct Net < input(16) fc(8) relu heads(digit: fc(10) softmax, parity: fc(2) softmax) dropout(0.5) >
}

fn main() {}
