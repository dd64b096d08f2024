// `input` appears twice.
cnn::cnn! {
    struct Net < input(784) fc(100) relu input(100) fc(10) softmax >
}

fn main() {}
