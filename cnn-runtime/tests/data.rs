//! The data loaders on small files written here: good ones load, and every malformed one is an
//! error that names the file and the problem.

use std::io::Write;
use std::path::{Path, PathBuf};

use cnn_runtime::data::{
    load_cifar10, load_cifar10_with, load_mnist, load_mnist_with, read_idx_images, read_idx_images_with,
    read_idx_labels, read_idx_labels_with,
};
use cnn_runtime::{Error, Limit, Shape};

fn images_file(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [0x803, count, rows, cols] {
        v.extend(x.to_be_bytes());
    }
    v.extend(pixels);
    v
}

fn labels_file(count: u32, labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [0x801, count] {
        v.extend(x.to_be_bytes());
    }
    v.extend(labels);
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A complete MNIST-style directory: 3 training and 2 test images of 2x3 pixels.
fn mnist_dir(gz: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let pack = |b: Vec<u8>| if gz { gzip(&b) } else { b };
    let ext = if gz { ".gz" } else { "" };
    write(dir.path(), &format!("train-images-idx3-ubyte{ext}"), &pack(images_file(3, 2, 3, &[255; 18])));
    write(dir.path(), &format!("train-labels-idx1-ubyte{ext}"), &pack(labels_file(3, &[0, 9, 4])));
    write(dir.path(), &format!("t10k-images-idx3-ubyte{ext}"), &pack(images_file(2, 2, 3, &[0; 12])));
    write(dir.path(), &format!("t10k-labels-idx1-ubyte{ext}"), &pack(labels_file(2, &[1, 2])));
    dir
}

fn reason(err: Error) -> (PathBuf, String) {
    match err {
        Error::File { path, reason } => (path, reason),
        other => panic!("expected a file error, got {other:?}"),
    }
}

#[test]
fn loads_raw_and_gzip_idx() {
    for gz in [false, true] {
        let dir = mnist_dir(gz);
        let (train, test) = load_mnist(dir.path()).unwrap();
        assert_eq!((train.len(), test.len()), (3, 2));
        assert_eq!(train.shape, Shape::volume(3, 2, 1));
        assert_eq!(train.labels, [0, 9, 4]);
        assert!(train.images.iter().all(|&v| v == 1.0));
        assert_eq!(test.sample(1), Some((&[0.0; 6][..], 2)));
        assert_eq!(test.sample(2), None);
    }
}

#[test]
fn each_malformed_idx_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: Vec<(PathBuf, &str)> = vec![
        (write(d, "magic", &labels_file(1, &[0])), "magic number 0x00000801, expected 0x00000803"),
        (write(d, "short-header", &[0, 0, 8, 3, 0]), "truncated: 5 bytes, an IDX images header needs 16"),
        (
            write(d, "short-data", &images_file(2, 28, 28, &[0; 1000])),
            "truncated: the header announces 2 images of 28x28 (1568 bytes), the file holds 1000",
        ),
        (
            write(d, "long-data", &images_file(1, 2, 2, &[0; 5])),
            "the file goes on past the 4 bytes the header announces (1 images of 2x2 (4 bytes))",
        ),
        (write(d, "zero-size", &images_file(1, 0, 2, &[])), "images of 0x2 pixels"),
        // A header announcing 4 billion images of 65535x65535 allocates nothing.
        (
            write(d, "absurd", &images_file(u32::MAX, 65_535, 65_535, &[1, 2, 3])),
            "the header announces 4294967295 images of 65535x65535, which would need 18446181123756261375 bytes",
        ),
        (
            write(d, "past-64-bits", &images_file(u32::MAX, u32::MAX, 2, &[1, 2, 3])),
            "the header announces 4294967295 images of 4294967295x2, more bytes than fit in 64 bits",
        ),
        (write(d, "bad-gzip", &[0x1f, 0x8b, 8, 0, 1, 2, 3]), "corrupt gzip data"),
    ];
    for (path, want) in cases {
        let (p, why) = reason(read_idx_images(&path).unwrap_err());
        assert_eq!(p, path);
        assert!(why.contains(want), "{}: {why}", path.display());
    }
    let (_, why) = reason(read_idx_labels(&write(d, "labels", &labels_file(5, &[1, 2]))).unwrap_err());
    assert!(why.contains("truncated: the header announces 5 labels, the file holds 2"), "{why}");
    let (_, why) = reason(read_idx_images(&d.join("missing")).unwrap_err());
    assert!(why.contains("cannot open"), "{why}");
}

