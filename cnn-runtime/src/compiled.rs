//! The plumbing between the code `cnn!` generates and the [`Network`] and [`Model`] traits. Not
//! a public API: it may change in any release.
//!
//! A generated model implements [`Compiled`] with what only the macro knows (its layers and
//! their passes) and keeps everything else in a [`State`]; [`Network`] and [`Model`] are written
//! once on top of both.

use crate::init::{splitmix, Rng};
use crate::kernels::{Mode, Targets};
use crate::{Model, MultiTask, Network, PerHead};

pub use crate::state::State;
pub use crate::workspace::{Workspace, WorkspaceParts, WorkspaceSizes};

/// What the `cnn!` macro implements for each model.
pub trait Compiled {
    /// The activation buffers of a pass in the order the workspace holds them (one per node
    /// after the input): for each, the row of [`Network::LAYERS`] that writes it and its values
    /// per sample. The outputs follow them, output after output.
    const ACTIVATIONS: &'static [(usize, usize)];

    /// The model's outputs (one, or one per head): for each, the index in
    /// [`ACTIVATIONS`](Compiled::ACTIVATIONS) of the activation its output function reads (its
    /// logits) and its values per sample.
    const OUTPUTS: &'static [(usize, usize)];

    /// The model's values.
    fn state(&self) -> &State;

    /// The model's values, mutable.
    fn state_mut(&mut self) -> &mut State;

    /// Draws every layer's parameters and buffers from `rng`, as PyTorch initialises them.
    fn init_layers(&mut self, rng: Rng);

    /// The forward pass over the `n` samples of `x`, in training mode when `train` holds the
    /// pass's seed: leaves every activation and then the outputs in the workspace, as
    /// [`ACTIVATIONS`](Compiled::ACTIVATIONS) lays them out.
    fn forward_pass(&mut self, n: usize, x: &[f32], train: Option<u64>);

    /// The backward pass over the `n` samples of `x` against `targets(i)` for output `i`, right
    /// after the forward pass of that batch: leaves the gradient in [`State::grads`] and returns
    /// the training loss (the outputs' weighted mean losses and the sparsity penalties).
    fn backward_pass<'t>(&mut self, n: usize, x: &[f32], targets: &dyn Fn(usize) -> Targets<'t>) -> f32;
}

/// The logits and the outputs of output `output` of a batch of `n` samples in `acts`, the
/// activations of a pass of an `N`.
pub(crate) fn output_of<N: Compiled + ?Sized>(acts: &[f32], output: usize, n: usize) -> (&[f32], &[f32]) {
    output_in(acts, N::ACTIVATIONS, N::OUTPUTS, output, n)
}

/// [`output_of`] for the tables `activations` and `outputs` of [`Compiled`].
fn output_in<'a>(
    acts: &'a [f32],
    activations: &[(usize, usize)],
    outputs: &[(usize, usize)],
    output: usize,
    n: usize,
) -> (&'a [f32], &'a [f32]) {
    let (node, len) = outputs[output];
    let at = |nodes: &[(usize, usize)]| n * nodes.iter().map(|&(_, len)| len).sum::<usize>();
    let (logits, values) = (at(&activations[..node]), at(activations) + at(&outputs[..output]));
    (&acts[logits..logits + n * len], &acts[values..values + n * len])
}

/// Every activation of the last pass, laid out as [`Compiled::ACTIVATIONS`] says.
pub fn activations<N: Network>(model: &N) -> &[f32] {
    model.state().workspace.acts()
}

/// The forward pass over `n` samples without checks, in evaluation mode: the `n * OUTPUT_LEN`
/// values before the output function (softmax, sigmoid) and the outputs.
pub fn forward_pair_unchecked<'a, M: Model>(model: &'a mut M, n: usize, x: &[f32]) -> (&'a [f32], &'a [f32]) {
    model.forward_pass(n, x, None);
    output_of::<M>(activations(model), 0, n)
}

