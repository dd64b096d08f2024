//! The descriptions of a model: its layer table (`LAYERS`, `SUMMARY`), its parameter tensors in
//! PyTorch's names (`TENSORS`), the equivalent PyTorch module (`PYTORCH`) and the rustdoc of the
//! struct, all from one walk over the layers in PyTorch's module order.

use cnn_shape::Shape;

use super::program::sizes;
use crate::check::Checked;
use crate::ir::{list_text, ActKind, Kind, Layer, Model, Pair, PoolOp};

/// One row of the layer table.
pub struct Row {
    /// The layer as written (`residual` for a block, `shortcut: ...` for a shortcut's layers).
    pub text: String,
    /// The PyTorch module path, such as `4.body.0` (empty for `input`).
    pub path: String,
    /// How many blocks the layer is inside.
    pub depth: usize,
    /// Its output.
    pub output: Shape,
    /// Its parameters (a block's: all of its layers').
    pub params: usize,
    /// Where its parameters start.
    pub offset: usize,
}

/// What a tensor holds, as `cnn::TensorKind` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorKind {
    /// A `conv` or `fc` weight.
    Weight,
    /// A bias.
    Bias,
    /// Batch normalisation's scale or shift.
    Norm,
    /// A running statistic.
    Statistic,
    /// Batch normalisation's batch count.
    Count,
}

/// One parameter or buffer tensor.
pub struct Tensor {
    /// The PyTorch `state_dict` name.
    pub name: String,
    /// The PyTorch shape.
    pub shape: Vec<usize>,
    /// Where it starts among the parameters, or among the buffers.
    pub offset: usize,
    /// What it holds.
    pub kind: TensorKind,
}

/// The description of a model.
pub struct Description {
    /// The layer table.
    pub rows: Vec<Row>,
    /// The row of each layer, by [`Layer::id`] (`None` for a `loss`).
    pub row_of: Vec<Option<usize>>,
    /// The tensors, in PyTorch's order.
    pub tensors: Vec<Tensor>,
    /// The equivalent `torch.nn.Sequential` (with the `Residual` module's definition first when
    /// the model has blocks).
    pub pytorch: String,
    /// Total parameters.
    pub params: usize,
    /// Total buffers.
    pub buffers: usize,
    /// Forward FLOPs of one sample.
    pub flops: usize,
    residual: bool,
    concat: bool,
    heads: bool,
    sparsity: bool,
}

impl Description {
    /// The description of a checked model.
    pub fn of(model: &Model, checked: &Checked) -> Self {
        let mut description = Description {
            rows: Vec::new(),
            row_of: vec![None; model.count],
            tensors: Vec::new(),
            pytorch: String::new(),
            params: 0,
            buffers: 0,
            flops: flops(&model.layers, checked),
            residual: false,
            concat: false,
            heads: false,
            sparsity: false,
        };
        let lines = description.walk(&model.layers, "", 0, checked);
        let sequential = sequential(&lines, 0);
        let residual = if description.residual { RESIDUAL_MODULE } else { "" };
        let concat = if description.concat { CONCAT_MODULE } else { "" };
        let heads = if description.heads { HEADS_MODULE } else { "" };
        let sparsity = if description.sparsity { SPARSITY_MODULE } else { "" };
        description.pytorch = format!("{residual}{concat}{heads}{sparsity}{sequential}");
        description
    }

    /// Walks `layers` as the modules of a `torch.nn.Sequential` named `prefix` (empty at the top);
    /// returns the module lines.
    fn walk(&mut self, layers: &[Layer], prefix: &str, depth: usize, checked: &Checked) -> Vec<String> {
        let mut lines = Vec::new();
        for layer in layers {
            let output = checked.output(layer);
            if layer.kind.is_input() {
                self.row_of[layer.id] = Some(self.rows.len());
                let text = layer.text();
                self.rows.push(Row { text, path: String::new(), depth, output, params: 0, offset: 0 });
                continue;
            }
            if matches!(layer.kind, Kind::Loss(..)) {
                continue;
            }
            let input = checked.input(layer);
            if !input.flat && matches!(layer.kind, Kind::Fc { .. } | Kind::Softmax) {
                lines.push("torch.nn.Flatten()".to_string());
            }
            let here = if prefix.is_empty() { lines.len().to_string() } else { format!("{prefix}.{}", lines.len()) };
            let row = self.rows.len();
            self.row_of[layer.id] = Some(row);
            self.rows.push(Row {
                text: if layer.is_block() || matches!(layer.kind, Kind::Heads { .. }) {
                    layer.kind.to_string()
                } else {
                    layer.text()
                },
                path: here.clone(),
                depth,
                output,
                params: sizes(layer, checked).0,
                offset: self.params,
            });
            let line = match layer.kind {
                Kind::Residual => self.residual(layer, &here, depth, checked),
                Kind::Concat => self.concat(layer, &here, depth, checked),
                Kind::Heads { ref names } => self.heads(layer, names, &here, depth, checked),
                _ => self.module(&layer.kind, input, &here),
            };
            debug_assert_eq!(self.rows[row].params, self.params - self.rows[row].offset);
            lines.push(line);
        }
        lines
    }