#[test]
fn images_and_labels_must_agree() {
    let dir = mnist_dir(false);
    write(dir.path(), "train-labels-idx1-ubyte", &labels_file(2, &[0, 1]));
    let (path, why) = reason(load_mnist(dir.path()).unwrap_err());
    assert!(path.ends_with("train-labels-idx1-ubyte"));
    assert!(why.contains("2 labels, but") && why.contains("holds 3 images"), "{why}");

    let dir = mnist_dir(true);
    write(dir.path(), "t10k-labels-idx1-ubyte.gz", &gzip(&labels_file(2, &[1, 12])));
    let (_, why) = reason(load_mnist(dir.path()).unwrap_err());
    assert_eq!(why, "label 12 of sample 1 is out of range 0..=9");

    let empty = tempfile::tempdir().unwrap();
    let (path, _) = reason(load_mnist(empty.path()).unwrap_err());
    assert!(path.ends_with("train-images-idx3-ubyte.gz"));
}

#[test]
fn cifar10_binary_batches() {
    let dir = tempfile::tempdir().unwrap();
    let record = |label: u8| {
        let mut r = vec![label];
        r.extend((0..3072).map(|i| (i % 256) as u8));
        r
    };
    for b in 1..=5 {
        write(dir.path(), &format!("data_batch_{b}.bin"), &[record(b), record(9)].concat());
    }
    write(dir.path(), "test_batch.bin", &record(3));
    let (train, test) = load_cifar10(dir.path()).unwrap();
    assert_eq!((train.len(), test.len()), (10, 1));
    assert_eq!(train.shape, Shape::volume(32, 32, 3));
    assert_eq!(train.labels[..4], [1, 9, 2, 9]);
    assert_eq!(test.sample(0).unwrap().0[255], 1.0);

    write(dir.path(), "test_batch.bin", &record(3)[..3000]);
    let (_, why) = reason(load_cifar10(dir.path()).unwrap_err());
    assert!(why.contains("3000 bytes is not a whole number of 3073-byte records"), "{why}");
    write(dir.path(), "test_batch.bin", &record(10));
    let (_, why) = reason(load_cifar10(dir.path()).unwrap_err());
    assert_eq!(why, "label 10 of record 0 is out of range 0..=9");
}

#[test]
fn a_data_set_must_fit_the_model() {
    let (train, _) = load_mnist(mnist_dir(false).path()).unwrap();
    assert!(train.check_fits(Shape::volume(3, 2, 1), 10).is_ok());
    assert!(train.check_fits(Shape::vector(6), 10).is_ok());
    let (_, why) = reason(train.check_fits(Shape::volume(28, 28, 1), 10).unwrap_err());
    assert_eq!(why, "images are 3x2x1, the model takes 28x28x1");
    let (_, why) = reason(train.check_fits(Shape::volume(3, 2, 1), 2).unwrap_err());
    assert_eq!(why, "10 classes, the model has 2 outputs");
}

#[test]
fn the_embedded_digits_load_with_a_stratified_split() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist");
    let (train, test) = load_mnist(&dir).unwrap();
    assert_eq!((train.len(), test.len()), (8000, 2000));
    assert_eq!(train.shape, Shape::volume(28, 28, 1));
    for digit in 0..10 {
        let a = train.labels.iter().filter(|&&l| l == digit).count();
        let b = test.labels.iter().filter(|&&l| l == digit).count();
        let share = b as f64 / (a + b) as f64;
        assert!((share - 0.2).abs() < 0.005, "digit {digit}: {b} of {} in the test set", a + b);
    }
    // Real digits: mostly background, some ink.
    let ink = train.images.iter().filter(|&&v| v > 0.5).count() as f64 / train.images.len() as f64;
    assert!((0.05..0.3).contains(&ink), "ink share {ink}");
}

/// `bytes` as two gzip members, one after the other, as `cat a.gz b.gz` makes.
fn gzip_two_members(bytes: &[u8], split: usize) -> Vec<u8> {
    [gzip(&bytes[..split]), gzip(&bytes[split..])].concat()
}

#[test]
fn a_gzip_file_of_several_members_reads_whole() {
    let pixels: Vec<u8> = (0..3 * 28 * 28).map(|i| (i % 256) as u8).collect();
    let plain = images_file(3, 28, 28, &pixels);
    let dir = tempfile::tempdir().unwrap();
    let whole = read_idx_images(&write(dir.path(), "plain", &plain)).unwrap();
    // Split inside the header and inside the pixels.
    for split in [10, 16 + 1000] {
        let two = gzip_two_members(&plain, split);
        let read = read_idx_images(&write(dir.path(), &format!("two-{split}.gz"), &two)).unwrap();
        assert_eq!(read, whole, "split at {split}");
    }
    let labels = labels_file(3, &[4, 5, 6]);
    let read = read_idx_labels(&write(dir.path(), "labels.gz", &gzip_two_members(&labels, 9))).unwrap();
    assert_eq!(read, [4, 5, 6]);
}

