// Unpadded 3x3 convolutions shrink the volume until a pooling window no longer fits.
cnn::cnn! {
    struct Net <
        input(9x9x3)
        conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1) relu
        conv(3x3, 32) relu conv(3x3, 32) relu conv(3x3, 32) relu conv(3x3, 32) relu
        maxpool(2) fc(10) softmax
    >
}

fn main() {}
