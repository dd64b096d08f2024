//! Feature visualisation, as in Zeiler and Fergus's "Visualizing and Understanding Convolutional
//! Networks" (2014): what a trained model's convolutions respond to.
//!
//! - [`feature_maps`]: every convolution's output maps for one sample, as the next layer reads
//!   them (after the batch normalisation and activation that follow the convolution).
//! - [`receptive_field`] and [`receptive_window`]: the input pixels that one position of a
//!   layer's output reads, from the geometry of the layers before it (filter sizes, strides,
//!   padding, pooling windows, both paths of a residual block, the branches of a `concat`).
//! - [`strongest_patches`]: for each filter of a layer, the input patches (receptive fields) of
//!   a data set that excite it most.
//! - With the `visual` feature, [`save_feature_maps`] and [`save_patches`] draw both as PNG
//!   files with a colour scale.
//!
//! All of them take any model and find its convolutions in its layer table
//! ([`Network::LAYERS`]) and graph ([`Network::GRAPH`]).
//!
//! ```
//! use cnn::{cnn, visual, Network};
//!
//! cnn! { struct Tiny < input(8x8x1) conv(3x3, 4, pad=1) relu pool(2) conv(3x3, 2) relu fc(3) softmax > }
//!
//! let mut model = Tiny::with_seed(1);
//! assert_eq!(visual::convolutions::<Tiny>(), [1, 4]);
//! let maps = visual::feature_maps(&mut model, &[0.5; 64])?;
//! assert_eq!((maps[1].layer_text(), maps[1].shape), ("conv(3x3, 2) relu", cnn::Shape::volume(2, 2, 2)));
//! // Output (0, 0) of the second convolution reads a 3x3 window of the 4x4 pooled volume, which
//! // reads 6x6 outputs of the first convolution, whose 3x3 windows cover 8x8 input positions:
//! // one row and column of padding, and 7x7 pixels.
//! let window = visual::receptive_window::<Tiny>(4, 0, 0)?;
//! assert_eq!((window.top, window.left, window.height, window.width), (-1, -1, 8, 8));
//! let field = visual::receptive_field::<Tiny>(4, 0, 0)?;
//! assert_eq!((field.top, field.left, field.height, field.width), (0, 0, 7, 7));
//! # Ok::<(), cnn::Error>(())
//! ```

#[cfg(feature = "visual")]
mod draw;

use crate::compiled::activations;
use crate::graph::{Node, Op};
use crate::kernels::in_pool;
use crate::model::samples;
use crate::prelude::*;
use crate::{Error, Network, Result, Shape};

#[cfg(feature = "visual")]
pub use draw::{save_feature_maps, save_patches};

/// The feature maps of one convolution for one sample.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureMaps {
    /// The convolution's row of [`Network::LAYERS`].
    pub row: usize,
    /// The last row whose output the maps are: the convolution's, or that of the batch
    /// normalisation, activation or dropout right after it (the maps the next layer reads).
    pub through: usize,
    /// Their shape: `d` maps of `h x w`.
    pub shape: Shape,
    /// The values, map after map, each row after row.
    pub values: Vec<f32>,
    /// The layer texts of the rows `row..=through`, such as `conv(5x5, 6, pad=2) relu`.
    text: String,
}

impl FeatureMaps {
    /// Map `channel` (`h x w` values, row after row), or `None` past the last one.
    pub fn map(&self, channel: usize) -> Option<&[f32]> {
        let len = self.shape.w * self.shape.h;
        self.values.get(channel * len..(channel + 1) * len)
    }

    /// The layers the maps come out of, as written, such as `conv(5x5, 6, pad=2) relu`.
    pub fn layer_text(&self) -> &str {
        &self.text
    }
}

/// A rectangle of the model's input: rows `top..top + height` and columns `left..left + width`.
///
/// As a receptive field ([`receptive_field`]) it holds exactly the input pixels an output
/// position reads; as a window ([`receptive_window`]) it is the field's full geometric extent,
/// which padding takes past the input's edges (a negative `top` or `left`, or past the last row
/// or column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// The first row.
    pub top: isize,
    /// The first column.
    pub left: isize,
    /// Rows covered.
    pub height: usize,
    /// Columns covered.
    pub width: usize,
}

/// One input patch that excites a filter: where it is and how strongly.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Patch {
    /// The sample of the data set.
    pub sample: usize,
    /// The output position (row, column) of the strongest response in that sample.
    pub at: (usize, usize),
    /// The response there.
    pub value: f32,
    /// The input pixels that position reads ([`receptive_field`]).
    pub field: Field,
    /// The field's geometric window, the same size for every position of the layer: padding
    /// (of the input, or of a layer on the way) takes it past the pixels the position reads.
    pub window: Field,
}

