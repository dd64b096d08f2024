//! Helpers shared by the kernel tests: seeded data, tolerant comparison, finite differences.

use rand::{RngExt, SeedableRng};

use super::{chunk_count, Layer, Mode};

/// `len` values uniform in [-1, 1) from `seed`.
pub fn random_vec(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Asserts `|got - want| <= tol * max(1, |want|)` element-wise, naming the first bad index.
pub fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * w.abs().max(1.0), "{what}: index {i}: got {g}, want {w}");
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
    assert!(kinks * 20 <= x.len(), "{kinks} of {} coordinates sit on a kink", x.len());
    worst
}

/// Runs `layer` forward on `n` samples; returns its outputs and the state it keeps.
pub fn forward<L: Layer>(layer: &L, n: usize, x: &[f32], p: &[f32]) -> (Vec<f32>, Vec<u32>) {
    forward_in(layer, n, x, p, &mut vec![0.0; L::BUFFERS], Mode::Train { seed: 7 })
}

/// Runs `layer` forward on `n` samples in `mode` with buffers `b`; returns its outputs and
/// the state it keeps.
pub fn forward_in<L: Layer>(
    layer: &L,
    n: usize,
    x: &[f32],
    p: &[f32],
    b: &mut [f32],
    mode: Mode,
) -> (Vec<f32>, Vec<u32>) {
    let mut y = vec![0.0; n * L::OUT];
    let mut scratch = vec![0.0; chunk_count(n) * L::SCRATCH];
    let mut state = vec![0; n * L::STATE];
    layer.forward(n, x, &mut y, p, b, &mut scratch, &mut state, mode);
    (y, state)
}

/// The largest relative errors of `layer`'s input and parameter gradients against finite
/// differences, for the loss `Σ y·r` with random `r`, on `n` random samples.
pub fn layer_gradient_errors<L: Layer>(layer: &L, n: usize, seed: u64) -> (f64, f64) {
    let x = random_vec(n * L::IN, seed);
    let p = random_vec(L::PARAMS, seed + 1);
    gradient_errors_at(layer, n, &x, &p, seed + 2)
}

/// [`layer_gradient_errors`] at the inputs `x` and parameters `p`.
pub fn gradient_errors_at<L: Layer>(layer: &L, n: usize, x: &[f32], p: &[f32], seed: u64) -> (f64, f64) {
    let r = random_vec(n * L::OUT, seed);
    let loss = |x: &[f32], p: &[f32]| -> f64 {
        forward(layer, n, x, p).0.iter().zip(&r).map(|(&y, &r)| y as f64 * r as f64).sum()
    };
    let (y, state) = forward(layer, n, x, p);
    let mut dy = r.clone();
    let mut dx = vec![0.0; n * L::IN];
    let mut dp = vec![0.0; L::PARAMS];
    let count = chunk_count(n);
    let mut scratch = vec![0.0; count * L::SCRATCH];
    let mut partial = vec![0.0; count * L::PARAMS];
    layer.backward(n, x, &y, &mut dy, Some(&mut dx), p, &mut dp, &mut scratch, &mut partial, &state);
    let ex = max_rel_error(&mut x.to_vec(), &dx, |x| loss(x, p));
    let ep = max_rel_error(&mut p.to_vec(), &dp, |p| loss(x, p));
    (ex, ep)
}
