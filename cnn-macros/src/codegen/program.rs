//! The forward program: the layers lowered to steps over *nodes*, one activation buffer each
//! (node 0 is the input batch). Each kernel step reads one node and writes a new one, with the
//! activation that follows a `conv`, `fc`, `batchnorm` or block fused into it; a residual block
//! ends in a step that adds two nodes. The loss absorbs the model's output function (softmax,
//! or the sigmoid of binary cross-entropy). A model with heads has one output node per head,
//! each with its own loss.

use cnn_shape::Shape;

use crate::check::Checked;
use crate::ir::{ActKind, Kind, Layer, LossKind, Model};

/// A runtime layer called by the generated code, with the sizes the macro expects of it.
pub struct Kernel<'a> {
    /// The layer it runs; `None` for the identity that copies the input when nothing else runs.
    pub layer: Option<&'a Layer>,
    /// What it reads.
    pub input: Shape,
    /// The activation fused into it.
    pub act: Option<ActKind>,
    /// Values per sample it reads and writes.
    pub inputs: usize,
    /// Values per sample it writes.
    pub outputs: usize,
    /// Its parameters and buffers (a block's: all of its layers').
    pub params: usize,
    /// Its buffers (batch normalisation's running statistics).
    pub buffers: usize,
}

/// One step of the program.
pub enum Op<'a> {
    /// A runtime layer reading node `input` and writing node `output`.
    Layer { kernel: Kernel<'a>, input: usize, output: usize },
    /// `output = act(a + b)`, the end of a residual block (`a` its body, `b` its shortcut).
    Add { a: usize, b: usize, output: usize, act: Option<ActKind> },
    /// `output = act(concat(inputs))`, the end of a concat block: its branches' outputs stacked.
    Concat { inputs: Vec<usize>, output: usize, act: Option<ActKind> },
}

/// One output of the model (the model's own, or a head's), before its loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Output {
    /// The node holding it.
    pub node: usize,
    /// Its loss.
    pub loss: LossKind,
    /// The loss's weight in the training loss.
    pub weight: f32,
}

/// The lowered program: node sizes (values per sample) and steps in forward order.
pub struct Program<'a> {
    /// Values per sample of each node.
    pub nodes: Vec<usize>,
    /// The [`Layer::id`] of the layer that writes each node (node 0: the input layer).
    pub writers: Vec<usize>,
    /// The steps, in forward order.
    pub ops: Vec<Op<'a>>,
    /// The model's outputs before their losses: one, or one per head in order.
    pub outputs: Vec<Output>,
    /// Total parameters.
    pub params: usize,
    /// Total buffers.
    pub buffers: usize,
}

/// Whether `layer` is the model's output function or loss, which the loss computation absorbs.
fn absorbed(layer: &Layer, loss: LossKind, is_last: bool) -> bool {
    match layer.kind {
        Kind::Softmax | Kind::Loss(..) => true,
        Kind::Act(ActKind::Sigmoid) => is_last && loss == LossKind::Bce,
        _ => false,
    }
}

/// The index in `layers`, the end of a model or head, of the last layer that is not a `loss`.
fn last_real(layers: &[Layer]) -> Option<usize> {
    layers.iter().rposition(|l| !matches!(l.kind, Kind::Loss(..)))
}

/// Parameters and buffers of a layer reading `input` (a block's: all of its layers').
pub fn sizes(layer: &Layer, checked: &Checked) -> (usize, usize) {
    let input = checked.input(layer);
    match &layer.kind {
        Kind::Conv { filter, filters, bias, groups, .. } => {
            (filters * (input.d / groups * filter.w * filter.h + usize::from(*bias)), 0)
        }
        Kind::Fc { out, bias } => (out * (input.len() + usize::from(*bias)), 0),
        Kind::BatchNorm => {
            let c = input.channels().0;
            (2 * c, 2 * c + 1)
        }
        Kind::Residual | Kind::Concat | Kind::Heads { .. } => {
            layer.branches.iter().flatten().map(|l| sizes(l, checked)).fold((0, 0), |(p, b), (q, c)| (p + q, b + c))
        }
        _ => (0, 0),
    }
}

