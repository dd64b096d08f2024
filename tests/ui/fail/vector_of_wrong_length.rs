// One sample as a nalgebra vector: its length is checked by the type.
use cnn::cnn;
use cnn::na::nalgebra::SVector;

cnn! {
    struct Digits < input(28x28x1) conv(5x5, 6) relu pool(2) fc(10) softmax >
}

fn main() {
    let mut model = Digits::new();
    let image = SVector::<f32, 748>::zeros(); // 748 is not 28 * 28
    let _ = model.classify_vector(&image);
}
