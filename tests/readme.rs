//! The README stays true: its tables of the course's models are the ones the macro computes.

#[path = "../examples/zoo/models.rs"]
mod models;

use cnn::Model;
use models::{AlexNet32, LeNet5, Mlp, Perceptron, ResNet8};

#[test]
fn the_readme_shows_each_models_summary() {
    let readme = include_str!("../README.md");
    let summaries = [
        ("Perceptron", Perceptron::SUMMARY),
        ("Mlp", Mlp::SUMMARY),
        ("LeNet5", LeNet5::SUMMARY),
        ("AlexNet32", AlexNet32::SUMMARY),
        ("ResNet8", ResNet8::SUMMARY),
    ];
    for (name, summary) in summaries {
        assert!(readme.contains(summary), "the README lacks {name}'s summary:\n{summary}");
    }
}
