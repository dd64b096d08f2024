// The first layer must be `input`.
cnn::cnn! {
    struct Net < conv(3x3, 8) relu fc(10) softmax >
}

fn main() {}