/// The forward pass over `n` samples without checks, in evaluation mode: the `n * OUTPUT_LEN`
/// outputs.
pub fn forward_unchecked<'a, M: Model>(model: &'a mut M, n: usize, x: &[f32]) -> &'a [f32] {
    forward_pair_unchecked(model, n, x).1
}

/// The forward and backward passes over `n` samples without checks, in training mode, with
/// the next dropout masks: leaves the gradient in [`Network::grads`] and returns the mean loss.
pub fn backward_unchecked<'t, N: Network>(
    model: &mut N,
    n: usize,
    x: &[f32],
    targets: &dyn Fn(usize) -> Targets<'t>,
) -> f32 {
    let seed = model.state_mut().noise.next_step();
    model.forward_pass(n, x, Some(seed));
    model.backward_pass(n, x, targets)
}

/// The most probable class of each head for one sample `x` (which has the model's input
/// length): what the generated `classify` of a model with heads returns.
pub fn classify_heads<M: MultiTask>(model: &mut M, x: &[f32]) -> M::Heads<usize> {
    crate::kernels::in_pool(|| model.forward_pass(1, x, None));
    let acts = activations(model);
    M::Heads::from_fn(|h| M::HEADS[h].loss.classify(output_of::<M>(acts, h, 1).1))
}

