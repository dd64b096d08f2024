// The loss ends the model.
cnn::cnn! {
    struct Net < input(16) fc(8) loss(mse) relu fc(3) >
}

fn main() {}
