// Something other than a struct.
cnn::cnn! {
    pub fn net < input(4) fc(2) softmax >
}

fn main() {}
