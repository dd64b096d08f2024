// L2 pooling takes no padding, as PyTorch's LPPool2d.
cnn::cnn! {
    struct Net < input(28x28x3) l2pool(3, stride=1, pad=1) fc(10) softmax >
}

fn main() {}
