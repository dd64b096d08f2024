//! The fuzz targets.

pub mod api;
pub mod data;
pub mod files;
pub mod folder;

pub use api::Api;
pub use data::{Cifar, IdxImages, IdxLabels, CIFAR_RECORD};
pub use files::{Checkpoint, Weights};
pub use folder::Folder;

use crate::runner::Target;

/// The names of every target, in the order `all` runs them.
pub const NAMES: [&str; 7] = ["idx-images", "idx-labels", "cifar", "image-folder", "weights", "checkpoint", "api"];

/// The target called `name`.
pub fn by_name(name: &str) -> Option<Box<dyn Target>> {
    Some(match name {
        "idx-images" => Box::new(IdxImages::new()),
        "idx-labels" => Box::new(IdxLabels::new()),
        "cifar" => Box::new(Cifar::new()),
        "image-folder" => Box::new(Folder::new()),
        "weights" => Box::new(Weights::new()),
        "checkpoint" => Box::new(Checkpoint::new()),
        "api" => Box::new(Api::new()),
        _ => return None,
    })
}
