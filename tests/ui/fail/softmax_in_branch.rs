// softmax ends the model, not a branch.
cnn::cnn! {
    struct Net < input(16) concat(fc(4) softmax, fc(4)) fc(2) softmax >
}

fn main() {}
