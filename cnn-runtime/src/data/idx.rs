//! The IDX format of MNIST and Fashion-MNIST: a big-endian header (magic number, then one
//! count per dimension) followed by unsigned bytes.

use std::path::{Path, PathBuf};

use super::{file_error, grow, Dataset, Input};
use crate::limit::Budget;
use crate::{Limit, Result, Shape};

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

/// Reads the `N`-byte header of `input`, checking the magic number (when there are 4 bytes to
/// read it from) and that the header is complete.
fn read_header<const N: usize>(input: &mut Input, magic: u32, what: &str) -> Result<[u8; N]> {
    let mut head = [0u8; N];
    let got = input.fill(&mut head)?;
    if got >= 4 && be_u32(&head, 0) != magic {
        let found = be_u32(&head, 0);
        return Err(file_error(
            input.path,
            format!("magic number {found:#010x}, expected {magic:#010x} (IDX {what} of bytes)"),
        ));
    }
    if got < N {
        return Err(file_error(input.path, format!("truncated: {got} bytes, an IDX {what} header needs {N}")));
    }
    Ok(head)
}

/// Checks that the `values` bytes a header announces (`announced` says what they are), plus
/// `later` bytes per value for what the caller makes of them, fit what is left of `budget`.
fn check_announced(input: &Input, budget: &Budget, values: Option<u64>, later: u64, announced: &str) -> Result<()> {
    match values.and_then(|v| v.checked_mul(1 + later)) {
        Some(bytes) => budget.check(input.path, bytes, &format!("the header announces {announced}, which")),
        None => Err(budget.exceeded(
            input.path,
            format!(
                "the header announces {announced}, more bytes than fit in 64 bits, more than the {} bytes left",
                budget.left()
            ),
        )),
    }
}

/// Reads the `len` bytes that follow the header, refusing the file as soon as it ends early or
/// goes on past them.
fn read_body(input: &mut Input, budget: &mut Budget, len: u64, announced: &str) -> Result<Vec<u8>> {
    let body = input.read_up_to(budget, len, "the decoded data")?;
    if (body.len() as u64) < len {
        return Err(file_error(
            input.path,
            format!("truncated: the header announces {announced}, the file holds {}", body.len()),
        ));
    }
    if !input.at_end()? {
        return Err(file_error(
            input.path,
            format!("the file goes on past the {len} bytes the header announces ({announced})"),
        ));
    }
    Ok(body)
}

/// Reads an IDX image file, checking before it reads the pixels that they and `later` bytes
/// per pixel fit `budget`.
fn read_images(path: &Path, budget: &mut Budget, later: u64) -> Result<IdxImages> {
    let mut input = Input::open(path)?;
    let head = read_header::<16>(&mut input, IMAGES_MAGIC, "images")?;
    let (count, rows, cols) = (be_u32(&head, 4), be_u32(&head, 8), be_u32(&head, 12));
    if rows == 0 || cols == 0 {
        return Err(file_error(path, format!("images of {rows}x{cols} pixels")));
    }
    let len = u64::from(count).checked_mul(u64::from(rows)).and_then(|v| v.checked_mul(u64::from(cols)));
    let mut announced = format!("{count} images of {rows}x{cols}");
    check_announced(&input, budget, len, later, &announced)?;
    let len = len.unwrap_or(u64::MAX);
    announced += &format!(" ({len} bytes)");
    let pixels = read_body(&mut input, budget, len, &announced)?;
    Ok(IdxImages { pixels, count: count as usize, rows: rows as usize, cols: cols as usize })
}

/// Reads an IDX label file, checking before it reads the labels that they and `later` bytes per
/// label fit `budget`.
fn read_labels(path: &Path, budget: &mut Budget, later: u64) -> Result<Vec<u8>> {
    let mut input = Input::open(path)?;
    let head = read_header::<8>(&mut input, LABELS_MAGIC, "labels")?;
    let count = be_u32(&head, 4);
    let announced = format!("{count} labels");
    check_announced(&input, budget, Some(u64::from(count)), later, &announced)?;
    read_body(&mut input, budget, u64::from(count), &announced)
}

