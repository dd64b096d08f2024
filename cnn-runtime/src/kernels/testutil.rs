//! Helpers shared by the kernel tests: seeded data, tolerant comparison, finite differences.

use rand::{RngExt, SeedableRng};

/// `len` values uniform in [-1, 1) from `seed`.
pub fn random_vec(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Asserts `|got - want| <= tol * max(1, |want|)` element-wise, naming the first bad index.
pub fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * w.abs().max(1.0),
            "{what}: index {i}: got {g}, want {w}"
        );
    }
}

/// Largest relative error `|num - a| / max(|num| + |a|, 0.1)` between an analytic gradient
/// and central finite differences of `loss` around `x` (f32 evaluations summed in f64), over
/// all coordinates where `loss` is smooth.
///
/// A coordinate whose step crosses a kink (ReLU at 0, a max-pool tie) has one-sided slopes that
/// disagree; it is skipped, and the check fails if more than 5 % of coordinates are.
pub fn max_rel_error(x: &mut [f32], analytic: &[f32], mut loss: impl FnMut(&[f32]) -> f64) -> f64 {
    let h = 1e-3f32;
    let base = loss(x);
    let (mut worst, mut kinks) = (0.0f64, 0usize);
    for i in 0..x.len() {
        let orig = x[i];
        x[i] = orig + h;
        let up = loss(x);
        x[i] = orig - h;
        let down = loss(x);
        x[i] = orig;
        let (right, left) = ((up - base) / h as f64, (base - down) / h as f64);
        if (right - left).abs() > 0.1 * (right.abs() + left.abs()).max(0.1) {
            kinks += 1;
            continue;
        }
        let numeric = (up - down) / (2.0 * h as f64);
        let a = analytic[i] as f64;
        let err = (numeric - a).abs() / (numeric.abs() + a.abs()).max(0.1);
        if err > worst && std::env::var_os("CNN_GRADCHECK_VERBOSE").is_some() {
            eprintln!("coordinate {i}: numeric {numeric:e}, analytic {a:e}");
        }
        worst = worst.max(err);
    }
    assert!(
        kinks * 20 <= x.len(),
        "{kinks} of {} coordinates sit on a kink",
        x.len()
    );
    worst
}
