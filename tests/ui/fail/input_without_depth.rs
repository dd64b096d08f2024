// A volume needs its depth.
cnn::cnn! {
    struct Net < input(28x28) fc(10) softmax >
}

fn main() {}
