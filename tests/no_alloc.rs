//! After the first step, training allocates nothing: every buffer is sized from the model's
//! constants and kept in its workspace.

mod counting;

use std::sync::atomic::Ordering;

use cnn::{cnn, Adam, Model, MultiTask, Optimizer, PerHead, Sgd, Targets};
use counting::ALLOCATIONS;

cnn! {
    struct LeNet5 <
        input(28x28x1)
        conv(5x5, 6, pad=2) relu pool(2)
        conv(5x5, 16) relu pool(2)
        fc(120) relu fc(84) relu fc(10) softmax
    >
}

cnn! {
    /// Batch normalisation, residual blocks, LRN, dropout, average pooling, a sigmoid output.
    struct Course <
        input(16x16x3)
        conv(3x3, 8, pad=1, bias=false) batchnorm relu
        residual(conv(3x3, 8, pad=1) relu conv(3x3, 8, pad=1) batchnorm) relu
        residual(conv(3x3, 16, stride=2, pad=1) tanh, shortcut=conv(1x1, 16, stride=2)) lrn(3)
        avgpool(2) l2pool(2) fc(32) leaky_relu dropout(0.3) fc(4) sigmoid
    >
}

cnn! {
    /// Branches: inception-like concat blocks, padded pools, groups, relu6 and sparsity.
    struct Inception <
        input(16x16x3)
        conv(3x3, 8, pad=1) relu6 maxpool(3, stride=2, pad=1)
        concat(conv(1x1, 4), conv(1x1, 4) relu conv(3x3, 4, pad=1, groups=2), avgpool(3, stride=1, pad=1) conv(1x1, 4)) relu
        sparsity(0.01)
        concat(fc(6), fc(4) tanh) fc(4) softmax
    >
}

cnn! {
    /// A trunk and three heads, one of them with a sparsity penalty.
    struct Tasks <
        input(12x12x1)
        conv(3x3, 6, pad=1) relu pool(2)
        heads(digit: fc(10) softmax, flags: conv(3x3, 4) sparsity(0.01) fc(3) sigmoid, size: fc(1) loss(mse, weight=2))
    >
}

cnn! {
    /// A strided convolution whose products have 1,521 columns and 32 rows: large enough to
    /// copy panels into the per-thread buffers of the matrix product.
    struct Wide <
        input(79x79x1)
        conv(3x3, 32, stride=2) relu fc(10) softmax
    >
}

/// Allocations made by 20 training steps, forward passes and an evaluation of a model with
/// heads after a first round, then by a step on a smaller batch.
fn heads_allocations_after_the_first_step<M: MultiTask>(mut model: M, opt: &mut dyn Optimizer) -> usize {
    let x: Vec<f32> = (0..64 * M::INPUT_LEN).map(|i| ((i * 7919) % 255) as f32 / 255.0).collect();
    let labels: Vec<Vec<usize>> = M::HEADS.iter().map(|h| (0..64).map(|i| i % h.classes()).collect()).collect();
    let targets = || M::Heads::from_fn(|h| Targets::Labels(&labels[h]));
    model.train_step(opt, &x, targets()).unwrap();
    model.forward(&x).unwrap();
    model.evaluate(&x, targets(), 64).unwrap();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..20 {
        model.train_step(opt, &x, targets()).unwrap();
        model.forward(&x).unwrap();
    }
    model.evaluate(&x, targets(), 64).unwrap();
    let small = M::Heads::from_fn(|h| Targets::Labels(&labels[h][..10]));
    model.train_step(opt, &x[..10 * M::INPUT_LEN], small).unwrap();
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

/// Allocations made by 20 training steps and predictions after a first one, then by a step on
/// a smaller batch.
fn allocations_after_the_first_step<M: Model>(mut model: M, opt: &mut dyn Optimizer) -> usize {
    let x: Vec<f32> = (0..64 * M::INPUT_LEN).map(|i| ((i * 7919) % 255) as f32 / 255.0).collect();
    let labels: Vec<usize> = (0..64).map(|i| i % M::OUTPUT_LEN).collect();
    let mut out = vec![0; 64];
    model.train_step(opt, &x, &labels).unwrap();
    model.predict_into(&x, &mut out).unwrap();
    model.evaluate(&x, &labels, 64).unwrap();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..20 {
        model.train_step(opt, &x, &labels).unwrap();
        model.predict_into(&x, &mut out).unwrap();
    }
    model.evaluate(&x, &labels, 64).unwrap();
    // A smaller batch reuses the same buffers.
    model.train_step(opt, &x[..10 * M::INPUT_LEN], &labels[..10]).unwrap();
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

/// Allocations made by 100 training steps and 100 predictions after warm-up, called as the
/// README's example calls them: from a plain thread, outside any rayon pool.
fn allocations_outside_a_pool<M: Model>(mut model: M, opt: &mut dyn Optimizer) -> usize {
    let x: Vec<f32> = (0..64 * M::INPUT_LEN).map(|i| ((i * 7919) % 255) as f32 / 255.0).collect();
    let labels: Vec<usize> = (0..64).map(|i| i % M::OUTPUT_LEN).collect();
    let mut out = vec![0; 64];
    model.train_step(opt, &x, &labels).unwrap();
    model.predict_into(&x, &mut out).unwrap();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..100 {
        model.train_step(opt, &x, &labels).unwrap();
        model.predict_into(&x, &mut out).unwrap();
    }
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

/// One test, so that no other test allocates while the counter runs.
#[test]
fn training_steps_after_the_first_do_not_allocate() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    pool.install(|| {
        let lenet = allocations_after_the_first_step(LeNet5::with_seed(1), &mut Sgd::new(0.01, 0.9).unwrap());
        assert_eq!(lenet, 0, "LeNet5 with Sgd: {lenet} allocations in 21 steps");
        let course = allocations_after_the_first_step(Course::with_seed(1), &mut Adam::new(0.01).unwrap());
        assert_eq!(course, 0, "Course with Adam: {course} allocations in 21 steps");
        let graph = allocations_after_the_first_step(Inception::with_seed(1), &mut Sgd::new(0.01, 0.9).unwrap());
        assert_eq!(graph, 0, "Inception with Sgd: {graph} allocations in 21 steps");
        let tasks = heads_allocations_after_the_first_step(Tasks::with_seed(1), &mut Adam::new(0.01).unwrap());
        assert_eq!(tasks, 0, "Tasks with Adam: {tasks} allocations in 21 steps");
    });
    // Threads that have run no product yet: the first step gives each its buffer.
    let fresh = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    fresh.install(|| {
        let wide = allocations_after_the_first_step(Wide::with_seed(1), &mut Sgd::new(0.01, 0.9).unwrap());
        assert_eq!(wide, 0, "Wide with Sgd: {wide} allocations in 21 steps");
    });
    // Outside a pool each call enters rayon's global pool once, through its queue of outside
    // jobs, which allocates one block per 63 jobs: at most one allocation in 50 calls.
    assert!(rayon::current_thread_index().is_none());
    let lenet = allocations_outside_a_pool(LeNet5::with_seed(1), &mut Sgd::new(0.01, 0.9).unwrap());
    assert!(lenet <= 4, "LeNet5 with Sgd outside a pool: {lenet} allocations in 200 calls");
    let course = allocations_outside_a_pool(Course::with_seed(1), &mut Adam::new(0.01).unwrap());
    assert!(course <= 4, "Course with Adam outside a pool: {course} allocations in 200 calls");
}
