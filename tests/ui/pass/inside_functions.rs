// A model declared inside a function, and one private to a module.
mod models {
    cnn::cnn! {
        pub(crate) struct Tiny < input(3x3x1) conv(2x2, 2) relu fc(2) softmax >
    }
}

fn main() {
    cnn::cnn! {
        struct Local < input(6) fc(4) relu relu fc(2) softmax >
    }
    let mut tiny = models::Tiny::default();
    let mut local = Local::new();
    let _ = (tiny.classify(&[0.0; 9]), local.classify(&[0.0; 6]));
}
