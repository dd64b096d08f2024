// Branches of one concat must give the same width and height.
cnn::cnn! {
    struct Net < input(28x28x3) concat(conv(1x1, 8), conv(3x3, 8) relu, maxpool(3, stride=1)) relu fc(10) softmax >
}

fn main() {}