impl<'a> Program<'a> {
    /// The program of a checked model.
    pub fn lower(model: &'a Model, checked: &Checked) -> Self {
        let input = &model.layers[0];
        let len = checked.output(input).len();
        let mut program = Program {
            nodes: vec![len],
            writers: vec![input.id],
            ops: Vec::new(),
            outputs: Vec::new(),
            params: 0,
            buffers: 0,
        };
        let layers = &model.layers[1..];
        if let Some((heads, trunk)) = layers.split_last().filter(|(l, _)| matches!(l.kind, Kind::Heads { .. })) {
            let node = program.list(trunk, 0, checked.loss, checked, None);
            for (head, &(loss, weight)) in heads.branches.iter().zip(&checked.heads) {
                let node = program.list(head, node, loss, checked, last_real(head));
                program.outputs.push(Output { node, loss, weight });
            }
            return program;
        }
        let node = program.list(layers, 0, checked.loss, checked, last_real(layers));
        let node = if program.ops.is_empty() {
            // The loss reads its input from the workspace: an identity layer copies it there.
            let kernel = Kernel {
                layer: None,
                input: checked.output(input),
                act: None,
                inputs: len,
                outputs: len,
                params: 0,
                buffers: 0,
            };
            let output = program.node(len, input.id);
            program.ops.push(Op::Layer { kernel, input: 0, output });
            output
        } else {
            node
        };
        program.outputs.push(Output { node, loss: checked.loss, weight: 1.0 });
        program
    }

    /// Values per sample of output `i`.
    pub fn output_len(&self, i: usize) -> usize {
        self.nodes[self.outputs[i].node]
    }

    /// A new node of `len` values per sample, written by layer `writer`.
    fn node(&mut self, len: usize, writer: usize) -> usize {
        self.nodes.push(len);
        self.writers.push(writer);
        self.nodes.len() - 1
    }

    /// Lowers `layers` reading node `node`; returns the node of their output. `last` is the index
    /// in `layers` of the last layer of an output trained with `loss`, when this list holds it.
    fn list(
        &mut self,
        layers: &'a [Layer],
        mut node: usize,
        loss: LossKind,
        checked: &Checked,
        last: Option<usize>,
    ) -> usize {
        let mut i = 0;
        while i < layers.len() {
            let layer = &layers[i];
            i += 1;
            if absorbed(layer, loss, Some(i - 1) == last) || layer.kind.is_input() {
                continue;
            }
            let next = layers.get(i).filter(|l| !absorbed(l, loss, Some(i) == last));
            let fusable = matches!(
                layer.kind,
                Kind::Conv { .. } | Kind::Fc { .. } | Kind::BatchNorm | Kind::Residual | Kind::Concat
            );
            let act = match next.map(|l| &l.kind) {
                Some(Kind::Act(a)) if fusable => {
                    i += 1;
                    Some(*a)
                }
                _ => None,
            };
            node = match layer.kind {
                Kind::Residual => self.residual(layer, node, checked, act),
                Kind::Concat => self.concat(layer, node, checked, act),
                _ => self.layer(layer, node, checked, act),
            };
        }
        node
    }

    /// Lowers a `residual` block reading node `node`, its sum activated by `act`.
    fn residual(&mut self, layer: &'a Layer, node: usize, checked: &Checked, act: Option<ActKind>) -> usize {
        let a = self.list(layer.body(), node, checked.loss, checked, None);
        let b = self.list(layer.shortcut(), node, checked.loss, checked, None);
        let output = self.node(checked.output(layer).len(), layer.id);
        self.ops.push(Op::Add { a, b, output, act });
        output
    }

    /// Lowers a `concat` block reading node `node`, its stacked output activated by `act`.
    fn concat(&mut self, layer: &'a Layer, node: usize, checked: &Checked, act: Option<ActKind>) -> usize {
        let inputs = layer.branches.iter().map(|b| self.list(b, node, checked.loss, checked, None)).collect();
        let output = self.node(checked.output(layer).len(), layer.id);
        self.ops.push(Op::Concat { inputs, output, act });
        output
    }

    /// Lowers a kernel layer reading node `node`, with `act` fused into it.
    fn layer(&mut self, layer: &'a Layer, node: usize, checked: &Checked, act: Option<ActKind>) -> usize {
        let (params, buffers) = sizes(layer, checked);
        let (input, output) = (checked.input(layer), checked.output(layer));
        let out = self.node(output.len(), layer.id);
        let kernel =
            Kernel { layer: Some(layer), input, act, inputs: input.len(), outputs: output.len(), params, buffers };
        self.ops.push(Op::Layer { kernel, input: node, output: out });
        self.params += params;
        self.buffers += buffers;
        out
    }
}

/// Where a backward step writes the gradient of its input node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dx {
    /// Nowhere: the input is the batch, whose gradient nobody reads.
    Skip,
    /// Into this slot, which then holds the node's gradient.
    Write(usize),
    /// Into the slot `tmp`, then added to the slot `into` that already holds part of the node's
    /// gradient (a node read twice, by a block's body and its shortcut).
    Accumulate { tmp: usize, into: usize },
}

