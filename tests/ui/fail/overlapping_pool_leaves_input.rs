// AlexNet's 3/2 pooling on an even size would never read the last column.
cnn::cnn! {
    struct Net < input(32x32x3) conv(3x3, 64, pad=1) relu maxpool(3, stride=2) fc(10) softmax >
}

fn main() {}
