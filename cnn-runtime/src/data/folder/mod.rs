//! Image folders: one sub-directory of PNG and JPEG files per class, as torchvision's
//! `ImageFolder` reads them, decoded and resized to a model's input.
//!
//! [`ImageFolder::open`] lists the folder once; [`FolderBatches`] streams it in batches,
//! decoding ahead in background threads within a memory ceiling; [`ImageFolder::load`] reads a
//! small folder whole into a [`Dataset`](crate::data::Dataset);
//! [`ImageFolder::channel_stats`] computes the mean and deviation to standardise with.
//!
//! ```no_run
//! use cnn::data::{FolderBatches, ImageFolder, OnError, Resize};
//! use cnn::Shape;
//!
//! let folder = ImageFolder::open("data/pets/train", Shape::volume(64, 64, 3))?
//!     .resize(Resize::CropCentre { shorter_side: 72 })?;
//! println!("{} images of {:?}, per class {:?}", folder.len(), folder.classes(), folder.class_counts());
//! let stats = folder.channel_stats(OnError::Skip)?;
//! let mut batches = FolderBatches::new(&folder, 32, 7)?
//!     .ceiling(64 << 20)?
//!     .on_error(OnError::Skip)
//!     .standardise(&stats.mean, &stats.std)?;
//! for epoch in 0..2 {
//!     batches.start_epoch(epoch)?;
//!     while let Some(batch) = batches.next_batch()? {
//!         assert_eq!(batch.images.len(), batch.labels.len() * 64 * 64 * 3);
//!         // model.train_step(&mut opt, batch.images, batch.labels)?;
//!     }
//! }
//! for skipped in batches.skipped() {
//!     eprintln!("left out {}: {}", skipped.path.display(), skipped.reason);
//! }
//! # Ok::<(), cnn::Error>(())
//! ```

mod decode;
mod load;
mod resample;
mod scan;
mod stream;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use stream::FolderBatches;

use self::decode::{Decoder, DEFAULT_MAX_PIXELS};
use crate::{Error, Result, Shape};

/// How each image is brought to the width and height of the target shape, with the triangle
/// (bilinear, antialiased when shrinking) filter of PIL's `BILINEAR` and the `image` crate's
/// `FilterType::Triangle`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Resize {
    /// Each side scaled to the target's on its own, so the aspect ratio may change.
    #[default]
    Stretch,
    /// The shorter side scaled to `shorter_side` pixels and the longer one in proportion (rounded
    /// down), then the target's width and height cut out of the centre (offsets rounded half to
    /// even): torchvision's `Resize(shorter_side)` followed by `CenterCrop((h, w))`, done in one
    /// resampling of the source. `shorter_side` must be at least the target's width and height.
    CropCentre {
        /// The length the shorter side is scaled to, in pixels.
        shorter_side: usize,
    },
}

/// What is done with an image that cannot be read or decoded: a file that is truncated,
/// corrupt, not a PNG or JPEG, larger than [`ImageFolder::max_pixels`] allows, or gone since the
/// folder was listed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnError {
    /// The call fails with an [`Error::File`] naming the image and the reason.
    #[default]
    Fail,
    /// The image is left out, its label with it, and recorded as [`Skipped`]; a batch is filled
    /// with the samples that follow.
    Skip,
}

/// An image left out under [`OnError::Skip`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Its index in the folder ([`ImageFolder::path`]).
    pub index: usize,
    /// Its file.
    pub path: PathBuf,
    /// Why it could not be used.
    pub reason: String,
}

impl Skipped {
    /// The record of `error`, the failure to read image `index`.
    fn new(index: usize, error: Error) -> Skipped {
        match error {
            Error::File { path, reason } => Skipped { index, path, reason },
            other => Skipped { index, path: PathBuf::new(), reason: other.to_string() },
        }
    }
}

/// Per-channel statistics of a folder's images, as its loaders produce them (decoded and
/// resized, before augmentation), from [`ImageFolder::channel_stats`].
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelStats {
    /// The mean of each channel over every pixel of every image read.
    pub mean: Vec<f32>,
    /// The standard deviation of each channel over the same pixels (of the population: divided
    /// by the number of pixels, not one less).
    pub std: Vec<f32>,
    /// Images read.
    pub images: usize,
    /// Images left out, under [`OnError::Skip`].
    pub skipped: Vec<Skipped>,
}

/// The listing a folder's loaders share.
#[derive(Debug)]
struct Files {
    root: PathBuf,
    classes: Vec<String>,
    counts: Vec<usize>,
    paths: Vec<PathBuf>,
    labels: Vec<usize>,
}

/// A directory of labelled images: one sub-directory per class, holding PNG and JPEG files.
///
/// Classes are the names of the sub-directories, sorted (by their bytes, as Python sorts
/// strings), and an image's label is its class's index in that list, as in torchvision. Within
/// a class, images are listed by file name, then those of nested directories, each in turn by
/// name, so an image's index is the same from run to run. A file is listed when its extension
/// is `png`, `jpg` or `jpeg`, in any case; files and directories whose names start with a dot
/// (`.DS_Store`, `.ipynb_checkpoints`) and other files are left out. Symbolic links are followed.
/// A class directory without images keeps its place and label, with a count of 0 in
/// [`class_counts`](Self::class_counts) (torchvision refuses such a folder by default).
///
/// Images are recognised by their content, not their extension, and come out as the target
/// shape says: grey (depth 1) or RGB (depth 3), `f32` in [0, 1], in NCHW order as in
/// [`Dataset::images`](crate::data::Dataset). Grey, grey and alpha, RGB and RGBA images of 8 or
/// 16 bits are read; alpha is dropped (not blended), grey is repeated into RGB, and colour
/// becomes grey with the Rec. 709 luma weights the `image` crate uses (0.2126 R + 0.7152 G +
/// 0.0722 B), computed in `f32`. EXIF orientation is not applied, as in torchvision.
///
/// An `ImageFolder` is cheap to clone: clones share the listing.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    files: Arc<Files>,
    decoder: Decoder,
}

