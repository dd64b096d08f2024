//! Blocks: residual connections (the sum of two branches and the gradient that flows into
//! both) and concatenations (branches' outputs stacked along the depth, and the gradient split
//! back between them).

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

/// `y = act(concat(parts))` on `n` samples: each sample's output holds, one after the other,
/// the values of that sample in each part `(values, len)` (for NCHW volumes of the same width
/// and height, a stacking along the depth, as `torch.cat(dim=1)`).
pub fn concat_forward(n: usize, parts: &[(&[f32], usize)], y: &mut [f32], act: Act) {
    let total: usize = parts.iter().map(|&(_, len)| len).sum();
    let samples = chunk_len(n);
    let mut at = 0;
    for &(part, len) in parts {
        let ys = ChunksMut::new(&mut y[..n * total], (samples * total).max(1));
        let part = &part[..n * len];
        for_each_chunk(chunk_count(n), &|c| {
            let y = ys.take(c);
            for (y, x) in y.chunks_exact_mut(total).zip(chunk(part, samples * len, c).chunks_exact(len)) {
                for (y, &x) in y[at..at + len].iter_mut().zip(x) {
                    *y = act.apply(x);
                }
            }
        });
        at += len;
    }
}

/// Where one branch's share of a concatenation's gradient goes.
pub enum Share<'a> {
    /// Nowhere: the branch reads the batch.
    Skip,
    /// Written into this gradient.
    Write(&'a mut [f32]),
    /// Added to this gradient, which already holds another part.
    Add(&'a mut [f32]),
}

/// Splits the gradient `dy` of a concatenation of `n` samples (its activation's gradient
/// already applied) between its branches: branch `k`, of `lens[k]` values per sample, gets its
/// values of each sample as `shares[k]` says.
pub fn concat_backward(n: usize, dy: &[f32], lens: &[usize], shares: &mut [Share<'_>]) {
    let total: usize = lens.iter().sum();
    let samples = chunk_len(n);
    let dy = &dy[..n * total];
    let mut at = 0;
    for (share, &len) in shares.iter_mut().zip(lens) {
        let (dst, add) = match share {
            Share::Skip => {
                at += len;
                continue;
            }
            Share::Write(d) => (&mut d[..n * len], false),
            Share::Add(d) => (&mut d[..n * len], true),
        };
        let dsts = ChunksMut::new(dst, (samples * len).max(1));
        for_each_chunk(chunk_count(n), &|c| {
            let d = dsts.take(c);
            for (d, g) in d.chunks_exact_mut(len).zip(chunk(dy, samples * total, c).chunks_exact(total)) {
                let g = &g[at..at + len];
                if add {
                    d.iter_mut().zip(g).for_each(|(d, &g)| *d += g);
                } else {
                    d.copy_from_slice(g);
                }
            }
        });
        at += len;
    }
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

    #[test]
    fn concat_stacks_each_sample_and_splits_its_gradient_back() {
        // Two samples; branches of 2 and 3 values per sample.
        let (a, b) = ([1.0, -2.0, 3.0, 4.0], [5.0, 6.0, -7.0, 8.0, 9.0, 10.0]);
        let mut y = [0.0; 10];
        concat_forward(2, &[(&a, 2), (&b, 3)], &mut y, Act::Relu);
        assert_eq!(y, [1.0, 0.0, 5.0, 6.0, 0.0, 3.0, 4.0, 8.0, 9.0, 10.0]);
        let dy: Vec<f32> = (0..10).map(|v| v as f32).collect();
        let (mut da, mut db) = ([0.0; 4], [1.0; 6]);
        concat_backward(2, &dy, &[2, 3], &mut [Share::Write(&mut da), Share::Add(&mut db)]);
        assert_eq!(da, [0.0, 1.0, 5.0, 6.0]);
        assert_eq!(db, [3.0, 4.0, 5.0, 8.0, 9.0, 10.0]);
        concat_backward(2, &dy, &[2, 3], &mut [Share::Skip, Share::Write(&mut db)]);
        assert_eq!(db, [2.0, 3.0, 4.0, 7.0, 8.0, 9.0]);
    }

    #[test]
    fn concat_is_the_same_over_many_chunks() {
        let (n, la, lb) = (70, 3, 5);
        let (a, b) = (random_vec(n * la, 3), random_vec(n * lb, 4));
        let mut y = vec![0.0; n * (la + lb)];
        concat_forward(n, &[(&a, la), (&b, lb)], &mut y, Act::Identity);
        for s in 0..n {
            assert_eq!(y[s * 8..s * 8 + 3], a[s * 3..s * 3 + 3]);
            assert_eq!(y[s * 8 + 3..s * 8 + 8], b[s * 5..s * 5 + 5]);
        }
        let (mut da, mut db) = (vec![0.0; n * la], vec![0.0; n * lb]);
        concat_backward(n, &y, &[la, lb], &mut [Share::Write(&mut da), Share::Write(&mut db)]);
        assert_eq!((da, db), (a, b));
    }
}