/// Writes an MNIST directory whose four files are `images` and `labels` (the same for the
/// training and test sets), gzip-compressed.
fn mnist_of(images: &[u8], labels: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for set in ["train", "t10k"] {
        write(dir.path(), &format!("{set}-images-idx3-ubyte.gz"), &gzip(images));
        write(dir.path(), &format!("{set}-labels-idx1-ubyte.gz"), &gzip(labels));
    }
    dir
}

#[test]
fn a_header_announcing_more_than_the_limit_is_refused_naming_it() {
    // 1.3 million images of 28x28 are 1 GB of bytes and 4 GB of f32: more than the default
    // limit; the file itself is a few hundred bytes.
    let announced = images_file(1_300_000, 28, 28, &[0; 100_000]);
    let dir = mnist_of(&announced, &labels_file(1, &[0]));
    let file = gzip(&announced);
    assert!(file.len() < 1 << 20, "{} bytes", file.len());
    let (path, why) = reason(load_mnist(dir.path()).unwrap_err());
    assert!(path.ends_with("train-images-idx3-ubyte.gz"));
    assert!(
        why.contains("the header announces 1300000 images of 28x28, which would need 5096000000 bytes")
            && why.contains("limit of 4294967296 bytes"),
        "{why}"
    );
    // The bytes alone fit the default limit: what refuses them is the truth of the file.
    let (_, why) = reason(read_idx_images(&dir.path().join("train-images-idx3-ubyte.gz")).unwrap_err());
    assert!(why.starts_with("truncated: the header announces 1300000 images"), "{why}");
    // A small limit refuses a label file the same way.
    let labels = write(dir.path(), "labels", &labels_file(1000, &[0; 1000]));
    let (_, why) = reason(read_idx_labels_with(&labels, Limit::bytes(999)).unwrap_err());
    assert!(why.contains("1000 labels, which would need 1000 bytes, more than the 999 bytes left"), "{why}");
    assert_eq!(read_idx_labels_with(&labels, Limit::bytes(1000)).unwrap().len(), 1000);
}

#[test]
fn a_raised_limit_loads_what_a_small_one_refused() {
    // 100 images of 28x28: 78,400 bytes, 313,600 more as f32; 100 labels and 800 bytes of usize.
    let pixels: Vec<u8> = (0..100 * 784).map(|i| (i % 251) as u8).collect();
    let labels: Vec<u8> = (0..100).map(|i| (i % 10) as u8).collect();
    let dir = mnist_of(&images_file(100, 28, 28, &pixels), &labels_file(100, &labels));
    let one_set = 5 * 78_400 + 9 * 100;
    let (_, why) = reason(load_mnist_with(dir.path(), Limit::bytes(2 * one_set - 1)).unwrap_err());
    assert!(why.contains("900 bytes, more than the 899 bytes left of this load's limit of 785799 bytes"), "{why}");
    let (train, test) = load_mnist_with(dir.path(), Limit::bytes(2 * one_set)).unwrap();
    assert_eq!((train.len(), test.len()), (100, 100));
    assert_eq!((train.clone(), test.clone()), load_mnist(dir.path()).unwrap());
    assert_eq!(train.sample(99).unwrap().1, 9);
    let images = dir.path().join("train-images-idx3-ubyte.gz");
    assert!(read_idx_images_with(&images, Limit::bytes(78_399)).is_err());
    assert_eq!(read_idx_images_with(&images, Limit::bytes(78_400)).unwrap().pixels, pixels);

    // CIFAR-10: one record per file is 3,073 bytes, 12,288 as f32 and 8 for the label.
    let cifar = tempfile::tempdir().unwrap();
    let record: Vec<u8> = [vec![7], vec![128; 3072]].concat();
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"] {
        write(cifar.path(), &format!("{name}.bin"), &gzip(&record));
    }
    let need = 6 * (3073 + 12_288 + 8);
    let (path, why) = reason(load_cifar10_with(cifar.path(), Limit::bytes(need - 1)).unwrap_err());
    assert!(path.ends_with("test_batch.bin") && why.contains("limit of 92213 bytes"), "{}: {why}", path.display());
    let (train, test) = load_cifar10_with(cifar.path(), Limit::bytes(need)).unwrap();
    assert_eq!((train.len(), test.len(), test.labels[0]), (5, 1, 7));
    assert_eq!((train.clone(), test.clone()), load_cifar10(cifar.path()).unwrap());
}