    /// The module of a `residual` block at `path`, its layers' rows and tensors recorded.
    fn residual(&mut self, layer: &Layer, path: &str, depth: usize, checked: &Checked) -> String {
        self.residual = true;
        let body = self.walk(layer.body(), &format!("{path}.body"), depth + 1, checked);
        let mut text = format!("Residual({}", sequential(&body, depth + 1));
        if !layer.shortcut().is_empty() {
            let start = self.rows.len();
            let shortcut = self.walk(layer.shortcut(), &format!("{path}.shortcut"), depth + 1, checked);
            for row in &mut self.rows[start..] {
                row.text = format!("shortcut: {}", row.text);
            }
            text.push_str(&format!(", {}", sequential(&shortcut, depth + 1)));
        }
        text.push(')');
        text
    }

    /// The module of a `concat` block at `path`, its branches' rows and tensors recorded.
    fn concat(&mut self, layer: &Layer, path: &str, depth: usize, checked: &Checked) -> String {
        self.concat = true;
        let mut branches = Vec::new();
        for (k, branch) in layer.branches.iter().enumerate() {
            let start = self.rows.len();
            let lines = self.walk(branch, &format!("{path}.branches.{k}"), depth + 1, checked);
            for row in &mut self.rows[start..] {
                row.text = format!("branch {}: {}", k + 1, row.text);
            }
            branches.push(sequential(&lines, depth + 1));
        }
        format!("Concat({})", branches.join(", "))
    }

    /// The module of the `heads` at `path`, named `names`, their rows and tensors recorded.
    fn heads(
        &mut self,
        layer: &Layer,
        names: &[proc_macro2::Ident],
        path: &str,
        depth: usize,
        checked: &Checked,
    ) -> String {
        self.heads = true;
        let pad = "    ".repeat(depth + 2);
        let mut heads = Vec::new();
        for (name, head) in names.iter().zip(&layer.branches) {
            let start = self.rows.len();
            let lines = self.walk(head, &format!("{path}.{name}"), depth + 1, checked);
            for row in &mut self.rows[start..] {
                row.text = format!("{name}: {}", row.text);
            }
            heads.push(format!("\n{pad}\"{name}\": {}", sequential(&lines, depth + 2)));
        }
        format!("Heads({{{},\n{}}})", heads.join(","), "    ".repeat(depth + 1))
    }

