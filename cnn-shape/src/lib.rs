//! What the `cnn!` macro and its runtime must agree on, written once for both: the [`Shape`] of a
//! layer's output, and the output-size rule of a sliding window (a convolution's filter or a
//! pooling window) along one axis, which the macro checks every layer with while compiling and
//! the kernels size their loops with.
//!
//! `W2 = (W1 − F + 2P)/S + 1`. The division may round down only where what it drops is padding,
//! or a gap the stride skips anyway: `(W1 − F + 2P) mod S ≤ P + max(S − F, 0)`. ResNet's
//! `conv(3x3, K, stride=2, pad=1)` on a 32-wide input gives 16 ((32 − 3 + 2)/2 + 1 = 16.5, the
//! half being one unread column of padding); AlexNet's 3-wide, stride-2 pooling on 32 is refused,
//! as its windows would never read the last input column.

#![no_std]

use core::fmt;

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

    /// Channels and values per channel: depth and area of a volume, or the values of a flat
    /// vector, one per channel (as batch normalisation sees them).
    pub const fn channels(&self) -> (usize, usize) {
        if self.flat {
            (self.len(), 1)
        } else {
            (self.d, self.w.saturating_mul(self.h))
        }
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

/// How many windows of `window` values a stride of `stride` fits in `input` values padded with
/// `pad` on each side: `(input − window + 2·pad)/stride + 1` rounded down, as a kernel visits
/// them and as PyTorch counts them; `None` when the window is empty or larger than the padded
/// input, or the stride is 0. [`output_len`] adds the rule on what rounding down may drop.
#[inline]
pub const fn windows(input: usize, window: usize, stride: usize, pad: usize) -> Option<usize> {
    let Some(both) = pad.checked_mul(2) else { return None };
    let Some(padded) = input.checked_add(both) else { return None };
    if stride == 0 || window == 0 || window > padded {
        return None;
    }
    Some((padded - window) / stride + 1)
}

/// The output length of a window of `window` values moved by `stride` over `input` values padded
/// with `pad` on each side: [`windows`], and `None` as well when the windows would leave input
/// values at the edge unread.
#[inline]
pub const fn output_len(input: usize, window: usize, stride: usize, pad: usize) -> Option<usize> {
    let Some(n) = windows(input, window, stride, pad) else { return None };
    // What the rounding drops: the end of the padded input that no window reaches (`windows`
    // has checked that the padded length fits).
    let dropped = (input + 2 * pad - window) % stride;
    if dropped <= pad.saturating_add(stride.saturating_sub(window)) {
        Some(n)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;

    use super::{output_len, windows, Shape};

    #[test]
    fn shapes_print_as_the_dsl_writes_them() {
        assert_eq!(Shape::volume(32, 16, 3).to_string(), "32x16x3");
        assert_eq!(Shape::vector(120).to_string(), "120");
        assert_eq!(Shape::volume(32, 16, 3).len(), 1536);
        assert_eq!(Shape::volume(usize::MAX, 2, 1).len(), usize::MAX);
        assert_eq!(Shape::volume(4, 3, 8).channels(), (8, 12));
        assert_eq!(Shape::vector(10).channels(), (10, 1));
    }

    #[test]
    fn whole_numbers_follow_the_formula() {
        assert_eq!(output_len(28, 5, 1, 2), Some(28));
        assert_eq!(output_len(28, 5, 1, 0), Some(24));
        assert_eq!(output_len(28, 2, 2, 0), Some(14));
        assert_eq!(output_len(227, 11, 4, 0), Some(55));
    }

    #[test]
    fn rounding_down_only_drops_padding_or_what_the_stride_skips() {
        // ResNet's stride-2 3x3 with padding 1, and its 1x1 stride-2 projection, on even inputs.
        assert_eq!(output_len(32, 3, 2, 1), Some(16));
        assert_eq!(output_len(32, 1, 2, 0), Some(16));
        // A 3-wide stride-2 window on 32 values never reads the last one.
        assert_eq!(output_len(32, 3, 2, 0), None);
        assert_eq!(output_len(28, 5, 2, 0), None);
        // A kernel still counts the windows that fit.
        assert_eq!(windows(32, 3, 2, 0), Some(15));
        assert_eq!(windows(5, 2, 2, 0), Some(2));
    }

    #[test]
    fn impossible_windows_and_extreme_values_give_none() {
        assert_eq!(output_len(4, 5, 1, 0), None);
        assert_eq!(output_len(4, 0, 1, 0), None);
        assert_eq!(output_len(4, 2, 0, 0), None);
        assert_eq!(output_len(usize::MAX, 1, 1, 1), None);
        assert_eq!(output_len(1, 1, 1, usize::MAX), None);
        assert_eq!(output_len(usize::MAX, usize::MAX, usize::MAX, 0), Some(1));
    }
}