/// Reads an IDX image file (`*-images-idx3-ubyte`, gzip-compressed or not) within
/// [`Limit::DEFAULT`]; see [`read_idx_images_with`].
pub fn read_idx_images(path: &Path) -> Result<IdxImages> {
    read_idx_images_with(path, Limit::DEFAULT)
}

/// Reads an IDX image file (`*-images-idx3-ubyte`, gzip-compressed or not), allocating at most
/// `limit` bytes for its decoded pixels.
///
/// A header announcing more pixels than `limit` allows, or a file that decodes to more or fewer
/// bytes than its header announces, is an [`Error::File`](crate::Error::File) naming the file
/// (and the limit, when it is the cause); the excess is never decoded beyond its first byte.
pub fn read_idx_images_with(path: &Path, limit: Limit) -> Result<IdxImages> {
    read_images(path, &mut Budget::new(limit), 0)
}

/// Reads an IDX label file (`*-labels-idx1-ubyte`, gzip-compressed or not) within
/// [`Limit::DEFAULT`]; see [`read_idx_labels_with`].
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    read_idx_labels_with(path, Limit::DEFAULT)
}

/// Reads an IDX label file (`*-labels-idx1-ubyte`, gzip-compressed or not), allocating at most
/// `limit` bytes for its decoded labels.
///
/// The errors are those of [`read_idx_images_with`], for labels.
pub fn read_idx_labels_with(path: &Path, limit: Limit) -> Result<Vec<u8>> {
    read_labels(path, &mut Budget::new(limit), 0)
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
fn load_pair(images: &Path, labels: &Path, budget: &mut Budget) -> Result<Dataset> {
    let IdxImages { pixels: raw, count, rows, cols } = read_images(images, budget, core::mem::size_of::<f32>() as u64)?;
    let mut pixels = Vec::new();
    grow(images, budget, &mut pixels, raw.len(), "the f32 images")?;
    pixels.extend(raw.iter().map(|&p| p as f32 / 255.0));
    drop(raw);
    let lab = read_labels(labels, budget, core::mem::size_of::<usize>() as u64)?;
    if lab.len() != count {
        return Err(file_error(labels, format!("{} labels, but {} holds {count} images", lab.len(), images.display())));
    }
    if let Some((i, l)) = lab.iter().enumerate().find(|(_, &l)| l >= 10) {
        return Err(file_error(labels, format!("label {l} of sample {i} is out of range 0..=9")));
    }
    let mut classes = Vec::new();
    grow(labels, budget, &mut classes, lab.len(), "the labels")?;
    classes.extend(lab.iter().map(|&l| l as usize));
    Ok(Dataset {
        images: pixels,
        labels: classes,
        shape: Shape::volume(cols, rows, 1),
        classes: 10,
        source: images.to_path_buf(),
    })
}

/// Reads MNIST (or Fashion-MNIST, which has the same files) from `dir` within
/// [`Limit::DEFAULT`]; see [`load_mnist_with`].
pub fn load_mnist(dir: &Path) -> Result<(Dataset, Dataset)> {
    load_mnist_with(dir, Limit::DEFAULT)
}

/// Reads MNIST (or Fashion-MNIST, which has the same files) from `dir`: the training set from
/// `train-images-idx3-ubyte` and `train-labels-idx1-ubyte`, the test set from
/// `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each optionally ending in `.gz`.
///
/// `limit` covers the whole call: the decoded bytes of the four files plus the `f32` images
/// (4 bytes a pixel) and `usize` labels made from them. A header announcing more than is left of
/// it, like any malformed file, is an [`Error::File`](crate::Error::File) naming the file (and
/// the limit, when it is the cause), given before the file's data is read.
pub fn load_mnist_with(dir: &Path, limit: Limit) -> Result<(Dataset, Dataset)> {
    let mut budget = Budget::new(limit);
    let train = load_pair(&find(dir, "train-images-idx3-ubyte"), &find(dir, "train-labels-idx1-ubyte"), &mut budget)?;
    let test = load_pair(&find(dir, "t10k-images-idx3-ubyte"), &find(dir, "t10k-labels-idx1-ubyte"), &mut budget)?;
    Ok((train, test))
}
