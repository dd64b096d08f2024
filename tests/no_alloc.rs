//! After the first step, training allocates nothing: every buffer is sized from the model's
//! constants and kept in its workspace.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use cnn::{cnn, Model, Sgd};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

cnn! {
    struct LeNet5 <
        input(28x28x1)
        conv(5x5, 6, pad=2) relu pool(2)
        conv(5x5, 16) relu pool(2)
        fc(120) relu fc(84) relu fc(10) softmax
    >
}

#[test]
fn training_steps_after_the_first_do_not_allocate() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    pool.install(|| {
        let mut model = LeNet5::with_seed(1);
        let mut opt = Sgd::new(0.01, 0.9).unwrap();
        let x: Vec<f32> = (0..64 * 784).map(|i| ((i * 7919) % 255) as f32 / 255.0).collect();
        let labels: Vec<usize> = (0..64).map(|i| i % 10).collect();
        let mut out = vec![0; 64];
        model.train_step(&mut opt, &x, &labels).unwrap();
        model.predict_into(&x, &mut out).unwrap();
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..20 {
            model.train_step(&mut opt, &x, &labels).unwrap();
            model.predict_into(&x, &mut out).unwrap();
        }
        // A smaller batch reuses the same buffers.
        model.train_step(&mut opt, &x[..10 * 784], &labels[..10]).unwrap();
        let after = ALLOCATIONS.load(Ordering::Relaxed);
        assert_eq!(after - before, 0, "{} allocations in 21 steps", after - before);
    });
}
