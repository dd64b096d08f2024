//! The loaders' internals: worker shutdown, the ceiling's arithmetic, skipping inside a batch.
//! The behaviour a user sees is tested in the facade's `tests/image_folder.rs`.

use std::fs;
use std::path::Path;

use image::{Rgb, RgbImage};

use super::*;
use crate::augment::GaussianNoise;
use crate::data::{Batches, LastBatch};

/// A folder of `classes` classes of `per_class` 4x4 images each, image `k` of class `c` uniform
/// with red `c`, green `k` (out of 255).
fn folder(root: &Path, classes: usize, per_class: usize) -> ImageFolder {
    for c in 0..classes {
        let dir = root.join(format!("class{c}"));
        fs::create_dir_all(&dir).unwrap();
        for k in 0..per_class {
            RgbImage::from_pixel(4, 4, Rgb([c as u8, k as u8, 9])).save(dir.join(format!("{k:03}.png"))).unwrap();
        }
    }
    ImageFolder::open(root, Shape::volume(4, 4, 3)).unwrap()
}

fn epoch(batches: &mut FolderBatches<'_>, e: u64) -> Vec<(Vec<f32>, Vec<usize>, Vec<usize>)> {
    batches.start_epoch(e).unwrap();
    let mut out = Vec::new();
    while let Some(b) = batches.next_batch().unwrap() {
        out.push((b.images.to_vec(), b.labels.to_vec(), b.indices.to_vec()));
    }
    out
}

#[test]
fn dropping_or_restarting_mid_epoch_joins_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    let folder = folder(dir.path(), 2, 20);
    let base = Arc::strong_count(&folder.files);
    let mut batches = FolderBatches::new(&folder, 4, 1).unwrap().workers(3).unwrap();
    batches.start_epoch(0).unwrap();
    assert!(batches.next_batch().unwrap().is_some());
    // The loader's copy, the workers' shared copy and each worker's view of it.
    assert!(Arc::strong_count(&folder.files) > base);
    batches.start_epoch(1).unwrap();
    assert!(batches.next_batch().unwrap().is_some());
    drop(batches);
    // Every worker has ended: only the caller's folder holds the listing.
    assert_eq!(Arc::strong_count(&folder.files), base);
}

#[test]
fn the_ceiling_limits_the_images_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let folder = folder(dir.path(), 1, 30);
    // 4x4x3 f32: 192 bytes an image; a batch of 5 takes 5 * (192 + 16) = 1040 bytes.
    let batches = FolderBatches::new(&folder, 5, 1).unwrap();
    assert_eq!(batches.window().unwrap(), 10, "two batches by default");
    let tight = FolderBatches::new(&folder, 5, 1).unwrap().ceiling(1040 + 3 * 192 + 100).unwrap();
    assert_eq!(tight.window().unwrap(), 3);
    let err = FolderBatches::new(&folder, 5, 1).unwrap().ceiling(1040 + 191).err().unwrap().to_string();
    assert!(err.contains("one batch of 5 images of 4x4x3 takes 1040 bytes"), "{err}");
    // With room for one image ahead, the epoch still completes, in the same batches.
    let mut one = FolderBatches::new(&folder, 5, 1).unwrap().ceiling(1040 + 192).unwrap();
    let mut many = FolderBatches::new(&folder, 5, 1).unwrap();
    assert_eq!(epoch(&mut one, 3), epoch(&mut many, 3));
}

