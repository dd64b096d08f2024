//! The integer products of int8 inference: `out[c][r] = Σ w[r][i] · x[c][i]` for signed 8-bit
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
    /// AVX2: 32 products per `vpmaddubsw` (4 values of a column times 4 of each of 8 rows),
    /// summed into `i32` with `vpmaddwd`.
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

/// Values per row and column: `k` rounded up to a multiple of 4, the padding zero.
pub(crate) fn padded(k: usize) -> usize {
    k.div_ceil(4) * 4
}

/// Rows of the products taken together: the output rows are `rows` rounded up to it.
pub(crate) const GROUP: usize = 8;

/// The weights `w` (`rows` of `kp`) in the order the AVX2 kernel reads them: groups of
/// [`GROUP`] rows (the last one filled with zero rows), and within a group, for each run of 4
/// values, those 4 values of each row in turn.
pub(crate) fn pack(w: &[i8], kp: usize) -> Vec<i8> {
    let rows = w.len() / kp;
    let groups = rows.div_ceil(GROUP);
    let mut packed = vec![0; groups * GROUP * kp];
    for g in 0..groups {
        for t in 0..kp / 4 {
            for r in 0..GROUP.min(rows - g * GROUP) {
                let from = (g * GROUP + r) * kp + 4 * t;
                let to = (g * kp / 4 + t) * 4 * GROUP + 4 * r;
                packed[to..to + 4].copy_from_slice(&w[from..from + 4]);
            }
        }
    }
    packed
}

/// `out[c * rows_padded + r] = Σ_i w[r * kp + i] · x[c * kp + i]` for each column `c` of `x`
/// and row `r` of `w` (`rows_padded`, the rows rounded up to [`GROUP`]; the rows past them are
/// left as they are). `packed` is `w` as [`pack`] lays it out.
pub(crate) fn products(kernel: Kernel, w: &[i8], packed: &[i8], x: &[u8], kp: usize, out: &mut [i32]) {
    let (rows, cols) = (w.len() / kp, x.len() / kp);
    let stride = rows.div_ceil(GROUP) * GROUP;
    debug_assert!(kp.is_multiple_of(4) && out.len() == cols * stride && packed.len() == stride * kp);
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 if Kernel::Avx2.available() => {
            // SAFETY: the processor has AVX2 (checked above).
            unsafe { avx2::products(packed, x, kp, stride, out) }
        }
        _ => portable(w, x, kp, stride, out),
    }
}

fn portable(w: &[i8], x: &[u8], kp: usize, stride: usize, out: &mut [i32]) {
    for (column, out) in x.chunks_exact(kp).zip(out.chunks_exact_mut(stride)) {
        for (row, o) in w.chunks_exact(kp).zip(out.iter_mut()) {
            *o = row.iter().zip(column).map(|(&a, &b)| i32::from(a) * i32::from(b)).sum();
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::GROUP;

    /// Columns taken together, so that each load of a group's weights serves them all.
    const COLUMNS: usize = 4;

    /// For each group of 8 rows and each block of up to 4 columns: 8 × 4 sums in registers,
    /// each step adding 4 values of a column (broadcast) times 4 values of each of the 8 rows.
    #[target_feature(enable = "avx2")]
    pub(super) fn products(packed: &[i8], x: &[u8], kp: usize, stride: usize, out: &mut [i32]) {
        let cols = x.len() / kp;
        for (g, weights) in packed.chunks_exact(GROUP * kp).enumerate() {
            let mut c = 0;
            while c + COLUMNS <= cols {
                block::<COLUMNS>(weights, &x[c * kp..], kp, &mut out[c * stride + g * GROUP..], stride);
                c += COLUMNS;
            }
            while c < cols {
                block::<1>(weights, &x[c * kp..], kp, &mut out[c * stride + g * GROUP..], stride);
                c += 1;
            }
        }
    }

    /// The 8 rows of one group against `N` columns starting at `x`, stored at `out` and every
    /// `stride` values after.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn block<const N: usize>(weights: &[i8], x: &[u8], kp: usize, out: &mut [i32], stride: usize) {
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_si256(); N];
        for (t, w) in weights.chunks_exact(4 * GROUP).enumerate() {
            // SAFETY: `w` holds 32 bytes; unaligned load.
            let w = unsafe { _mm256_loadu_si256(w.as_ptr().cast()) };
            for (j, a) in acc.iter_mut().enumerate() {
                let at = j * kp + 4 * t;
                let v = i32::from_le_bytes([x[at], x[at + 1], x[at + 2], x[at + 3]]);
                // u8 · i8 pairs summed into i16 (exact for these ranges), then pairs into i32.
                let products = _mm256_maddubs_epi16(_mm256_set1_epi32(v), w);
                *a = _mm256_add_epi32(*a, _mm256_madd_epi16(products, ones));
            }
        }
        for (j, a) in acc.iter().enumerate() {
            let o = &mut out[j * stride..j * stride + GROUP];
            // SAFETY: `o` holds 8 values; unaligned store.
            unsafe { _mm256_storeu_si256(o.as_mut_ptr().cast(), *a) };
        }
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
            let (packed, stride) = (pack(&w, kp), rows.div_ceil(GROUP) * GROUP);
            for kernel in [Kernel::Portable, Kernel::Avx2].into_iter().filter(|k| k.available()) {
                let mut out = vec![0; stride * cols];
                products(kernel, &w, &packed, &x, kp, &mut out);
                let out: Vec<i64> = out.chunks(stride).flat_map(|c| c[..rows].iter().map(|&v| i64::from(v))).collect();
                let exact: Vec<i64> =
                    (0..cols).flat_map(|c| (0..rows).map(move |r| (r, c))).map(|(r, c)| exact[r * cols + c]).collect();
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
                let mut out = [0; GROUP];
                products(kernel, &w, &pack(&w, kp), &x, kp, &mut out);
                assert_eq!(out[0], 64 * 127 * i32::from(weight), "{kernel:?}");
            }
        }
    }
}
