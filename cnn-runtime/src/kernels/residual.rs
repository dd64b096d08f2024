//! Residual connections: the sum of two branches and the gradient that flows into both.

use super::{chunk, chunk_count, chunk_len, for_each_chunk, Act, ChunksMut};

/// `y = act(a + b)` on `n` samples of `len` values each.
pub fn add_forward(n: usize, len: usize, a: &[f32], b: &[f32], y: &mut [f32], act: Act) {
    let size = (chunk_len(n) * len).max(1);
    let ys = ChunksMut::new(&mut y[..n * len], size);
    let (a, b) = (&a[..n * len], &b[..n * len]);
    for_each_chunk(chunk_count(n), &|c| {
        let (y, a, b) = (ys.take(c), chunk(a, size, c), chunk(b, size, c));
        for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
            *y = act.apply(a + b);
        }
    });
}

/// `dst += src` on `n` samples of `len` values each: adds a second gradient into a block input.
pub fn add_assign(n: usize, len: usize, dst: &mut [f32], src: &[f32]) {
    let size = (chunk_len(n) * len).max(1);
    let dsts = ChunksMut::new(&mut dst[..n * len], size);
    let src = &src[..n * len];
    for_each_chunk(chunk_count(n), &|c| {
        dsts.take(c).iter_mut().zip(chunk(src, size, c)).for_each(|(d, &s)| *d += s);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::random_vec;

    #[test]
    fn add_forward_adds_and_applies_the_activation() {
        let (a, b) = ([1.0, -2.0, 0.5, 3.0, -1.0, 0.0], [0.5, 1.0, -1.5, -4.0, 2.0, 0.0]);
        let mut y = [9.0; 6];
        add_forward(3, 2, &a, &b, &mut y, Act::Identity);
        assert_eq!(y, [1.5, -1.0, -1.0, -1.0, 1.0, 0.0]);
        add_forward(3, 2, &a, &b, &mut y, Act::Relu);
        assert_eq!(y, [1.5, 0.0, 0.0, 0.0, 1.0, 0.0]);
        add_forward(3, 2, &a, &b, &mut y, Act::Tanh);
        assert_eq!(y, [1.5f32.tanh(), -1f32.tanh(), -1f32.tanh(), -1f32.tanh(), 1f32.tanh(), 0.0]);
    }

    #[test]
    fn add_assign_accumulates_over_many_chunks() {
        let (n, len) = (40, 7);
        let (mut dst, src) = (random_vec(n * len, 1), random_vec(n * len, 2));
        let want: Vec<f32> = dst.iter().zip(&src).map(|(d, s)| d + s).collect();
        add_assign(n, len, &mut dst, &src);
        assert_eq!(dst, want);
        let mut y = vec![0.0; n * len];
        add_forward(n, len, &want, &src, &mut y, Act::Identity);
        assert_eq!(y, want.iter().zip(&src).map(|(a, b)| a + b).collect::<Vec<_>>());
    }
}