/// One step of the backward pass, in the order it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Back {
    /// The backward of kernel step `op`, reading its output gradient from slot `dy`.
    Layer { op: usize, dy: usize, dx: Dx },
    /// The backward of the sum of step `op`: its activation's gradient in place in slot `dy`,
    /// which then becomes the body's gradient; the shortcut's gets a copy (`Write`) or a sum
    /// (`Accumulate { tmp: dy, .. }`), or nothing when the shortcut is the batch (`Skip`).
    Add { op: usize, dy: usize, shortcut: Dx },
    /// The backward of the concatenation of step `op`: its activation's gradient in place in
    /// slot `dy`, then each branch's part copied (`Write`) or added (`Accumulate { tmp: dy, .. }`)
    /// to its output's gradient, or left out for the batch (`Skip`).
    Concat { op: usize, dy: usize, parts: Vec<Dx> },
}

/// The backward pass laid out with gradient buffers ("slots") of the largest node's size, each
/// reused once its node's gradient has been consumed: a chain needs two, a block one or two more.
pub struct Backward {
    /// The steps in the order they run (the forward steps reversed).
    pub steps: Vec<Back>,
    /// The slot each output's loss writes its gradient into, by output.
    pub outputs: Vec<usize>,
    /// Number of slots.
    pub slots: usize,
}

/// Slots handed out while the backward pass is laid out.
#[derive(Default)]
struct Slots {
    /// The slot of each node's gradient while it is live.
    of: std::collections::HashMap<usize, usize>,
    free: Vec<usize>,
    count: usize,
}

impl Slots {
    fn take(&mut self) -> usize {
        self.free.pop().unwrap_or_else(|| {
            self.count += 1;
            self.count - 1
        })
    }

    fn give(&mut self, slot: usize) {
        self.free.push(slot);
        self.free.sort_unstable_by(|a, b| b.cmp(a));
    }

    /// The slot of node `node`'s gradient, which must be live, handed over to the caller.
    fn live(&mut self, node: usize) -> usize {
        self.of.remove(&node).expect("a step's output gradient is live")
    }

    /// Where a block's gradient, in slot `dy`, goes for its branch output `node`: nowhere for
    /// the batch, added to the node's slot when it has one, else copied into a new one.
    fn part(&mut self, node: usize, dy: usize) -> Dx {
        match (node, self.of.get(&node)) {
            (0, _) => Dx::Skip,
            (_, Some(&into)) => Dx::Accumulate { tmp: dy, into },
            (_, None) => {
                let slot = self.take();
                self.of.insert(node, slot);
                Dx::Write(slot)
            }
        }
    }

    /// Where the gradient of node `input` goes: a new slot for it, or a temporary one to add to
    /// the slot it already has.
    fn dx(&mut self, input: usize) -> Dx {
        if input == 0 {
            return Dx::Skip;
        }
        match self.of.get(&input) {
            Some(&into) => {
                let tmp = self.take();
                self.give(tmp);
                Dx::Accumulate { tmp, into }
            }
            None => {
                let slot = self.take();
                self.of.insert(input, slot);
                Dx::Write(slot)
            }
        }
    }
}

impl Backward {
    /// The backward pass of `program`.
    pub fn plan(program: &Program<'_>) -> Self {
        let mut slots = Slots::default();
        let mut outputs = Vec::with_capacity(program.outputs.len());
        for output in &program.outputs {
            let slot = slots.take();
            // A head is never the trunk itself: it has a layer of its own.
            debug_assert!(!slots.of.contains_key(&output.node), "two outputs share a node");
            if output.node != 0 {
                slots.of.insert(output.node, slot);
            }
            outputs.push(slot);
        }
        let mut steps = Vec::with_capacity(program.ops.len());
        for (op, step) in program.ops.iter().enumerate().rev() {
            match step {
                Op::Layer { input, output, .. } => {
                    let dy = slots.live(*output);
                    let dx = slots.dx(*input);
                    steps.push(Back::Layer { op, dy, dx });
                    slots.give(dy);
                }
                Op::Add { a, b, output, .. } => {
                    let dy = slots.live(*output);
                    let shortcut = slots.part(*b, dy);
                    steps.push(Back::Add { op, dy, shortcut });
                    slots.of.insert(*a, dy);
                }
                Op::Concat { inputs, output, .. } => {
                    let dy = slots.live(*output);
                    let parts = inputs.iter().map(|&b| slots.part(b, dy)).collect();
                    steps.push(Back::Concat { op, dy, parts });
                    slots.give(dy);
                }
            }
        }
        Backward { steps, outputs, slots: slots.count }
    }
}
