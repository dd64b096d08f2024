//! Code generation on models built by hand, without compiling what it generates.

use super::describe::{Description, TensorKind};
use super::passes::kernel_tokens;
use super::program::{Back, Backward, Dx, Op, Program};
use crate::check::{check, Checked};
use crate::ir::{ActKind, Kind, Layer, LossKind, Model, Pair, PoolOp};

fn fc(out: usize) -> Layer {
    Layer::of(Kind::Fc { out, bias: true })
}

fn act(a: ActKind) -> Layer {
    Layer::of(Kind::Act(a))
}

fn conv(filter: Pair, filters: usize, stride: Pair, pad: Pair) -> Layer {
    Layer::of(Kind::Conv { filter, filters, stride, pad, bias: true, groups: 1 })
}

fn model(layers: Vec<Layer>) -> (Model, Checked) {
    let model = Model::of(layers);
    let checked = check(&model).unwrap_or_else(|e| panic!("the model checks: {e}"));
    (model, checked)
}

/// Each kernel step as (layer text or `identity`, fused activation) and each sum as `add`.
fn steps(program: &Program<'_>) -> Vec<String> {
    program
        .ops
        .iter()
        .map(|op| match op {
            Op::Layer { kernel, .. } => {
                let layer = kernel.layer.map_or("identity".to_string(), |l| l.kind.to_string());
                match kernel.act {
                    Some(a) => format!("{layer}+{}", Kind::Act(a)),
                    None => layer,
                }
            }
            Op::Add { act: Some(a), .. } => format!("add+{}", Kind::Act(*a)),
            Op::Add { act: None, .. } => "add".to_string(),
            Op::Concat { act: Some(a), .. } => format!("concat+{}", Kind::Act(*a)),
            Op::Concat { act: None, .. } => "concat".to_string(),
        })
        .collect()
}

#[test]
fn activations_fuse_into_the_layer_before_them_where_the_kernel_can() {
    let (m, c) = model(vec![
        Layer::of(Kind::InputVolume { w: 8, h: 8, d: 1 }),
        conv(Pair::square(3), 4, Pair::square(1), Pair::square(0)),
        act(ActKind::Relu),
        Layer::of(Kind::Pool {
            op: PoolOp::Max,
            window: Pair::square(2),
            stride: Pair::square(2),
            pad: Pair::square(0),
        }),
        act(ActKind::Tanh),
        fc(10),
        Layer::of(Kind::BatchNorm),
        act(ActKind::Relu),
        fc(3),
        Layer::of(Kind::Softmax),
    ]);
    let program = Program::lower(&m, &c);
    assert_eq!(steps(&program), ["conv(3x3, 4)+relu", "pool(2)", "tanh", "fc(10)", "batchnorm+relu", "fc(3)"]);
    assert_eq!(program.nodes, [64, 144, 36, 36, 10, 10, 3]);
    assert_eq!(program.writers, [0, 1, 3, 4, 5, 6, 8], "each node names the layer that writes it");
    assert_eq!(program.params, 4 * 10 + 36 * 10 + 10 + 2 * 10 + 10 * 3 + 3);
    assert_eq!(program.buffers, 2 * 10 + 1);
}

#[test]
fn the_loss_absorbs_the_output_function_it_is_computed_with() {
    let (m, c) = model(vec![Layer::of(Kind::InputFlat { n: 4 }), fc(1), act(ActKind::Sigmoid)]);
    assert_eq!(c.loss, LossKind::Bce);
    assert_eq!(steps(&Program::lower(&m, &c)), ["fc(1)"]);
    let (m, c) = model(vec![
        Layer::of(Kind::InputFlat { n: 4 }),
        fc(1),
        act(ActKind::Sigmoid),
        Layer::of(Kind::Loss(LossKind::Mse, crate::ir::Float(1.0))),
    ]);
    assert_eq!(steps(&Program::lower(&m, &c)), ["fc(1)+sigmoid"], "mean squared error trains the sigmoid's output");
    // Nothing left to run: an identity copies the input where the loss reads it.
    let (m, c) = model(vec![Layer::of(Kind::InputFlat { n: 4 }), Layer::of(Kind::Softmax)]);
    let program = Program::lower(&m, &c);
    assert_eq!(steps(&program), ["identity"]);
    assert_eq!(
        kernel_tokens(match &program.ops[0] {
            Op::Layer { kernel, .. } => kernel,
            _ => unreachable!(),
        })
        .0
        .to_string(),
        ":: cnn :: __private :: Activation < 4 >"
    );
}