    /// The PyTorch module of a layer (not a block) reading `input`, at `path`, its tensors
    /// recorded.
    fn module(&mut self, kind: &Kind, input: Shape, path: &str) -> String {
        let (c, _) = input.channels();
        match kind {
            Kind::Conv { filter, filters, stride, pad, bias, groups } => {
                self.tensor(path, "weight", &[*filters, input.d / groups, filter.h, filter.w], TensorKind::Weight);
                if *bias {
                    self.tensor(path, "bias", &[*filters], TensorKind::Bias);
                }
                let groups = if *groups == 1 { String::new() } else { format!(", groups={groups}") };
                format!(
                    "torch.nn.Conv2d({}, {filters}, kernel_size=({}, {}), stride=({}, {}), padding=({}, {}){groups}{})",
                    input.d,
                    filter.h,
                    filter.w,
                    stride.h,
                    stride.w,
                    pad.h,
                    pad.w,
                    if *bias { "" } else { ", bias=False" }
                )
            }
            Kind::Pool { op, window, stride, pad } => {
                let (kh, kw, sh, sw) = (window.h, window.w, stride.h, stride.w);
                let padding =
                    if *pad == Pair::square(0) { String::new() } else { format!(", padding=({}, {})", pad.h, pad.w) };
                match op {
                    PoolOp::Max => {
                        format!("torch.nn.MaxPool2d(kernel_size=({kh}, {kw}), stride=({sh}, {sw}){padding})")
                    }
                    PoolOp::Avg => {
                        format!("torch.nn.AvgPool2d(kernel_size=({kh}, {kw}), stride=({sh}, {sw}){padding})")
                    }
                    PoolOp::L2 => format!("torch.nn.LPPool2d(2, kernel_size=({kh}, {kw}), stride=({sh}, {sw}))"),
                }
            }
            Kind::Fc { out, bias } => {
                self.tensor(path, "weight", &[*out, input.len()], TensorKind::Weight);
                if *bias {
                    self.tensor(path, "bias", &[*out], TensorKind::Bias);
                    format!("torch.nn.Linear({}, {out})", input.len())
                } else {
                    format!("torch.nn.Linear({}, {out}, bias=False)", input.len())
                }
            }
            Kind::Act(ActKind::Relu) => "torch.nn.ReLU()".into(),
            Kind::Act(ActKind::Relu6) => "torch.nn.ReLU6()".into(),
            Kind::Act(ActKind::LeakyRelu(a)) => format!("torch.nn.LeakyReLU({a})"),
            Kind::Act(ActKind::Sigmoid) => "torch.nn.Sigmoid()".into(),
            Kind::Act(ActKind::Tanh) => "torch.nn.Tanh()".into(),
            Kind::Softmax => "torch.nn.Softmax(dim=1)".into(),
            Kind::Dropout { p } => format!("torch.nn.Dropout(p={p})"),
            Kind::Sparsity { lambda } => {
                self.sparsity = true;
                format!("Sparsity({lambda})")
            }
            Kind::BatchNorm => {
                self.tensor(path, "weight", &[c], TensorKind::Norm);
                self.tensor(path, "bias", &[c], TensorKind::Norm);
                self.tensor(path, "running_mean", &[c], TensorKind::Statistic);
                self.tensor(path, "running_var", &[c], TensorKind::Statistic);
                self.tensor(path, "num_batches_tracked", &[], TensorKind::Count);
                let dims = if input.flat { "1d" } else { "2d" };
                format!("torch.nn.BatchNorm{dims}({c})")
            }
            Kind::Lrn { size, alpha, beta, k } => {
                format!("torch.nn.LocalResponseNorm({size}, alpha={alpha}, beta={beta}, k={k})")
            }
            Kind::Residual
            | Kind::Concat
            | Kind::Heads { .. }
            | Kind::Invalid
            | Kind::InputVolume { .. }
            | Kind::InputFlat { .. }
            | Kind::Loss(..) => {
                unreachable!("not a module of its own")
            }
        }
    }

    /// Records tensor `path.name`, placed after the parameters so far, or after the buffers so
    /// far for running statistics and counts.
    fn tensor(&mut self, path: &str, name: &str, shape: &[usize], kind: TensorKind) {
        let at = match kind {
            TensorKind::Statistic | TensorKind::Count => &mut self.buffers,
            TensorKind::Weight | TensorKind::Bias | TensorKind::Norm => &mut self.params,
        };
        let offset = *at;
        *at += shape.iter().product::<usize>();
        let (name, shape) = (format!("{path}.{name}"), shape.to_vec());
        self.tensors.push(Tensor { name, shape, offset, kind });
    }

    /// The layer table, like Keras' `model.summary()`.
    pub fn summary(&self) -> String {
        let cells: Vec<[String; 3]> = self
            .rows
            .iter()
            .map(|r| [format!("{}{}", "  ".repeat(r.depth), r.text), r.output.to_string(), grouped(r.params)])
            .collect();
        let width = |i: usize, title: &str| cells.iter().map(|r| r[i].len()).chain([title.len()]).max().unwrap_or(0);
        let (w0, w1, w2) = (width(0, "Layer"), width(1, "Output"), width(2, "Params"));
        let rule = "-".repeat(w0 + w1 + w2 + 4);
        let mut text = format!("{:<w0$}  {:<w1$}  {:>w2$}\n{rule}\n", "Layer", "Output", "Params");
        for [a, b, c] in &cells {
            text.push_str(&format!("{a:<w0$}  {b:<w1$}  {c:>w2$}\n"));
        }
        text.push_str(&format!("{rule}\nTotal params: {}\n", grouped(self.params)));
        if self.buffers > 0 {
            text.push_str(&format!("Buffers (running statistics): {}\n", grouped(self.buffers)));
        }
        text.push_str(&format!("Forward FLOPs per sample: {}\n", grouped(self.flops)));
        text
    }

