//! What a generated model holds besides its layers, written once for every model.

use core::ops::Range;

use crate::model::{LayerInfo, Noise, TensorInfo, TensorKind};
use crate::optim::Segment;
use crate::prelude::*;
use crate::workspace::Workspace;

/// The values of a generated model: parameters, gradient, buffers, which layers are frozen,
/// where its dropout masks stand and the buffers its passes reuse.
///
/// The model's passes read and write the public fields directly, one field at a time, so that
/// parameters, buffers and workspace can be borrowed together.
#[derive(Clone, Debug)]
pub struct State {
    /// All parameters, as [`Network::params`](crate::Network::params) lays them out.
    pub params: Vec<f32>,
    /// The gradient of the last training pass, laid out as the parameters.
    pub grads: Vec<f32>,
    /// The buffers (batch normalisation's running statistics).
    pub buffers: Vec<f32>,
    /// Where the dropout masks stand.
    pub noise: Noise,
    /// The activations, gradients and scratch of the passes.
    pub workspace: Workspace,
    /// Which rows of the layer table are frozen.
    pub(crate) frozen: Vec<bool>,
    /// The parameter runs an optimizer updates: those of the layers not frozen.
    pub(crate) segments: Vec<Segment>,
    /// What a training step keeps to undo itself.
    pub(crate) undo: Undo,
}

/// Copies a training step keeps to undo itself, reused from step to step.
#[derive(Clone, Debug, Default)]
pub(crate) struct Undo {
    /// The running statistics before the pass.
    pub(crate) buffers: Vec<f32>,
    /// The parameters before an update by an optimizer that cannot check its step beforehand.
    pub(crate) params: Vec<f32>,
    /// That optimizer's state before the update.
    pub(crate) state: Vec<(&'static str, Vec<f32>)>,
}

impl State {
    /// `params` parameters and gradients and `buffers` buffers, all zero; every layer of
    /// `layers` trainable, with the segments of `tensors`; dropout masks from `seed`; an empty
    /// workspace.
    pub fn new(params: usize, buffers: usize, layers: &[LayerInfo], tensors: &[TensorInfo], seed: u64) -> Self {
        let mut state = State {
            params: vec![0.0; params],
            grads: vec![0.0; params],
            buffers: vec![0.0; buffers],
            noise: Noise::new(seed),
            workspace: Workspace::new(),
            frozen: vec![false; layers.len()],
            segments: Vec::new(),
            undo: Undo::default(),
        };
        state.set_frozen(layers, tensors, 0..0, false);
        state
    }

    /// Zeroes the gradient and restarts the dropout masks from `seed`: what re-initialising a
    /// model does besides drawing its parameters and buffers.
    pub fn reset(&mut self, seed: u64) {
        self.grads.fill(0.0);
        self.noise = Noise::new(seed);
    }

    /// Marks rows `range` of `layers` frozen (or not) and recomputes the segments of `tensors`
    /// an optimizer updates.
    pub(crate) fn set_frozen(
        &mut self,
        layers: &[LayerInfo],
        tensors: &[TensorInfo],
        range: Range<usize>,
        frozen: bool,
    ) {
        self.frozen[range].fill(frozen);
        let frozen_at = |offset: usize| {
            layers
                .iter()
                .zip(&self.frozen)
                .any(|(l, &f)| f && l.params > 0 && (l.offset..l.offset + l.params).contains(&offset))
        };
        let mut segments: Vec<Segment> = Vec::new();
        for t in tensors.iter().filter(|t| t.kind.is_param() && !frozen_at(t.offset)) {
            let (start, end, decay) = (t.offset, t.offset + t.len(), t.kind == TensorKind::Weight);
            match segments.last_mut() {
                Some(last) if last.end == start && last.decay == decay => last.end = end,
                _ => segments.push(Segment { start, end, decay }),
            }
        }
        self.segments = segments;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Shape;

    /// `fc(2)` on 3 inputs, then `relu`.
    const LAYERS: &[LayerInfo] = &[
        LayerInfo { layer: "input(3)", path: "", depth: 0, output: Shape::vector(3), params: 0, offset: 0 },
        LayerInfo { layer: "fc(2)", path: "0", depth: 0, output: Shape::vector(2), params: 8, offset: 0 },
        LayerInfo { layer: "relu", path: "1", depth: 0, output: Shape::vector(2), params: 0, offset: 8 },
    ];
    const TENSORS: &[TensorInfo] = &[
        TensorInfo { name: "0.weight", shape: &[2, 3], offset: 0, kind: TensorKind::Weight },
        TensorInfo { name: "0.bias", shape: &[2], offset: 6, kind: TensorKind::Bias },
    ];

    #[test]
    fn a_new_state_is_sized_for_the_model_and_all_zero() {
        let state = State::new(8, 5, LAYERS, TENSORS, 42);
        assert_eq!((state.params.len(), state.grads.len(), state.buffers.len()), (8, 8, 5));
        assert!(state.params.iter().chain(&state.grads).chain(&state.buffers).all(|&v| v == 0.0));
        assert_eq!(state.noise, Noise::new(42));
        assert!(state.workspace.acts().is_empty(), "the workspace is allocated on first use");
        assert_eq!(state.frozen, [false; 3]);
        assert_eq!(
            state.segments,
            [Segment { start: 0, end: 6, decay: true }, Segment { start: 6, end: 8, decay: false }]
        );
    }

    #[test]
    fn reset_zeroes_the_gradient_and_restarts_the_masks_only() {
        let mut state = State::new(8, 2, LAYERS, TENSORS, 1);
        state.params.fill(0.5);
        state.grads.fill(2.0);
        state.buffers.fill(3.0);
        state.noise.next_step();
        state.set_frozen(LAYERS, TENSORS, 1..2, true);
        state.reset(7);
        assert_eq!(state.grads, [0.0; 8]);
        assert_eq!(state.noise, Noise::new(7));
        assert_eq!((state.params, state.buffers), (vec![0.5; 8], vec![3.0; 2]), "the values are the layers' to draw");
        assert!(state.frozen[1] && state.segments.is_empty(), "frozen layers stay frozen");
    }

    #[test]
    fn freezing_a_layer_removes_its_tensors_from_the_segments() {
        let mut state = State::new(8, 0, LAYERS, TENSORS, 0);
        state.set_frozen(LAYERS, TENSORS, 0..3, true);
        assert!(state.segments.is_empty());
        state.set_frozen(LAYERS, TENSORS, 1..2, false);
        assert_eq!(state.frozen, [true, false, true]);
        assert_eq!(state.segments.len(), 2);
    }
}