#[test]
fn a_chain_reuses_two_gradient_buffers() {
    let mut layers = vec![Layer::of(Kind::InputFlat { n: 6 })];
    for _ in 0..5 {
        layers.extend([fc(6), act(ActKind::Tanh), Layer::of(Kind::Dropout { p: crate::ir::Float(0.5) })]);
    }
    let (m, c) = model(layers);
    let program = Program::lower(&m, &c);
    assert_eq!(program.ops.len(), 10);
    let backward = Backward::plan(&program);
    assert_eq!(backward.slots, 2);
    let first = backward.steps.last().unwrap();
    assert_eq!(*first, Back::Layer { op: 0, dy: 1, dx: Dx::Skip }, "the batch's gradient is never computed");
}

#[test]
fn a_block_sums_the_gradients_of_the_node_both_branches_read() {
    let (m, c) = model(vec![
        Layer::of(Kind::InputFlat { n: 8 }),
        fc(8),
        Layer::residual(vec![fc(8), act(ActKind::Relu), fc(8)], Vec::new()),
        fc(2),
    ]);
    let program = Program::lower(&m, &c);
    assert_eq!(steps(&program), ["fc(8)", "fc(8)+relu", "fc(8)", "add", "fc(2)"]);
    let backward = Backward::plan(&program);
    assert_eq!(
        backward.steps,
        [
            Back::Layer { op: 4, dy: 0, dx: Dx::Write(1) },
            Back::Add { op: 3, dy: 1, shortcut: Dx::Write(0) },
            Back::Layer { op: 2, dy: 1, dx: Dx::Write(2) },
            Back::Layer { op: 1, dy: 2, dx: Dx::Accumulate { tmp: 1, into: 0 } },
            Back::Layer { op: 0, dy: 0, dx: Dx::Skip },
        ]
    );
    assert_eq!((backward.outputs.as_slice(), backward.slots), (&[0][..], 3));
}

#[test]
fn a_block_on_the_batch_leaves_its_shortcut_gradient_out() {
    let (m, c) = model(vec![
        Layer::of(Kind::InputFlat { n: 8 }),
        Layer::residual(vec![fc(8)], Vec::new()),
        act(ActKind::Relu),
        fc(2),
    ]);
    let program = Program::lower(&m, &c);
    assert_eq!(steps(&program), ["fc(8)", "add+relu", "fc(2)"]);
    let backward = Backward::plan(&program);
    assert_eq!(backward.steps[1], Back::Add { op: 1, dy: 1, shortcut: Dx::Skip });
}

#[test]
fn width_and_height_reach_pytorch_and_the_kernel_in_their_order() {
    let (m, c) = model(vec![
        Layer::of(Kind::InputVolume { w: 16, h: 8, d: 3 }),
        conv(Pair { w: 5, h: 3 }, 4, Pair { w: 2, h: 1 }, Pair { w: 1, h: 0 }),
        fc(2),
    ]);
    // Width (16 − 5 + 2)/2 + 1 = 7, height (8 − 3)/1 + 1 = 6.
    assert_eq!(c.output(&m.layers[1]).to_string(), "7x6x4");
    let d = Description::of(&m, &c);
    assert!(
        d.pytorch.contains("torch.nn.Conv2d(3, 4, kernel_size=(3, 5), stride=(1, 2), padding=(0, 1))"),
        "{}",
        d.pytorch
    );
    assert_eq!(d.tensors[0].shape, [4, 3, 3, 5], "weights are [K, D, FH, FW]");
    let program = Program::lower(&m, &c);
    let Op::Layer { kernel, .. } = &program.ops[0] else { unreachable!() };
    let (ty, _) = kernel_tokens(kernel);
    assert_eq!(ty.to_string(), ":: cnn :: __private :: Conv2d < 3 , 8 , 16 , 4 , 3 , 5 , 1 , 2 , 0 , 1 , true >");
}