#[test]
fn a_skipped_image_takes_its_label_with_it_and_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let folder = folder(dir.path(), 2, 6);
    let broken = folder.path(7).unwrap().to_path_buf();
    fs::write(&broken, b"not an image").unwrap();
    let mut batches =
        FolderBatches::new(&folder, 4, 2).unwrap().shuffle(false).unwrap().on_error(OnError::Skip).workers(2).unwrap();
    for e in 0..2 {
        let got = epoch(&mut batches, e);
        let sizes: Vec<usize> = got.iter().map(|b| b.1.len()).collect();
        assert_eq!(sizes, [4, 4, 3]);
        let indices: Vec<usize> = got.iter().flat_map(|b| b.2.clone()).collect();
        assert_eq!(indices, [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11]);
        for (images, labels, indices) in &got {
            for (k, (&label, &i)) in labels.iter().zip(indices).enumerate() {
                // Red holds the class and green the image's place in it.
                assert_eq!(images[k * 48], label as f32 / 255.0);
                assert_eq!(images[k * 48 + 16], (i % 6) as f32 / 255.0);
            }
        }
    }
    assert_eq!(batches.skipped().len(), 1);
    assert_eq!((batches.skipped()[0].index, &batches.skipped()[0].path), (7, &broken));
    // Failing instead: the error names the file and ends the epoch.
    let mut failing = FolderBatches::new(&folder, 4, 2).unwrap().shuffle(false).unwrap();
    assert!(failing.next_batch().unwrap().is_some());
    let Err(Error::File { path, .. }) = failing.next_batch() else { panic!("no error for the broken image") };
    assert_eq!(path, broken);
    assert!(failing.next_batch().unwrap().is_none());
}

/// The stream gives the batches `Batches` gives over the folder read whole, augmentation
/// included: the same order and the same generator per image.
#[test]
fn streamed_batches_are_those_of_batches_over_the_loaded_set() {
    let dir = tempfile::tempdir().unwrap();
    let folder = folder(dir.path(), 3, 7);
    let (set, skipped) = folder.load(crate::Limit::DEFAULT, OnError::Fail).unwrap();
    assert!(skipped.is_empty());
    let noise = GaussianNoise { std: 0.1 };
    let mut memory = Batches::new(&set, 4, 5).unwrap().last(LastBatch::Drop).augment(&noise);
    let mut stream = FolderBatches::new(&folder, 4, 5).unwrap().last(LastBatch::Drop).augment(&noise);
    for e in [0, 1, 7] {
        memory.start_epoch(e).unwrap();
        let mut expected = Vec::new();
        while let Some(b) = memory.next_batch().unwrap() {
            expected.push((b.images.to_vec(), b.labels.to_vec(), b.indices.to_vec()));
        }
        assert_eq!(epoch(&mut stream, e), expected, "epoch {e}");
    }
}

#[test]
fn shapes_and_options_out_of_range_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let folder = folder(dir.path(), 1, 1);
    for shape in [Shape::volume(4, 4, 2), Shape::volume(4, 4, 4), Shape::vector(16), Shape::volume(0, 4, 1)] {
        assert!(ImageFolder::open(dir.path(), shape).is_err(), "{shape:?}");
    }
    let huge = Shape::volume(usize::MAX / 2, 3, 3);
    assert!(ImageFolder::open(dir.path(), huge).is_err());
    assert!(folder.clone().resize(Resize::CropCentre { shorter_side: 3 }).is_err());
    assert!(folder.clone().resize(Resize::CropCentre { shorter_side: 4 }).is_ok());
    assert!(folder.clone().max_pixels(0).is_err());
    assert!(FolderBatches::new(&folder, 0, 1).is_err());
    assert!(FolderBatches::new(&folder, 1, 1).unwrap().workers(0).is_err());
    assert!(FolderBatches::new(&folder, 1, 1).unwrap().prefetch(0).is_err());
    assert!(FolderBatches::new(&folder, 1, 1).unwrap().standardise(&[0.5, 0.5], &[1.0, 1.0]).is_err());
    assert!(FolderBatches::new(&folder, 1, 1).unwrap().standardise(&[0.5], &[0.0]).is_err());
    let mut out = vec![0.0; 47];
    assert!(matches!(folder.read_image(0, &mut out), Err(Error::OutputLength { expected: 48, found: 47 })));
    assert!(folder.read_image(1, &mut [0.0; 48]).is_err());
}
