//! Nothing to use: this package holds the test (`tests/onnx.rs`) that runs the ONNX files
//! `cnn::onnx` writes in tract, a pure-Rust ONNX runtime, and compares their outputs with the
//! models' own.
