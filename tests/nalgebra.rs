//! nalgebra at the boundary: vectors and matrices in and out give the flat API's results,
//! without copies where the data is contiguous; fully connected weights as in-place views.

use cnn::na::nalgebra::{DMatrix, DVector, SVector};
use cnn::na::{fc_weights, forward_columns, predict_columns};
use cnn::prelude::*;
use cnn::{cnn, Error};

cnn! {
    struct Small <
        input(6x6x2) conv(3x3, 4) relu pool(2) fc(5) tanh fc(3, bias=false) softmax
    >
}

fn sample(seed: usize, len: usize) -> Vec<f32> {
    (0..len).map(|i| (((i * 7 + seed * 13) % 17) as f32 - 8.0) / 8.0).collect()
}

#[test]
fn a_vector_in_gives_the_arrays_results() {
    let mut model = Small::with_seed(1);
    let x = sample(1, Small::INPUT_LEN);
    let array: [f32; 72] = x.clone().try_into().unwrap();
    let vector = SVector::<f32, 72>::from_column_slice(&x);
    let p: SVector<f32, 3> = model.probabilities_vector(&vector);
    assert_eq!(p.as_slice(), model.probabilities(&array));
    assert_eq!(model.classify_vector(&vector), model.classify(&array));
}

#[test]
fn a_matrix_of_columns_is_a_batch() {
    let mut model = Small::with_seed(2);
    let n = 4;
    let flat: Vec<f32> = (0..n).flat_map(|s| sample(s, Small::INPUT_LEN)).collect();
    let want = model.forward(&flat).unwrap().to_vec();
    // Contiguous: the matrix's memory is the batch.
    let x = DMatrix::from_column_slice(Small::INPUT_LEN, n, &flat);
    let out = forward_columns(&mut model, &x).unwrap();
    assert_eq!((out.nrows(), out.ncols()), (3, n));
    assert_eq!(out.as_slice(), &want[..]);
    assert_eq!(predict_columns(&mut model, &x).unwrap(), model.predict(&flat).unwrap());
    // Not contiguous (every other column of a wider matrix): copied, same results.
    let wide = DMatrix::from_fn(Small::INPUT_LEN, 2 * n, |r, c| if c % 2 == 0 { x[(r, c / 2)] } else { f32::NAN });
    let every_other = wide.columns_with_step(0, n, 1);
    assert_eq!(forward_columns(&mut model, &every_other).unwrap(), out);
    // A row view of a transposed batch (samples as rows) is strided too.
    let rows = x.transpose();
    assert_eq!(forward_columns(&mut model, &rows.transpose()).unwrap(), out);
    // No columns: the flat API's error.
    let empty = forward_columns(&mut model, &DMatrix::<f32>::zeros(Small::INPUT_LEN, 0)).unwrap_err();
    assert!(matches!(empty, Error::EmptyBatch), "{empty}");
}

#[test]
fn a_matrix_of_the_wrong_height_is_an_error() {
    let mut model = Small::with_seed(3);
    let error = forward_columns(&mut model, &DMatrix::<f32>::zeros(71, 2)).unwrap_err();
    assert!(matches!(error, Error::InvalidArgument { name: "x", .. }), "{error}");
    assert!(error.to_string().contains("71 rows"), "{error}");
    assert!(predict_columns(&mut model, &DVector::<f32>::zeros(73)).is_err());
}

#[test]
fn fc_weights_are_the_transpose_in_place() {
    let model = Small::with_seed(4);
    let fc = Small::LAYERS.iter().position(|l| l.layer.starts_with("fc(5")).unwrap();
    let view = fc_weights(&model, fc).unwrap();
    assert_eq!((view.weight.nrows(), view.weight.ncols()), (16, 5));
    // No copy: the view's memory is the model's parameters.
    let params = model.params().as_ptr_range();
    assert!(params.contains(&view.weight.as_ptr()) && params.contains(&view.bias.unwrap().as_ptr()));
    // The layer's output for a flattened volume: Wᵀᵀ h + b, as PyTorch's `[out, in]` weight says.
    let weight = Small::TENSORS.iter().find(|t| t.name.ends_with(".weight") && t.shape == [5, 16]).unwrap();
    let w = &model.params()[weight.offset..weight.offset + 80];
    let h = DVector::from_fn(16, |i, _| (i as f32 - 8.0) / 10.0);
    let by_hand: Vec<f32> = (0..5).map(|o| (0..16).map(|i| w[o * 16 + i] * h[i]).sum()).collect();
    // The product below is nalgebra's on an owned, contiguous matrix: never a small strided view.
    let by_view = view.weight.transpose() * &h;
    for (a, b) in by_view.iter().zip(&by_hand) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    let last = Small::LAYERS.len() - 2;
    assert!(fc_weights(&model, last).unwrap().bias.is_none(), "fc(3, bias=false) has no bias");
    let conv = fc_weights(&model, 1).unwrap_err();
    assert!(conv.to_string().contains("not a fully connected layer"), "{conv}");
    assert!(fc_weights(&model, 99).is_err());
}