#[test]
fn the_description_names_blocks_as_pytorch_does() {
    let bn = || Layer::of(Kind::BatchNorm);
    let (m, c) = model(vec![
        Layer::of(Kind::InputVolume { w: 4, h: 4, d: 2 }),
        Layer::residual(
            vec![conv(Pair::square(3), 4, Pair::square(2), Pair::square(1)), bn()],
            vec![conv(Pair::square(1), 4, Pair::square(2), Pair::square(0))],
        ),
        fc(3),
        Layer::of(Kind::Softmax),
    ]);
    let d = Description::of(&m, &c);
    let rows: Vec<(&str, &str, usize)> = d.rows.iter().map(|r| (r.text.as_str(), r.path.as_str(), r.depth)).collect();
    assert_eq!(
        rows,
        [
            ("input(4x4x2)", "", 0),
            ("residual", "0", 0),
            ("conv(3x3, 4, stride=2, pad=1)", "0.body.0", 1),
            ("batchnorm", "0.body.1", 1),
            ("shortcut: conv(1x1, 4, stride=2)", "0.shortcut.0", 1),
            ("fc(3)", "2", 0),
            ("softmax", "3", 0),
        ]
    );
    assert_eq!(d.row_of[..4], [Some(0), Some(1), Some(2), Some(3)]);
    let names: Vec<&str> = d.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names[..4], ["0.body.0.weight", "0.body.0.bias", "0.body.1.weight", "0.body.1.bias"]);
    let stats: Vec<(&str, usize)> = d
        .tensors
        .iter()
        .filter(|t| !matches!(t.kind, TensorKind::Weight | TensorKind::Bias | TensorKind::Norm))
        .map(|t| (t.name.as_str(), t.offset))
        .collect();
    assert_eq!(stats, [("0.body.1.running_mean", 0), ("0.body.1.running_var", 4), ("0.body.1.num_batches_tracked", 8)]);
    assert!(d.pytorch.starts_with("class Residual(torch.nn.Module):"));
    assert!(
        d.pytorch.contains("    torch.nn.Flatten(),\n    torch.nn.Linear(16, 3),\n    torch.nn.Softmax(dim=1),\n)"),
        "{}",
        d.pytorch
    );
    let summary = d.summary();
    assert!(summary.contains("  shortcut: conv(1x1, 4, stride=2)"), "{summary}");
    assert!(summary.contains("Buffers (running statistics): 9"), "{summary}");
    assert_eq!(d.params, 4 * 2 * 9 + 4 + 8 + 4 * 2 + 4 + 16 * 3 + 3);
}

