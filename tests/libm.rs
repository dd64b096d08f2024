//! Where the maths of the builds without `std` (`libm`, see `cnn-runtime/src/math.rs`) differs
//! from `std`'s (the platform's C library) in the functions the runtime calls, over spread-out
//! samples of the inputs it gives them. `cargo test --test libm -- --nocapture` prints the
//! table; the test fails when a function that is exact in both differs at all, or another by
//! more than one unit in the last place (ulp).

/// Distance in units in the last place between two finite values of one sign.
fn ulps32(a: f32, b: f32) -> u64 {
    if a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()) {
        return 0;
    }
    let key =
        |x: f32| if x.is_sign_negative() { -i64::from(x.to_bits() & 0x7fff_ffff) } else { i64::from(x.to_bits()) };
    key(a).abs_diff(key(b))
}

fn ulps64(a: f64, b: f64) -> u64 {
    if a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()) {
        return 0;
    }
    let key =
        |x: f64| if x.is_sign_negative() { -((x.to_bits() & (u64::MAX >> 1)) as i128) } else { x.to_bits() as i128 };
    key(a).abs_diff(key(b)) as u64
}

/// Inputs of `f32` in `[lo, hi]`: every `step`-th bit pattern of each sign between them.
fn samples32(lo: f32, hi: f32, step: usize) -> impl Iterator<Item = f32> {
    (0..=0x7f80_0000u32)
        .step_by(step)
        .flat_map(|b| [f32::from_bits(b), -f32::from_bits(b)])
        .filter(move |x| (lo..=hi).contains(x))
}

/// Inputs of `f64` in `[lo, hi]`: `n` values spread evenly in bit patterns of each sign.
fn samples64(lo: f64, hi: f64, n: u64) -> impl Iterator<Item = f64> {
    let top = f64::INFINITY.to_bits();
    (0..n)
        .map(move |i| top / n * i)
        .flat_map(|b| [f64::from_bits(b), -f64::from_bits(b)])
        .filter(move |x| (lo..=hi).contains(x))
}

/// (inputs, inputs whose results differ, most ulps apart, largest relative difference of a
/// normal result).
#[derive(Default, Debug)]
struct Tally {
    inputs: u64,
    differ: u64,
    ulps: u64,
    relative: f64,
}

impl Tally {
    /// One input: the results `std` and `libm` gave, `ulps` apart; `normal` when `std`'s is a
    /// normal value of its type.
    fn add(&mut self, ulps: u64, (std, libm): (f64, f64), normal: bool) {
        self.inputs += 1;
        if ulps > 0 {
            self.differ += 1;
            self.ulps = self.ulps.max(ulps);
            // Relative to normal results: one ulp of a subnormal one is a larger fraction.
            if normal {
                self.relative = self.relative.max(((libm - std) / std).abs());
            }
        }
    }
}

#[test]
fn libm_is_within_one_ulp_of_std_and_exact_where_both_are() {
    let mut rows: Vec<(&str, Tally, u64)> = Vec::new();
    let mut f32_row = |name, max, inputs: &mut dyn Iterator<Item = (f32, f32)>| {
        let mut t = Tally::default();
        inputs.for_each(|(s, l)| t.add(ulps32(s, l), (f64::from(s), f64::from(l)), s.is_normal()));
        rows.push((name, t, max));
    };
    // Softmax and sigmoid: `exp` of values up to 0 (softmax) and of either sign (sigmoid).
    f32_row("f32 exp", 1, &mut samples32(-104.0, 89.0, 101).map(|x| (x.exp(), libm::expf(x))));
    // Cross-entropy and binary cross-entropy.
    f32_row("f32 ln", 1, &mut samples32(0.0, f32::MAX, 101).map(|x| (x.ln(), libm::logf(x))));
    f32_row("f32 ln_1p", 1, &mut samples32(-1.0, f32::MAX, 101).map(|x| (x.ln_1p(), libm::log1pf(x))));
    // Local response normalisation: a positive sum to a power in (0, 1).
    f32_row(
        "f32 powf",
        1,
        &mut samples32(1e-30, 1e30, 257).flat_map(|x| [0.1f32, 0.3, 0.75, 0.9].map(|b| (x.powf(b), libm::powf(x, b)))),
    );
    f32_row("f32 sqrt", 0, &mut samples32(0.0, f32::MAX, 101).map(|x| (x.sqrt(), libm::sqrtf(x))));
    f32_row(
        "f32 mul_add",
        0,
        &mut samples32(-1e10, 1e10, 997).map(|x| (x.mul_add(1.000_123_4, -0.5), libm::fmaf(x, 1.000_123_4, -0.5))),
    );
    let mut f64_row = |name, max, inputs: &mut dyn Iterator<Item = (f64, f64)>| {
        let mut t = Tally::default();
        inputs.for_each(|(s, l)| t.add(ulps64(s, l), (s, l), s.is_normal()));
        rows.push((name, t, max));
    };
    // The optimizers' bias corrections and the schedules.
    f64_row("f64 exp", 1, &mut samples64(-700.0, 700.0, 1 << 21).map(|x| (x.exp(), libm::exp(x))));
    f64_row("f64 powf", 1, &mut samples64(0.0, 1.0, 1 << 21).map(|x| (x.powf(12345.5), libm::pow(x, 12345.5))));
    f64_row("f64 cos", 1, &mut samples64(-10.0, 10.0, 1 << 21).map(|x| (x.cos(), libm::cos(x))));
    f64_row("f64 sqrt", 0, &mut samples64(0.0, f64::MAX, 1 << 21).map(|x| (x.sqrt(), libm::sqrt(x))));
    println!("{:<12} {:>10} {:>8} {:>5} {:>10}", "function", "inputs", "differ", "ulps", "relative");
    for (name, t, _) in &rows {
        println!("{name:<12} {:>10} {:>8} {:>5} {:>10.2e}", t.inputs, t.differ, t.ulps, t.relative);
    }
    let over: Vec<_> = rows.iter().filter(|(_, t, max)| t.ulps > *max).collect();
    assert!(over.is_empty(), "{over:?}");
}
