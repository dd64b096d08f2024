//! [nalgebra](https://nalgebra.org) at the boundary (feature `nalgebra`, on by default): data
//! in and out as nalgebra matrices and vectors, and each fully connected layer's weights as a
//! nalgebra view of the model's own memory.
//!
//! nalgebra stays off the hot path: the passes run on this crate's kernels, and nothing here
//! multiplies with nalgebra (whose product on small strided views reads out of bounds, nalgebra
//! issue #1616). A batch is a matrix with **one sample per column**: nalgebra is column-major,
//! so a contiguous `INPUT_LEN × n` matrix is exactly the batch layout [`Model::forward`] takes,
//! and is passed on without a copy. Each generated single-output model also has
//! `probabilities_vector` and `classify_vector`, which take one sample as an
//! `SVector<f32, INPUT_LEN>`, so that a vector of the wrong length is a type error:
//!
//! ```
//! use cnn::na::{forward_columns, fc_weights, nalgebra::{DMatrix, SVector}};
//! use cnn::prelude::*;
//!
//! cnn::cnn! { struct Tiny < input(4) fc(3) softmax > }
//!
//! let mut model = Tiny::with_seed(1);
//! let x = SVector::<f32, 4>::new(0.5, -1.0, 0.25, 2.0);
//! let p: SVector<f32, 3> = model.probabilities_vector(&x);
//! let batch = DMatrix::from_fn(4, 2, |r, c| x[r] * (c + 1) as f32); // 4 × 2: two samples
//! let out = forward_columns(&mut model, &batch)?;             // 3 × 2
//! assert_eq!(out.column(0), p);
//! let w = fc_weights(&model, 1)?;                             // Wᵀ, 4 × 3, no copy
//! assert_eq!((w.weight.nrows(), w.weight.ncols()), (4, 3));
//! # Ok::<(), cnn::Error>(())
//! ```

use nalgebra::{DMatrix, DMatrixView, DVectorView, Dim, Matrix, RawStorage};

use crate::prelude::*;

use crate::{Error, Model, Network, Result};

/// The nalgebra these functions take and return, so that a program can name its types
/// without depending on a second copy.
pub use nalgebra;

/// The samples of `x`, one per column (`INPUT_LEN` rows), as the flat batch the model takes:
/// the matrix's own memory when it is contiguous, a copy otherwise.
fn batch<'a, M: Network, R: Dim, C: Dim, S: RawStorage<f32, R, C>>(
    x: &'a Matrix<f32, R, C, S>,
    copy: &'a mut Vec<f32>,
) -> Result<&'a [f32]> {
    if x.nrows() != M::INPUT_LEN {
        return Err(Error::InvalidArgument {
            name: "x",
            reason: format!("has {} rows; each column is a sample of {} values", x.nrows(), M::INPUT_LEN),
        });
    }
    if x.data.is_contiguous() {
        // SAFETY: `is_contiguous` is the condition `as_slice_unchecked` asks for.
        Ok(unsafe { x.data.as_slice_unchecked() })
    } else {
        // Column after column, element by element: no nalgebra arithmetic.
        *copy = x.iter().copied().collect();
        Ok(copy)
    }
}

/// The outputs of a batch given one sample per column: an `OUTPUT_LEN × n` matrix, one column
/// per sample, in evaluation mode. An `x` without `INPUT_LEN` rows is an `Err`.
pub fn forward_columns<M: Model, R: Dim, C: Dim, S: RawStorage<f32, R, C>>(
    model: &mut M,
    x: &Matrix<f32, R, C, S>,
) -> Result<DMatrix<f32>> {
    let mut copy = Vec::new();
    let out = model.forward(batch::<M, _, _, _>(x, &mut copy)?)?;
    Ok(DMatrix::from_column_slice(M::OUTPUT_LEN, x.ncols(), out))
}

/// The most probable class of each column's sample.
pub fn predict_columns<M: Model, R: Dim, C: Dim, S: RawStorage<f32, R, C>>(
    model: &mut M,
    x: &Matrix<f32, R, C, S>,
) -> Result<Vec<usize>> {
    let mut copy = Vec::new();
    model.predict(batch::<M, _, _, _>(x, &mut copy)?)
}

/// A fully connected layer's parameters, viewed in place.
#[derive(Clone, Copy, Debug)]
pub struct FcView<'a> {
    /// The weights as an `in × out` matrix: PyTorch's row-major `[out, in]` read column-major,
    /// i.e. Wᵀ, so that `weight.transpose() * x + bias` is the layer's output for a sample `x`.
    pub weight: DMatrixView<'a, f32>,
    /// The bias (`out` values), if the layer has one.
    pub bias: Option<DVectorView<'a, f32>>,
}

/// The weights (and bias) of the fully connected layer in row `layer` of [`Network::LAYERS`],
/// as views of the model's parameters: no copy. A row that is not an `fc` layer is an `Err`.
pub fn fc_weights<M: Network>(model: &M, layer: usize) -> Result<FcView<'_>> {
    let not_fc = |what: String| Error::InvalidArgument { name: "layer", reason: what };
    let info = M::LAYERS.get(layer).ok_or_else(|| not_fc(format!("{layer} is past the {} rows", M::LAYERS.len())))?;
    if !info.layer.starts_with("fc(") {
        return Err(not_fc(format!("row {layer} is `{}`, not a fully connected layer", info.layer)));
    }
    let tensor = |suffix: &str| M::TENSORS.iter().find(|t| t.name.strip_suffix(suffix) == Some(info.path));
    let weight = tensor(".weight").ok_or_else(|| not_fc(format!("row {layer} has no weight tensor")))?;
    let (out, inputs) = (weight.shape[0], weight.shape[1]);
    let params = model.params();
    let weight = DMatrixView::from_slice(&params[weight.offset..weight.offset + out * inputs], inputs, out);
    let bias = tensor(".bias").map(|b| DVectorView::from_slice(&params[b.offset..b.offset + out], out));
    Ok(FcView { weight, bias })
}

/// Expands to its input when the `nalgebra` feature is on, to nothing otherwise: wraps what
/// `cnn!` generates for nalgebra types.
#[doc(hidden)]
#[macro_export]
macro_rules! __with_nalgebra {
    ($($item:tt)*) => { $($item)* };
}

#[cfg(test)]
mod tests;
