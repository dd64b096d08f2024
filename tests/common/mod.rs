//! Helpers shared by the integration tests.
#![allow(dead_code)]

/// A tiny xorshift generator, so tests make their own data without dependencies.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [-1, 1).
    pub fn symmetric(&mut self) -> f32 {
        2.0 * self.next_f32() - 1.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_f32() * n as f32) as usize).min(n - 1)
    }

    pub fn vec(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.symmetric()).collect()
    }
}

/// A synthetic image task: `side x side` grey images with a bright line that is horizontal
/// (class 0), vertical (1), diagonal (2) or anti-diagonal (3), at a random place, over noise.
pub fn lines(n: usize, side: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
    let mut rng = Lcg(seed | 1);
    let mut x = vec![0.0; n * side * side];
    let mut labels = Vec::with_capacity(n);
    for (s, img) in x.chunks_exact_mut(side * side).enumerate() {
        let class = s % 4;
        labels.push(class);
        for v in img.iter_mut() {
            *v = 0.3 * rng.next_f32();
        }
        let at = 1 + rng.below(side - 2);
        for i in 0..side {
            let (r, c) = match class {
                0 => (at, i),
                1 => (i, at),
                2 => (i, i),
                _ => (i, side - 1 - i),
            };
            img[r * side + c] = 1.0;
        }
    }
    (x, labels)
}
