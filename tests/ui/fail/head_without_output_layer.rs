// A head whose outputs would be the trunk's: it has no layer of its own.
cnn::cnn! {
    struct Net < input(16) fc(8) heads(digit: fc(10) softmax, mirror: relu) >
}

fn main() {}
