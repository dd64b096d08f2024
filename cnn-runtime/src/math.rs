//! The floating-point functions that `core` lacks, for the builds without `std`: the same
//! method names as `std`'s, computed by `libm`, so that call sites read the same in both
//! builds (with `std`, its inherent methods are used and this module is empty).
//!
//! `sqrt` and `mul_add` are exact in both (correctly rounded, as IEEE 754 asks), and
//! `powi` repeats squarings as the compiler's runtime does for `std`. `exp`, `ln`, `ln_1p`,
//! `powf` and `cos` are not correctly rounded by either library and may differ from the platform's
//! `libm` that `std` calls in the last bit for some inputs (`tests/libm.rs` of the `cnn` package
//! measures by how much).

/// `std`'s floating-point methods that `core` does not have.
#[cfg(not(feature = "std"))]
pub(crate) trait Float: Sized {
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn ln_1p(self) -> Self;
    fn sqrt(self) -> Self;
    fn powf(self, n: Self) -> Self;
    fn powi(self, n: i32) -> Self;
    fn cos(self) -> Self;
    fn mul_add(self, a: Self, b: Self) -> Self;
}

/// `x` to the power `n` by repeated squaring, as the compiler's runtime (`__powisf2`,
/// `__powidf2`) computes `std`'s `powi`.
#[cfg(not(feature = "std"))]
macro_rules! powi {
    ($x:expr, $n:expr) => {{
        let (mut x, mut n, mut r) = ($x, $n, 1.0);
        let recip = n < 0;
        loop {
            if n & 1 != 0 {
                r *= x;
            }
            n /= 2;
            if n == 0 {
                break;
            }
            x *= x;
        }
        if recip {
            1.0 / r
        } else {
            r
        }
    }};
}

#[cfg(not(feature = "std"))]
macro_rules! float {
    ($t:ty, $exp:ident, $ln:ident, $ln_1p:ident, $sqrt:ident, $pow:ident, $cos:ident, $fma:ident) => {
        impl Float for $t {
            fn exp(self) -> Self {
                libm::$exp(self)
            }
            fn ln(self) -> Self {
                libm::$ln(self)
            }
            fn ln_1p(self) -> Self {
                libm::$ln_1p(self)
            }
            fn sqrt(self) -> Self {
                libm::$sqrt(self)
            }
            fn powf(self, n: Self) -> Self {
                libm::$pow(self, n)
            }
            fn powi(self, n: i32) -> Self {
                powi!(self, n)
            }
            fn cos(self) -> Self {
                libm::$cos(self)
            }
            fn mul_add(self, a: Self, b: Self) -> Self {
                libm::$fma(self, a, b)
            }
        }
    };
}

#[cfg(not(feature = "std"))]
float!(f32, expf, logf, log1pf, sqrtf, powf, cosf, fmaf);
#[cfg(not(feature = "std"))]
float!(f64, exp, log, log1p, sqrt, pow, cos, fma);
