//! The integer products of int8 inference: `out[r][c] = Σ w[r][i] · x[c][i]` for signed 8-bit
//! weights `w` (rows of `k` values) and unsigned activations `x` (columns of `k` values), summed
//! in `i32`.
//!
//! Activations are kept in `0..=127` and weights in `-127..=127`, so that a pair of products
//! fits an `i16` (2 · 127 · 127 = 32,258 < 32,767): AVX2's `vpmaddubsw`, which saturates, never
//! does here, and every path computes the exact integer sums, whatever their order. The
//! portable path is plain Rust; the AVX2 path is chosen at run time where the processor has it.

/// The product kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// AVX2: 32 products per `vpmaddubsw`, summed with `vpmaddwd`.
    Avx2,
    /// Plain Rust, for every processor.
    Portable,
}

impl Kernel {
    /// The fastest kernel this processor runs.
    pub fn best() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return Kernel::Avx2;
        }
        Kernel::Portable
    }

    /// Whether this processor runs the kernel.
    pub fn available(self) -> bool {
        match self {
            Kernel::Portable => true,
            Kernel::Avx2 => Kernel::best() == Kernel::Avx2,
        }
    }
}

/// Values per row and column: `k` rounded up to a multiple of 32, the padding zero.
pub(crate) fn padded(k: usize) -> usize {
    k.div_ceil(32) * 32
}

/// `out[r * cols + c] = Σ_i w[r * kp + i] · x[c * kp + i]` over `rows` rows and `cols` columns
/// of `kp` values each (`kp` a multiple of 32).
pub(crate) fn products(kernel: Kernel, w: &[i8], x: &[u8], kp: usize, out: &mut [i32]) {
    let (rows, cols) = (w.len() / kp, x.len() / kp);
    debug_assert!(kp.is_multiple_of(32) && out.len() == rows * cols);
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 if Kernel::Avx2.available() => {
            // SAFETY: the processor has AVX2 (checked above).
            unsafe { avx2::products(w, x, kp, out) }
        }
        _ => portable(w, x, kp, out),
    }
}

fn portable(w: &[i8], x: &[u8], kp: usize, out: &mut [i32]) {
    let cols = x.len() / kp;
    for (r, row) in w.chunks_exact(kp).enumerate() {
        for (c, column) in x.chunks_exact(kp).enumerate() {
            out[r * cols + c] = row.iter().zip(column).map(|(&a, &b)| i32::from(a) * i32::from(b)).sum();
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Rows taken together, so that each column's load serves them all.
    const R: usize = 4;

    #[target_feature(enable = "avx2")]
    pub(super) fn products(w: &[i8], x: &[u8], kp: usize, out: &mut [i32]) {
        let cols = x.len() / kp;
        let rows = w.len() / kp;
        let mut r = 0;
        while r + R <= rows {
            let block: [&[i8]; R] = std::array::from_fn(|i| &w[(r + i) * kp..(r + i + 1) * kp]);
            for (c, column) in x.chunks_exact(kp).enumerate() {
                let sums = dots(block, column);
                for (i, s) in sums.into_iter().enumerate() {
                    out[(r + i) * cols + c] = s;
                }
            }
            r += R;
        }
        for r in r..rows {
            let row = &w[r * kp..(r + 1) * kp];
            for (c, column) in x.chunks_exact(kp).enumerate() {
                out[r * cols + c] = dots([row], column)[0];
            }
        }
    }

    /// The dot products of `N` weight rows with one column.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn dots<const N: usize>(rows: [&[i8]; N], column: &[u8]) -> [i32; N] {
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_si256(); N];
        for (i, x) in column.chunks_exact(32).enumerate() {
            // SAFETY: `x` holds 32 bytes; unaligned loads.
            let xv = unsafe { _mm256_loadu_si256(x.as_ptr().cast()) };
            for (a, row) in acc.iter_mut().zip(rows) {
                // SAFETY: every row holds as many values as the column, a multiple of 32.
                let wv = unsafe { _mm256_loadu_si256(row.as_ptr().add(32 * i).cast()) };
                // u8 · i8 pairs summed into i16 (exact for these ranges), then into i32.
                *a = _mm256_add_epi32(*a, _mm256_madd_epi16(_mm256_maddubs_epi16(xv, wv), ones));
            }
        }
        acc.map(|a| {
            let s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256::<1>(a));
            let s = _mm_hadd_epi32(s, s);
            _mm_cvtsi128_si32(_mm_hadd_epi32(s, s))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values in the ranges the products allow, including their extremes.
    fn values(len: usize, seed: u64, lo: i32, hi: i32) -> Vec<i32> {
        let mut s = seed;
        (0..len)
            .map(|i| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                match i % 7 {
                    0 => hi,
                    1 => lo,
                    _ => lo + ((s >> 33) % (hi - lo + 1) as u64) as i32,
                }
            })
            .collect()
    }

    #[test]
    fn every_kernel_gives_the_exact_sums() {
        for (rows, cols, k) in [(1, 1, 1), (6, 784, 25), (16, 100, 150), (5, 3, 400), (120, 1, 400), (9, 7, 64)] {
            let kp = padded(k);
            let mut w = vec![0i8; rows * kp];
            let mut x = vec![0u8; cols * kp];
            for (r, v) in values(rows * k, 1, -127, 127).chunks(k).enumerate() {
                w[r * kp..r * kp + k].iter_mut().zip(v).for_each(|(w, &v)| *w = v as i8);
            }
            for (c, v) in values(cols * k, 2, 0, 127).chunks(k).enumerate() {
                x[c * kp..c * kp + k].iter_mut().zip(v).for_each(|(x, &v)| *x = v as u8);
            }
            let mut exact = vec![0i64; rows * cols];
            for r in 0..rows {
                for c in 0..cols {
                    exact[r * cols + c] = (0..k).map(|i| w[r * kp + i] as i64 * x[c * kp + i] as i64).sum();
                }
            }
            for kernel in [Kernel::Portable, Kernel::Avx2].into_iter().filter(|k| k.available()) {
                let mut out = vec![0; rows * cols];
                products(kernel, &w, &x, kp, &mut out);
                let out: Vec<i64> = out.into_iter().map(i64::from).collect();
                assert_eq!(out, exact, "{kernel:?} {rows}x{cols}x{k}");
            }
        }
    }

    /// The extremes everywhere: the largest sums a pair of products reaches, in both signs.
    #[test]
    fn extreme_values_do_not_saturate() {
        let kp = 64;
        for weight in [127i8, -127] {
            let (w, x) = (vec![weight; kp], vec![127u8; kp]);
            for kernel in [Kernel::Portable, Kernel::Avx2].into_iter().filter(|k| k.available()) {
                let mut out = [0];
                products(kernel, &w, &x, kp, &mut out);
                assert_eq!(out[0], 64 * 127 * i32::from(weight), "{kernel:?}");
            }
        }
    }
}
