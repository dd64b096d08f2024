//! The text that the program and the `std` build (`tests/nostd_digits.rs` of the `cnn` package,
//! which includes this file) print for their predictions.

use alloc::string::String;
use core::fmt::Write;

/// The text both builds print: the predictions, 100 a line, then how many are right.
pub fn report(predictions: &[usize], labels: &[usize]) -> String {
    let mut text = String::new();
    for line in predictions.chunks(100) {
        line.iter().for_each(|p| text.push(char::from_digit(*p as u32, 36).unwrap_or('?')));
        text.push('\n');
    }
    let right = predictions.iter().zip(labels).filter(|(p, l)| p == l).count();
    let percent = 100.0 * right as f64 / labels.len().max(1) as f64;
    let _ = writeln!(text, "{right} of {} digits right ({percent:.2} %)", labels.len());
    text
}
