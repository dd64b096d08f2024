pub use cnn_shape::Shape;

/// Output length of a convolution or pooling window along one axis,
/// `(input − filter + 2·pad)/stride + 1`, by the rule the `cnn!` macro checks every layer with
/// ([`cnn_shape::output_len`]): the division may round down only where it drops padding or what
/// the stride skips anyway, as ResNet's `(32, 3, stride 2, pad 1)` gives 16. `None` when the
/// window is empty or larger than the padded input, the stride is 0, or the windows would leave
/// input values at the edge unread.
#[inline]
pub const fn conv_output_len(input: usize, filter: usize, stride: usize, pad: usize) -> Option<usize> {
    cnn_shape::output_len(input, filter, stride, pad)
}

/// The windows a kernel visits along one axis ([`cnn_shape::windows`]: the same formula,
/// rounded down as PyTorch does); in a constant, a window that does not fit stops the build.
#[inline]
pub(crate) const fn window_len(input: usize, window: usize, stride: usize, pad: usize) -> usize {
    match cnn_shape::windows(input, window, stride, pad) {
        Some(n) => n,
        None => panic!("a window larger than its padded input, or a stride of 0"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_len_follows_the_rule() {
        assert_eq!(conv_output_len(28, 5, 1, 2), Some(28));
        assert_eq!(conv_output_len(28, 5, 1, 0), Some(24));
        assert_eq!(conv_output_len(24, 2, 2, 0), Some(12));
        assert_eq!(conv_output_len(28, 5, 2, 0), None);
        assert_eq!(conv_output_len(3, 5, 1, 0), None);
        assert_eq!(conv_output_len(3, 5, 1, 1), Some(1));
        assert_eq!(conv_output_len(3, 3, 0, 0), None);
        // As the macro: ResNet's stride-2 3x3 with padding 1 on an even input rounds down.
        assert_eq!(conv_output_len(32, 3, 2, 1), Some(16));
        assert_eq!(conv_output_len(usize::MAX, 1, 1, 1), None);
    }
}