#[test]
fn the_item_is_rust_with_the_activation_table_of_its_program() {
    let (m, c) = model(vec![
        Layer::of(Kind::InputFlat { n: 4 }),
        fc(4),
        act(ActKind::Relu),
        Layer::residual(vec![fc(4)], Vec::new()),
        fc(2),
        Layer::of(Kind::Softmax),
    ]);
    let tokens = super::expand(&m, &c);
    let file: syn::File = syn::parse2(quote::quote!(fn f() { #tokens; })).expect("the expansion parses as Rust");
    let text = quote::ToTokens::to_token_stream(&file).to_string();
    // Nodes: fc+relu (row 1), the block's fc (row 4), the sum (row 3), the last fc (row 5).
    assert!(
        text.contains("const ACTIVATIONS : & 'static [(usize , usize)] = & [(1 , 4) , (4 , 4) , (3 , 4) , (5 , 2)]"),
        "{text}"
    );
    assert!(text.contains("struct CnnModel { # [doc (hidden)] __state : :: cnn :: __private :: State , }"), "{text}");
    assert!(text.contains("impl :: cnn :: __private :: Compiled for CnnModel"), "{text}");
    // The parameter side and the output side are two impls.
    assert!(
        text.contains("impl :: cnn :: Network for CnnModel { const INPUT : :: cnn :: Shape = :: cnn :: Shape :: vector (4) ; const INPUT_LEN : usize = 4 ;"),
        "{text}"
    );
    assert!(
        text.contains("impl :: cnn :: Model for CnnModel { const OUTPUT_LEN : usize = 2 ; const LOSS : :: cnn :: Loss = :: cnn :: Loss :: CrossEntropy ; }"),
        "{text}"
    );
}

fn inception() -> (Model, Checked) {
    let pool = Kind::Pool { op: PoolOp::Max, window: Pair::square(3), stride: Pair::square(1), pad: Pair::square(1) };
    let one = || conv(Pair::square(1), 2, Pair::square(1), Pair::square(0));
    model(vec![
        Layer::of(Kind::InputVolume { w: 6, h: 6, d: 3 }),
        Layer::new(
            Kind::Concat,
            quote::quote!(concat),
            vec![
                vec![one()],
                vec![one(), act(ActKind::Relu), conv(Pair::square(3), 4, Pair::square(1), Pair::square(1))],
                vec![Layer::of(pool), one()],
            ],
        ),
        act(ActKind::Relu),
        fc(2),
    ])
}

#[test]
fn a_concat_block_stacks_its_branches_and_splits_the_gradient_back() {
    let (m, c) = inception();
    assert_eq!(c.output(&m.layers[1]).to_string(), "6x6x8");
    let program = Program::lower(&m, &c);
    assert_eq!(
        steps(&program),
        [
            "conv(1x1, 2)",
            "conv(1x1, 2)+relu",
            "conv(3x3, 4, pad=1)",
            "pool(3, stride=1, pad=1)",
            "conv(1x1, 2)",
            "concat+relu",
            "fc(2)"
        ]
    );
    let backward = Backward::plan(&program);
    assert_eq!(backward.steps[1], Back::Concat { op: 5, dy: 1, parts: vec![Dx::Write(0), Dx::Write(2), Dx::Write(3)] });
    // Every branch reads the batch: no gradient of it is computed.
    assert!(backward.steps.iter().all(|s| !matches!(s, Back::Layer { dx: Dx::Accumulate { .. }, .. })));
    let (ty, _) = kernel_tokens(match &program.ops[3] {
        Op::Layer { kernel, .. } => kernel,
        _ => unreachable!(),
    });
    assert_eq!(ty.to_string(), ":: cnn :: __private :: MaxPool2d < 3 , 6 , 6 , 3 , 3 , 1 , 1 , 1 , 1 >");
}

#[test]
fn a_concat_block_is_a_module_list_in_pytorch() {
    let (m, c) = inception();
    let d = Description::of(&m, &c);
    assert!(d.pytorch.starts_with("class Concat(torch.nn.Module):"), "{}", d.pytorch);
    assert!(
        d.pytorch.contains("torch.nn.MaxPool2d(kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"),
        "{}",
        d.pytorch
    );
    let names: Vec<&str> = d.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names[..3], ["0.branches.0.0.weight", "0.branches.0.0.bias", "0.branches.1.0.weight"]);
    assert_eq!(names[names.len() - 4..], ["0.branches.2.1.weight", "0.branches.2.1.bias", "3.weight", "3.bias"]);
    let rows: Vec<&str> = d.rows.iter().map(|r| r.text.as_str()).collect();
    assert_eq!(rows[1..4], ["concat", "branch 1: conv(1x1, 2)", "branch 2: conv(1x1, 2)"]);
    assert_eq!(d.flops, 2 * (2 * 3 + 2 * 3 + 4 * 2 * 9 + 2 * 3) * 36 + 2 * 288 * 2);
}

#[test]
fn grouped_convolutions_and_sparsity_reach_pytorch_and_the_kernels() {
    let grouped = Kind::Conv {
        filter: Pair::square(3),
        filters: 8,
        stride: Pair::square(1),
        pad: Pair::square(1),
        bias: true,
        groups: 4,
    };
    let (m, c) = model(vec![
        Layer::of(Kind::InputVolume { w: 5, h: 5, d: 4 }),
        Layer::of(grouped),
        act(ActKind::Relu6),
        Layer::of(Kind::Sparsity { lambda: crate::ir::Float(0.5) }),
        fc(2),
    ]);
    let d = Description::of(&m, &c);
    assert_eq!(d.tensors[0].shape, [8, 1, 3, 3], "each filter reads its group's one channel");
    assert!(d.pytorch.contains("torch.nn.Conv2d(4, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), groups=4)"));
    assert!(d.pytorch.contains("    torch.nn.ReLU6(),\n    Sparsity(0.5),\n"), "{}", d.pytorch);
    assert!(d.pytorch.starts_with("class Sparsity(torch.nn.Module):"));
    assert_eq!(d.params, 8 * 9 + 8 + 200 * 2 + 2);
    assert_eq!(d.flops, 2 * 8 * 9 * 25 + 2 * 200 * 2);
    let program = Program::lower(&m, &c);
    assert_eq!(steps(&program), ["conv(3x3, 8, pad=1, groups=4)+relu6", "sparsity(0.5)", "fc(2)"]);
    let Op::Layer { kernel, .. } = &program.ops[0] else { unreachable!() };
    assert!(kernel_tokens(kernel).0.to_string().ends_with("1 , 1 , 1 , 1 , true , 4 >"));
    let passes = super::passes::Passes::of(&program, &Backward::plan(&program), &quote::format_ident!("M"));
    assert_eq!(
        passes.penalties.to_string(),
        "+ :: cnn :: __private :: sparsity_penalty (__n , 200 , 0.5f32 , & * __s1)"
    );
}

/// The model written `text`, which must parse and check.
fn parsed(text: &str) -> (Model, Checked) {
    let (model, errors) = crate::parse::parse(format!("struct M < {text} >").parse().unwrap()).unwrap();
    assert!(errors.is_none(), "`{text}` parses");
    let checked = check(&model).unwrap_or_else(|e| panic!("the model checks: {e}"));
    (model, checked)
}

#[test]
fn each_head_has_an_output_whose_loss_absorbs_its_output_function() {
    let (m, c) =
        parsed("input(4) fc(6) relu heads(a: fc(3) softmax, b: fc(2) sigmoid loss(bce, weight=0.5), c: fc(1))");
    let program = Program::lower(&m, &c);
    assert_eq!(steps(&program), ["fc(6)+relu", "fc(3)", "fc(2)", "fc(1)"]);
    let outputs: Vec<(usize, LossKind, f32)> = program.outputs.iter().map(|o| (o.node, o.loss, o.weight)).collect();
    assert_eq!(outputs, [(2, LossKind::CrossEntropy, 1.0), (3, LossKind::Bce, 0.5), (4, LossKind::Mse, 1.0)]);
    assert_eq!((0..3).map(|i| program.output_len(i)).collect::<Vec<_>>(), [3, 2, 1]);
    // Each loss writes its own slot; the trunk's gradient sums the three heads' parts.
    let backward = Backward::plan(&program);
    assert_eq!(backward.outputs, [0, 1, 2]);
    assert_eq!(
        backward.steps,
        [
            Back::Layer { op: 3, dy: 2, dx: Dx::Write(3) },
            Back::Layer { op: 2, dy: 1, dx: Dx::Accumulate { tmp: 2, into: 3 } },
            Back::Layer { op: 1, dy: 0, dx: Dx::Accumulate { tmp: 1, into: 3 } },
            Back::Layer { op: 0, dy: 3, dx: Dx::Skip },
        ]
    );
}

#[test]
fn heads_describe_their_rows_tensors_and_pytorch_module() {
    let (m, c) = parsed("input(4) fc(6) heads(a: fc(3) softmax, b: fc(2))");
    let d = Description::of(&m, &c);
    let rows: Vec<(&str, &str, usize)> = d.rows.iter().map(|r| (r.text.as_str(), r.path.as_str(), r.depth)).collect();
    assert_eq!(
        rows,
        [
            ("input(4)", "", 0),
            ("fc(6)", "0", 0),
            ("heads", "1", 0),
            ("a: fc(3)", "1.a.0", 1),
            ("a: softmax", "1.a.1", 1),
            ("b: fc(2)", "1.b.0", 1)
        ]
    );
    let names: Vec<&str> = d.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["0.weight", "0.bias", "1.a.0.weight", "1.a.0.bias", "1.b.0.weight", "1.b.0.bias"]);
    assert_eq!(d.rows[2].params, 3 * 7 + 2 * 7, "the heads row counts every head's parameters");
    assert!(d.pytorch.contains("    Heads({\n        \"a\": torch.nn.Sequential(\n"), "{}", d.pytorch);
    assert!(d.pytorch.starts_with("class Heads(torch.nn.Module):"), "{}", d.pytorch);
}
