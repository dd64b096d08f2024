// No layers at all.
cnn::cnn! {
    struct Net < >
}

fn main() {}