    /// The rustdoc of the generated struct, after the user's own.
    pub fn doc(&self, model: &Model) -> String {
        let (dsl, summary, torch) = (list_text(&model.layers), self.summary(), &self.pytorch);
        let methods = match self.heads {
            true => "The methods come from the `cnn::Network` and `cnn::MultiTask` traits, plus `new`, `with_seed` and `classify`; targets, outputs and results go by head in the struct named after this one with `Heads` appended.",
            false => "The methods come from the `cnn::Network` and `cnn::Model` traits, plus `new`, `with_seed`, `classify` and `probabilities`.",
        };
        format!(
            "\n\nGenerated by `cnn!` from `{dsl}`: every shape below was checked while compiling.\n\n```text\n{summary}```\n\nThe same model in PyTorch:\n\n```python\n{torch}\n```\n\n{methods}"
        )
    }
}

/// Module lines as a `torch.nn.Sequential(...)` indented for nesting level `depth`.
fn sequential(lines: &[String], depth: usize) -> String {
    let pad = "    ".repeat(depth + 1);
    let close = "    ".repeat(depth);
    let body: String = lines.iter().map(|l| format!("{pad}{l},\n")).collect();
    format!("torch.nn.Sequential(\n{body}{close})")
}

/// The Python definition of the module a residual block becomes.
const RESIDUAL_MODULE: &str = "class Residual(torch.nn.Module):
    \"\"\"`body(x) + shortcut(x)`, the shortcut being the identity when not given.\"\"\"

    def __init__(self, body, shortcut=None):
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x):
        return self.body(x) + (x if self.shortcut is None else self.shortcut(x))


";

/// The Python definition of the module a concat block becomes.
const CONCAT_MODULE: &str = "class Concat(torch.nn.Module):
    \"\"\"The branches' outputs stacked along the channels (or joined, for vectors).\"\"\"

    def __init__(self, *branches):
        super().__init__()
        self.branches = torch.nn.ModuleList(branches)

    def forward(self, x):
        return torch.cat([branch(x) for branch in self.branches], dim=1)


";

/// The Python definition of the module `heads` becomes.
const HEADS_MODULE: &str = "class Heads(torch.nn.Module):
    \"\"\"The heads, each reading the trunk's output; returns their outputs as a tuple, in order.\"\"\"

    def __init__(self, heads):
        super().__init__()
        self._order = list(heads)
        for name, head in heads.items():
            self.add_module(name, head)

    def forward(self, x):
        return tuple(getattr(self, name)(x) for name in self._order)


";

/// The Python definition of the module a `sparsity` layer becomes.
const SPARSITY_MODULE: &str = "class Sparsity(torch.nn.Module):
    \"\"\"The identity; in training, records `weight * mean |x|` in `penalty`, to add to the loss.\"\"\"

    def __init__(self, weight):
        super().__init__()
        self.weight = weight
        self.penalty = 0.0

    def forward(self, x):
        if self.training:
            self.penalty = self.weight * x.abs().mean()
        return x


";

/// Thousands separated by commas, as in model summaries.
fn grouped(v: usize) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Forward FLOPs of one sample: two per multiply-add of the convolution and fully connected
/// layers, the work that dominates.
fn flops(layers: &[Layer], checked: &Checked) -> usize {
    layers
        .iter()
        .map(|l| {
            let (input, output) = (checked.input(l), checked.output(l));
            match &l.kind {
                Kind::Conv { filter, filters, groups, .. } => {
                    2 * filters * (input.d / groups) * filter.w * filter.h * output.w * output.h
                }
                Kind::Fc { out, .. } => 2 * input.len() * out,
                Kind::Residual | Kind::Concat | Kind::Heads { .. } => {
                    l.branches.iter().map(|b| flops(b, checked)).sum()
                }
                _ => 0,
            }
        })
        .sum()
}

/// Whether a `batchnorm` among `layers` normalises one value per channel and sample (after
/// `fc`), so that a training batch needs two samples for a variance.
pub fn normalises_single_values(layers: &[Layer], checked: &Checked) -> bool {
    layers.iter().any(|l| match l.kind {
        Kind::Residual | Kind::Concat | Kind::Heads { .. } => {
            l.branches.iter().any(|b| normalises_single_values(b, checked))
        }
        _ => l.kind == Kind::BatchNorm && checked.input(l).channels().1 == 1,
    })
}
