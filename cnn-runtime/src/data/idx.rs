//! The IDX format of MNIST and Fashion-MNIST: a big-endian header (magic number, then one
//! count per dimension) followed by unsigned bytes.

use std::path::{Path, PathBuf};

use super::{file_error, read_bytes, Dataset};
use crate::{Result, Shape};

/// Magic number of an IDX file of unsigned bytes with 3 dimensions (images).
const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with 1 dimension (labels).
const LABELS_MAGIC: u32 = 0x0000_0801;

/// The images of an IDX file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    /// Pixels, image after image, row after row.
    pub pixels: Vec<u8>,
    /// Number of images.
    pub count: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Checks the magic number (when there are 4 bytes to read it from) and that the header is
/// complete.
fn check_header(path: &Path, bytes: &[u8], magic: u32, header: usize, what: &str) -> Result<()> {
    if bytes.len() >= 4 && be_u32(bytes, 0) != magic {
        let found = be_u32(bytes, 0);
        return Err(file_error(
            path,
            format!("magic number {found:#010x}, expected {magic:#010x} (IDX {what} of bytes)"),
        ));
    }
    if bytes.len() < header {
        return Err(file_error(path, format!("truncated: {} bytes, an IDX {what} header needs {header}", bytes.len())));
    }
    Ok(())
}

/// Reads an IDX image file (`*-images-idx3-ubyte`, gzip-compressed or not).
pub fn read_idx_images(path: &Path) -> Result<IdxImages> {
    let bytes = read_bytes(path)?;
    check_header(path, &bytes, IMAGES_MAGIC, 16, "images")?;
    let (count, rows, cols) = (be_u32(&bytes, 4) as usize, be_u32(&bytes, 8) as usize, be_u32(&bytes, 12) as usize);
    if rows == 0 || cols == 0 {
        return Err(file_error(path, format!("images of {rows}x{cols} pixels")));
    }
    let expected = count.checked_mul(rows).and_then(|v| v.checked_mul(cols));
    let found = bytes.len() - 16;
    match expected {
        Some(e) if e == found => {}
        Some(e) if e > found => {
            return Err(file_error(
                path,
                format!(
                "truncated: the header announces {count} images of {rows}x{cols} ({e} bytes), the file holds {found}"
            ),
            ))
        }
        _ => {
            return Err(file_error(
                path,
                format!("{found} bytes of pixels, but the header announces {count} images of {rows}x{cols}"),
            ))
        }
    }
    Ok(IdxImages { pixels: bytes[16..].to_vec(), count, rows, cols })
}

/// Reads an IDX label file (`*-labels-idx1-ubyte`, gzip-compressed or not).
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    let bytes = read_bytes(path)?;
    check_header(path, &bytes, LABELS_MAGIC, 8, "labels")?;
    let count = be_u32(&bytes, 4) as usize;
    let found = bytes.len() - 8;
    if count != found {
        let what = if count > found { "truncated: " } else { "" };
        return Err(file_error(path, format!("{what}the header announces {count} labels, the file holds {found}")));
    }
    Ok(bytes[8..].to_vec())
}

/// `dir/name` or `dir/name.gz`, whichever exists (the gzip one when neither does, for the
/// message).
fn find(dir: &Path, name: &str) -> PathBuf {
    let plain = dir.join(name);
    if plain.exists() {
        plain
    } else {
        dir.join(format!("{name}.gz"))
    }
}

/// Reads one image file and its label file into a data set of 10 classes.
fn load_pair(images: &Path, labels: &Path) -> Result<Dataset> {
    let img = read_idx_images(images)?;
    let lab = read_idx_labels(labels)?;
    if lab.len() != img.count {
        return Err(file_error(
            labels,
            format!("{} labels, but {} holds {} images", lab.len(), images.display(), img.count),
        ));
    }
    if let Some((i, l)) = lab.iter().enumerate().find(|(_, &l)| l >= 10) {
        return Err(file_error(labels, format!("label {l} of sample {i} is out of range 0..=9")));
    }
    Ok(Dataset {
        images: img.pixels.iter().map(|&p| p as f32 / 255.0).collect(),
        labels: lab.iter().map(|&l| l as usize).collect(),
        shape: Shape::volume(img.cols, img.rows, 1),
        classes: 10,
        source: images.to_path_buf(),
    })
}

/// Reads MNIST (or Fashion-MNIST, which has the same files) from `dir`: the training set from
/// `train-images-idx3-ubyte` and `train-labels-idx1-ubyte`, the test set from
/// `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each optionally ending in `.gz`.
pub fn load_mnist(dir: &Path) -> Result<(Dataset, Dataset)> {
    let train = load_pair(&find(dir, "train-images-idx3-ubyte"), &find(dir, "train-labels-idx1-ubyte"))?;
    let test = load_pair(&find(dir, "t10k-images-idx3-ubyte"), &find(dir, "t10k-labels-idx1-ubyte"))?;
    Ok((train, test))
}