/// The mode of op `index` in a pass: training with a seed of its own (from the pass's seed),
/// or evaluation.
pub fn mode(train: Option<u64>, index: u64) -> Mode {
    match train {
        Some(seed) => Mode::Train { seed: splitmix(seed ^ splitmix(index)) },
        None => Mode::Eval,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LayerInfo, Loss, Noise, Shape, TensorInfo};

    #[test]
    fn each_output_reads_its_logits_and_the_outputs_follow_the_activations() {
        // Two samples: nodes of 3 and 2 values per sample, then 2 outputs.
        let acts: Vec<f32> = (0..14).map(|v| v as f32).collect();
        let one = [(1, 2)];
        let (z, out) = output_in(&acts, &[(1, 3), (2, 2)], &one, 0, 2);
        assert_eq!(z, [6.0, 7.0, 8.0, 9.0]);
        assert_eq!(out, [10.0, 11.0, 12.0, 13.0]);
        let (z, out) = output_in(&acts, &[(1, 3), (2, 2)], &one, 0, 1);
        assert_eq!((z, out), (&[3.0, 4.0][..], &[5.0, 6.0][..]), "a smaller batch reads the front");
        // Two heads on one sample: nodes of 2, 1 and 3 values; the heads read nodes 1 and 2.
        let acts: Vec<f32> = (0..10).map(|v| v as f32).collect();
        let heads = [(1, 1), (2, 3)];
        let activations = [(1, 2), (2, 1), (3, 3)];
        assert_eq!(output_in(&acts, &activations, &heads, 0, 1), (&[2.0][..], &[6.0][..]));
        assert_eq!(output_in(&acts, &activations, &heads, 1, 1), (&[3.0, 4.0, 5.0][..], &[7.0, 8.0, 9.0][..]));
    }

    /// A model of one node of 2 values per sample, whose forward pass writes `x + 1` there and
    /// its double as the outputs, and whose backward pass sets every gradient to the seed's
    /// parity.
    #[derive(Clone)]
    struct Double {
        state: State,
        seeds: Vec<Option<u64>>,
    }

    const SIZES: WorkspaceSizes = WorkspaceSizes { acts: 4, grad: 2, state: 0, scratch: 0, partial: 0 };

    impl Compiled for Double {
        const ACTIVATIONS: &'static [(usize, usize)] = &[(1, 2)];
        const OUTPUTS: &'static [(usize, usize)] = &[(0, 2)];

        fn state(&self) -> &State {
            &self.state
        }

        fn state_mut(&mut self) -> &mut State {
            &mut self.state
        }

        fn init_layers(&mut self, mut rng: Rng) {
            crate::init::pytorch_default(&mut self.state.params, 2, &mut rng);
        }

        fn forward_pass(&mut self, n: usize, x: &[f32], train: Option<u64>) {
            self.seeds.push(train);
            let ws = self.state.workspace.parts(n, &SIZES);
            let (a, out) = ws.acts.split_at_mut(n * 2);
            for ((a, o), x) in a.iter_mut().zip(&mut out[..n * 2]).zip(x) {
                *a = x + 1.0;
                *o = 2.0 * *a;
            }
        }

        fn backward_pass<'t>(&mut self, n: usize, _x: &[f32], _targets: &dyn Fn(usize) -> Targets<'t>) -> f32 {
            let ws = self.state.workspace.training_parts(n, &SIZES);
            assert_eq!(ws.acts[0], 2.0, "the forward pass of the batch ran first");
            self.state.grads.fill(1.0);
            0.25
        }
    }

    impl Network for Double {
        const INPUT: Shape = Shape::vector(2);
        const INPUT_LEN: usize = 2;
        const PARAM_COUNT: usize = 3;
        const BUFFER_COUNT: usize = 1;
        const MIN_TRAIN_BATCH: usize = 1;
        const FLOPS_PER_SAMPLE: u64 = 0;
        const LAYERS: &'static [LayerInfo] = &[];
        const TENSORS: &'static [TensorInfo] = &[];
        const GRAPH: &'static [crate::graph::Node] = &[];
        const SUMMARY: &'static str = "";
        const PYTORCH: &'static str = "";
        const DSL: &'static str = "";
    }

    impl Model for Double {
        const OUTPUT_LEN: usize = 2;
        const LOSS: Loss = Loss::MeanSquaredError;
    }

    fn double() -> Double {
        let mut model = Double { state: State::new(3, 1, &[], &[], 5), seeds: Vec::new() };
        model.init(5);
        model
    }

    #[test]
    fn the_model_methods_read_and_write_the_state() {
        let mut model = double();
        assert_eq!((model.params().len(), model.grads().len(), model.buffers().len()), (3, 3, 1));
        assert!(model.params().iter().all(|p| p.abs() <= 1.0 / 2f32.sqrt() && *p != 0.0), "init drew them");
        let drawn = model.params().to_vec();
        model.params_mut()[0] = 9.0;
        model.buffers_mut()[0] = 4.0;
        assert_eq!((model.state().params[0], model.state().buffers[0]), (9.0, 4.0));
        model.set_noise(Noise { seed: 3, step: 8 });
        assert_eq!(model.noise(), Noise { seed: 3, step: 8 });

        model.state_mut().grads.fill(6.0);
        model.init(5);
        assert_eq!(model.params(), drawn, "the same seed draws the same parameters");
        assert_eq!(model.grads(), [0.0; 3]);
        assert_eq!(model.noise(), Noise::new(5));
    }

    #[test]
    fn the_passes_return_the_logits_and_outputs_and_step_the_masks() {
        let mut model = double();
        let (z, out) = forward_pair_unchecked(&mut model, 2, &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!((z, out), (&[2.0, 3.0, 4.0, 5.0][..], &[4.0, 6.0, 8.0, 10.0][..]));
        assert_eq!(forward_unchecked(&mut model, 1, &[1.0, 0.0]), [4.0, 2.0]);
        assert_eq!(activations(&model)[..2], [2.0, 1.0]);

        let seed = Noise::new(5).next_step();
        assert_eq!(backward_unchecked(&mut model, 1, &[1.0, 0.0], &|_| Targets::Dense(&[0.0, 0.0])), 0.25);
        assert_eq!(model.grads(), [1.0; 3]);
        assert_eq!(model.noise().step, 1);
        assert_eq!(model.seeds, [None, None, Some(seed)], "only the training pass has a seed");
    }
}