/// Where a row of [`Network::LAYERS`] sits in [`Network::GRAPH`]: its chain, its index there and
/// the row of the block holding the chain (`None` at the top level).
#[derive(Clone, Copy)]
struct Place {
    chain: &'static [Node],
    index: usize,
    parent: Option<usize>,
}

impl Place {
    fn node(&self) -> &'static Node {
        &self.chain[self.index]
    }
}

/// The graph's nodes in the order of [`Network::LAYERS`]: each node, then the layers of its
/// block (body then shortcut, branch after branch, head after head).
fn places(graph: &'static [Node]) -> Vec<Place> {
    fn walk(chain: &'static [Node], parent: Option<usize>, out: &mut Vec<Place>) {
        for index in 0..chain.len() {
            let row = out.len();
            out.push(Place { chain, index, parent });
            match chain[index].op {
                Op::Residual { body, shortcut } => {
                    walk(body, Some(row), out);
                    walk(shortcut, Some(row), out);
                }
                Op::Concat { branches } => branches.iter().for_each(|b| walk(b, Some(row), out)),
                Op::Heads { heads, .. } => heads.iter().for_each(|h| walk(h, Some(row), out)),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(graph, None, &mut out);
    out
}

/// The places of `N`'s rows; an error if the graph and the layer table disagree.
fn places_of<N: Network>() -> Result<Vec<Place>> {
    let places = places(N::GRAPH);
    let agree = places.len() == N::LAYERS.len()
        && places.iter().zip(N::LAYERS).all(|(p, row)| p.node().output == row.output && p.node().path == row.path);
    if !agree {
        return Err(Error::InvalidArgument {
            name: "model",
            reason: format!(
                "its graph ({} nodes) does not match its layer table ({} rows)",
                places.len(),
                N::LAYERS.len()
            ),
        });
    }
    Ok(places)
}

/// The rows of [`Network::LAYERS`] that are convolutions, blocks' included, in order.
pub fn convolutions<N: Network>() -> Vec<usize> {
    conv_rows(&places(N::GRAPH))
}

/// The rows of `places` that are convolutions.
fn conv_rows(places: &[Place]) -> Vec<usize> {
    places.iter().enumerate().filter(|(_, p)| matches!(p.node().op, Op::Conv { .. })).map(|(r, _)| r).collect()
}

/// The row checked to be a convolution of `N`.
fn conv_row<N: Network>(row: usize) -> Result<()> {
    match N::LAYERS.get(row) {
        Some(_) if convolutions::<N>().contains(&row) => Ok(()),
        Some(info) => Err(Error::InvalidArgument {
            name: "row",
            reason: format!("row {row} of the layer table is `{}`, not a convolution", info.layer),
        }),
        None => Err(Error::InvalidArgument {
            name: "row",
            reason: format!("the model has {} rows in its layer table, not {}", N::LAYERS.len(), row + 1),
        }),
    }
}

/// The activation buffer holding the maps of convolution `row` as the next layer reads them,
/// and the last row whose output they are: the rows that follow the convolution in its chain
/// and keep its shape (batch normalisation, activations, dropout, sparsity) either write a
/// buffer of their own or are fused into the one before them (or, in evaluation, change
/// nothing), so the latest buffer of the run holds the output of its last row.
fn maps_buffer<N: Network>(places: &[Place], row: usize) -> Option<(usize, usize)> {
    let place = places[row];
    let mut last = row;
    for (k, node) in place.chain.iter().enumerate().skip(place.index + 1) {
        let elementwise =
            matches!(node.op, Op::BatchNorm | Op::Activation(_) | Op::Dropout { .. } | Op::Sparsity { .. });
        if !elementwise {
            break;
        }
        last = row + (k - place.index);
    }
    let buffer = (row..=last).rev().find_map(|r| N::ACTIVATIONS.iter().position(|&(w, _)| w == r))?;
    Some((buffer, last))
}

/// Runs `model` on the samples of `x` in evaluation mode (checking them as
/// [`Model::forward`](crate::Model::forward) does) and returns their number.
fn run<N: Network>(model: &mut N, x: &[f32]) -> Result<usize> {
    let n = samples(N::INPUT, x)?;
    in_pool(|| model.forward_pass(n, x, None));
    Ok(n)
}

/// The values of activation buffer `buffer` for sample `i` of the last pass over `n` samples.
fn buffer_of<N: Network>(model: &N, buffer: usize, n: usize, i: usize) -> &[f32] {
    let start = n * N::ACTIVATIONS[..buffer].iter().map(|&(_, len)| len).sum::<usize>();
    let len = N::ACTIVATIONS[buffer].1;
    &activations(model)[start + i * len..start + (i + 1) * len]
}

/// The feature maps of every convolution of `model` for the one sample `x`, in the order of
/// [`convolutions`], from a forward pass in evaluation mode.
///
/// Each convolution's maps are taken where the next layer reads them: after the batch
/// normalisation and activation that follow it ([`FeatureMaps::through`]).
pub fn feature_maps<N: Network>(model: &mut N, x: &[f32]) -> Result<Vec<FeatureMaps>> {
    if x.len() != N::INPUT_LEN {
        return Err(Error::InputLength { shape: N::INPUT, per_sample: N::INPUT_LEN, found: x.len() });
    }
    let places = places_of::<N>()?;
    run(model, x)?;
    let mut out = Vec::new();
    for row in conv_rows(&places) {
        let Some((buffer, through)) = maps_buffer::<N>(&places, row) else { continue };
        let text = N::LAYERS[row..=through].iter().map(|r| strip(r.layer)).collect::<Vec<_>>().join(" ");
        let values = buffer_of(model, buffer, 1, 0).to_vec();
        out.push(FeatureMaps { row, through, shape: N::LAYERS[through].output, values, text });
    }
    Ok(out)
}

/// A row's text without the `shortcut: ` or `branch 2: ` prefix of a block's layer.
fn strip(text: &str) -> &str {
    text.rsplit(": ").next().unwrap_or(text)
}

/// The input pixels that output position (`y`, `x`) of row `row` of [`Network::LAYERS`] reads:
/// those whose change can change it.
///
/// Convolutions and pooling widen the region by their window and multiply it by their stride,
/// and a window's part in the padding reads nothing (the field ends at the input's edges, and
/// is empty for a position that reads only padding). A residual block reads what its body and
/// its shortcut read, a `concat` block what its branches read (a bounding box: one channel
/// comes from one branch); a fully connected layer reads everything before it.
pub fn receptive_field<N: Network>(row: usize, y: usize, x: usize) -> Result<Field> {
    region_of::<N>(&places_of::<N>()?, row, y, x, true)
}

/// The geometric window of the [`receptive_field`] of output position (`y`, `x`) of row `row`:
/// the same size for every position of the layer, it counts padding (the input's, or a layer's
/// on the way) as if it were values, so it can reach past the pixels the position reads and
/// past the input's edges. What textbooks call the size of a receptive field.
pub fn receptive_window<N: Network>(row: usize, y: usize, x: usize) -> Result<Field> {
    region_of::<N>(&places_of::<N>()?, row, y, x, false)
}

/// [`receptive_field`] (`clip`), or [`receptive_window`], over `N`'s `places`.
fn region_of<N: Network>(places: &[Place], row: usize, y: usize, x: usize, clip: bool) -> Result<Field> {
    let Some(info) = N::LAYERS.get(row) else {
        return Err(Error::InvalidArgument {
            name: "row",
            reason: format!("the model has {} rows in its layer table, not {}", N::LAYERS.len(), row + 1),
        });
    };
    let out = info.output;
    if out.flat || y >= out.h || x >= out.w {
        return Err(Error::InvalidArgument {
            name: "position",
            reason: format!("({y}, {x}) is not a position of the {}x{} output of `{}`", out.w, out.h, info.layer),
        });
    }
    let mut region = Some(Region { rows: (y as isize, y as isize), cols: (x as isize, x as isize) });
    let mut place = places[row];
    loop {
        region = region.and_then(|r| back(&place.chain[..=place.index], r, clip));
        let Some(parent) = place.parent else { break };
        // The block reads the output of the nodes before it in its own chain.
        place = places[parent];
        if place.index == 0 {
            break;
        }
        place.index -= 1;
    }
    Ok(match region {
        Some(r) => Field {
            top: r.rows.0,
            left: r.cols.0,
            height: (r.rows.1 - r.rows.0 + 1) as usize,
            width: (r.cols.1 - r.cols.0 + 1) as usize,
        },
        None => Field { top: 0, left: 0, height: 0, width: 0 },
    })
}

/// Inclusive row and column ranges of a volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Region {
    rows: (isize, isize),
    cols: (isize, isize),
}

impl Region {
    fn union(self, other: Region) -> Region {
        Region {
            rows: (self.rows.0.min(other.rows.0), self.rows.1.max(other.rows.1)),
            cols: (self.cols.0.min(other.cols.0), self.cols.1.max(other.cols.1)),
        }
    }

    /// The whole of a volume of `shape`.
    fn all(shape: Shape) -> Region {
        Region { rows: (0, shape.h as isize - 1), cols: (0, shape.w as isize - 1) }
    }

    /// The part inside a volume of `shape`, if any.
    fn within(self, shape: Shape) -> Option<Region> {
        let rows = (self.rows.0.max(0), self.rows.1.min(shape.h as isize - 1));
        let cols = (self.cols.0.max(0), self.cols.1.min(shape.w as isize - 1));
        (rows.0 <= rows.1 && cols.0 <= cols.1).then_some(Region { rows, cols })
    }
}

/// The region of the input of `chain[0]` that `region` of the output of its last node reads:
/// only the values inside each layer's input with `clip` (`None` if it reads only padding),
/// the windows' whole extent without.
fn back(chain: &[Node], region: Region, clip: bool) -> Option<Region> {
    // A window of `size` at `stride` with `pad`: output `o` reads `o*stride - pad ..= o*stride - pad + size - 1`.
    let window = |(a, b): (isize, isize), size: usize, stride: usize, pad: usize| {
        let (s, p) = (stride as isize, pad as isize);
        (a * s - p, b * s - p + size as isize - 1)
    };
    let mut region = Some(region);
    for node in chain.iter().rev() {
        let r = region?;
        let read = match node.op {
            Op::Conv { filter, stride, pad, .. } => Region {
                rows: window(r.rows, filter.h, stride.h, pad.h),
                cols: window(r.cols, filter.w, stride.w, pad.w),
            },
            Op::Pool { window: size, stride, pad, .. } => {
                Region { rows: window(r.rows, size.h, stride.h, pad.h), cols: window(r.cols, size.w, stride.w, pad.w) }
            }
            Op::Fc { .. } => Region::all(node.input),
            Op::Residual { body, shortcut } => {
                let through = |chain: &[Node]| if chain.is_empty() { Some(r) } else { back(chain, r, clip) };
                match (through(body), through(shortcut)) {
                    (Some(a), Some(b)) => a.union(b),
                    (a, b) => {
                        region = a.or(b);
                        continue;
                    }
                }
            }
            Op::Concat { branches } => {
                region = branches.iter().filter_map(|b| back(b, r, clip)).reduce(Region::union);
                continue;
            }
            // The heads read the trunk's output; a head's own layers sit in their own chain.
            Op::Heads { .. }
            | Op::Input
            | Op::Activation(_)
            | Op::Softmax
            | Op::Dropout { .. }
            | Op::Sparsity { .. }
            | Op::BatchNorm
            | Op::Lrn { .. } => r,
        };
        region = if clip { read.within(node.input) } else { Some(read) };
    }
    region
}

/// For each filter of convolution `row` (indices into [`Network::LAYERS`]; see
/// [`convolutions`]), the `k` samples of `images` whose maps respond most strongly, strongest
/// first: each with its strongest position and the input patch that position reads.
///
/// The maps are those of [`feature_maps`] (after the convolution's batch normalisation and
/// activation). A sample counts once per filter, at its strongest position, as in Zeiler and
/// Fergus's figures; the samples run through the model `batch` at a time.
pub fn strongest_patches<N: Network>(
    model: &mut N,
    images: &[f32],
    row: usize,
    k: usize,
    batch: usize,
) -> Result<Vec<Vec<Patch>>> {
    conv_row::<N>(row)?;
    if batch == 0 || k == 0 {
        return Err(Error::InvalidArgument { name: "k, batch", reason: "both must be at least 1".into() });
    }
    samples(N::INPUT, images)?;
    let places = places_of::<N>()?;
    let Some((buffer, through)) = maps_buffer::<N>(&places, row) else {
        return Err(Error::InvalidArgument { name: "row", reason: format!("row {row} writes no activation") });
    };
    let shape = N::LAYERS[through].output;
    let area = shape.w * shape.h;
    let mut best: Vec<Vec<(f32, usize, usize)>> = vec![Vec::with_capacity(k + 1); shape.d];
    for (b, chunk) in images.chunks(batch * N::INPUT_LEN).enumerate() {
        let n = run(model, chunk)?;
        for i in 0..n {
            let maps = buffer_of(model, buffer, n, i);
            for (c, kept) in best.iter_mut().enumerate() {
                let map = &maps[c * area..(c + 1) * area];
                let (at, &value) =
                    map.iter()
                        .enumerate()
                        .fold((0, &f32::NEG_INFINITY), |m, (j, v)| if *v > *m.1 { (j, v) } else { m });
                let place = kept.partition_point(|e| e.0 >= value);
                if place < k {
                    kept.insert(place, (value, b * batch + i, at));
                    kept.truncate(k);
                }
            }
        }
    }
    best.into_iter()
        .map(|kept| {
            kept.into_iter()
                .map(|(value, sample, at)| {
                    let at = (at / shape.w, at % shape.w);
                    let field = region_of::<N>(&places, through, at.0, at.1, true)?;
                    let window = region_of::<N>(&places, through, at.0, at.1, false)?;
                    Ok(Patch { sample, at, value, field, window })
                })
                .collect()
        })
        .collect()
}