impl ImageFolder {
    /// Lists the folder at `root` for images of `shape` (a volume of depth 1 or 3), stretched
    /// to its size ([`Resize::Stretch`]), of at most 2^25 pixels each
    /// ([`max_pixels`](Self::max_pixels)).
    ///
    /// Fails when `shape` is not such a volume, or `root` cannot be listed, has no class
    /// directory or no image at all (an [`Error::File`] naming it).
    pub fn open(root: impl AsRef<Path>, shape: Shape) -> Result<ImageFolder> {
        let root = root.as_ref();
        check_shape(shape)?;
        let listing = scan::scan(root)?;
        let files = Files {
            root: root.to_path_buf(),
            classes: listing.classes,
            counts: listing.counts,
            paths: listing.paths,
            labels: listing.labels,
        };
        let decoder = Decoder { shape, resize: Resize::Stretch, max_pixels: DEFAULT_MAX_PIXELS };
        Ok(ImageFolder { files: Arc::new(files), decoder })
    }

    /// Resizes the images as `resize` says. Fails when a centre crop's shorter side is smaller
    /// than the target's width or height.
    pub fn resize(mut self, resize: Resize) -> Result<ImageFolder> {
        if let Resize::CropCentre { shorter_side } = resize {
            let shape = self.decoder.shape;
            if shorter_side < shape.w.max(shape.h) {
                return Err(Error::InvalidArgument {
                    name: "resize",
                    reason: format!(
                        "a shorter side of {shorter_side} pixels is smaller than the {}x{} crop",
                        shape.w, shape.h
                    ),
                });
            }
        }
        self.decoder.resize = resize;
        Ok(self)
    }

    /// The most pixels (width times height) an image may declare: a larger one is refused as
    /// soon as its header is read, before its pixels are decoded, and so is a file larger than
    /// 16 bytes per pixel allowed. This bounds the memory each decoding thread takes (up to 8
    /// bytes per pixel for 16-bit RGBA). Fails when `pixels` is 0.
    pub fn max_pixels(mut self, pixels: u64) -> Result<ImageFolder> {
        if pixels == 0 {
            return Err(Error::InvalidArgument { name: "max_pixels", reason: "must be at least 1".into() });
        }
        self.decoder.max_pixels = pixels;
        Ok(self)
    }

    /// The folder's directory.
    pub fn root(&self) -> &Path {
        &self.files.root
    }

    /// The shape images come out in.
    pub fn shape(&self) -> Shape {
        self.decoder.shape
    }

    /// The class names, sorted; a label is an index into them.
    pub fn classes(&self) -> &[String] {
        &self.files.classes
    }

    /// Images per class, in the order of [`classes`](Self::classes) (0 for an empty class).
    pub fn class_counts(&self) -> &[usize] {
        &self.files.counts
    }

    /// Number of images listed.
    pub fn len(&self) -> usize {
        self.files.paths.len()
    }

    /// Whether no image is listed (never true of an opened folder).
    pub fn is_empty(&self) -> bool {
        self.files.paths.is_empty()
    }

    /// Every image's file, in index order.
    pub fn paths(&self) -> &[PathBuf] {
        &self.files.paths
    }

    /// Every image's label, in index order.
    pub fn labels(&self) -> &[usize] {
        &self.files.labels
    }

    /// Image `index`'s file, or `None` past the end.
    pub fn path(&self, index: usize) -> Option<&Path> {
        self.files.paths.get(index).map(PathBuf::as_path)
    }

    /// Decodes image `index` into `out`, which must hold one image of [`shape`](Self::shape).
    ///
    /// Fails when `index` or `out` is wrong, or with an [`Error::File`] naming the image when
    /// it cannot be read or decoded (`out` may then hold anything).
    pub fn read_image(&self, index: usize, out: &mut [f32]) -> Result<()> {
        let path = self.path(index).ok_or_else(|| Error::InvalidArgument {
            name: "index",
            reason: format!("image {index} of a folder of {}", self.len()),
        })?;
        if out.len() != self.decoder.shape.len() {
            return Err(Error::OutputLength { expected: self.decoder.shape.len(), found: out.len() });
        }
        self.decoder.read(path, out)
    }

    /// The label of image `index`, which exists.
    fn label(&self, index: usize) -> usize {
        self.files.labels[index]
    }
}

/// Fails unless `shape` is a grey or RGB volume whose `f32` values can be counted in bytes.
fn check_shape(shape: Shape) -> Result<()> {
    let bytes = shape.w.checked_mul(shape.h).and_then(|p| p.checked_mul(shape.d)).and_then(|v| v.checked_mul(4));
    let reason = if shape.flat {
        "images are volumes: give a shape such as 28x28x1".to_string()
    } else if shape.d != 1 && shape.d != 3 {
        format!("{} channels: images are read as grey (depth 1) or RGB (depth 3)", shape.d)
    } else if shape.is_empty() || bytes.is_none_or(|b| b > isize::MAX as usize) {
        "images of no pixel, or too many to count".to_string()
    } else {
        return Ok(());
    };
    Err(Error::InvalidArgument { name: "shape", reason: format!("{shape}: {reason}") })
}

#[cfg(test)]
mod tests;
