use std::fmt;

/// A volume: width x height x depth, written `WxHxD` as in `input(28x28x1)`.
///
/// A flat vector of `n` values is `Shape { w: n, h: 1, d: 1 }` with [`Shape::flat`] set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    /// Width (columns).
    pub w: usize,
    /// Height (rows).
    pub h: usize,
    /// Depth (channels).
    pub d: usize,
    /// A flat vector rather than a volume.
    pub flat: bool,
}

impl Shape {
    /// A `w x h x d` volume.
    pub const fn volume(w: usize, h: usize, d: usize) -> Self {
        Shape { w, h, d, flat: false }
    }

    /// A flat vector of `n` values.
    pub const fn vector(n: usize) -> Self {
        Shape { w: n, h: 1, d: 1, flat: true }
    }

    /// Number of values (`usize::MAX` for a shape too large to count).
    pub const fn len(&self) -> usize {
        self.w.saturating_mul(self.h).saturating_mul(self.d)
    }

    /// Whether the shape holds no value.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.flat {
            write!(f, "{}", self.w)
        } else {
            write!(f, "{}x{}x{}", self.w, self.h, self.d)
        }
    }
}

/// Output length of a convolution or pooling window along one axis,
/// `(input − filter + 2·pad)/stride + 1`, by the rule the `cnn!` macro checks every layer with
/// ([`cnn_window::output_len`]): the division may round down only where it drops padding or what
/// the stride skips anyway, as ResNet's `(32, 3, stride 2, pad 1)` gives 16. `None` when the
/// window is empty or larger than the padded input, the stride is 0, or the windows would leave
/// input values at the edge unread.
#[inline]
pub const fn conv_output_len(input: usize, filter: usize, stride: usize, pad: usize) -> Option<usize> {
    match cnn_window::output_len(input as u64, filter as u64, stride as u64, pad as u64) {
        Some(n) => Some(n as usize),
        None => None,
    }
}

/// The windows a kernel visits along one axis ([`cnn_window::windows`]: the same formula,
/// rounded down as PyTorch does); in a constant, a window that does not fit stops the build.
#[inline]
pub(crate) const fn window_len(input: usize, window: usize, stride: usize, pad: usize) -> usize {
    match cnn_window::windows(input as u64, window as u64, stride as u64, pad as u64) {
        Some(n) => n as usize,
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

    #[test]
    fn shapes_print_as_the_dsl_writes_them() {
        assert_eq!(Shape::volume(32, 16, 3).to_string(), "32x16x3");
        assert_eq!(Shape::vector(120).to_string(), "120");
        assert_eq!(Shape::volume(32, 16, 3).len(), 1536);
    }
}
