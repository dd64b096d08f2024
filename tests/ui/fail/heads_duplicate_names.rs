// Each head needs a name of its own: it names a field of `NetHeads` and a PyTorch module.
cnn::cnn! {
    struct Net < input(16) fc(8) relu heads(digit: fc(10) softmax, digit: fc(2) softmax) >
}

fn main() {}
