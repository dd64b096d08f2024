//! Image folders, as a user sees them: listing, decoding every colour format and size to the
//! model's shape, broken files skipped or refused without shifting a label, seeded epochs,
//! and streaming under a memory ceiling (measured in a child process).

#[path = "common/image_files.rs"]
mod image_files;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use cnn::data::{Batches, FolderBatches, ImageFolder, LastBatch, OnError, Resize};
use cnn::{cnn, Error, Limit, Model, Network, Shape};
use image::{DynamicImage, GrayAlphaImage, GrayImage, ImageBuffer, ImageFormat, Luma, LumaA, Rgb, Rgba, RgbaImage};
use image_files::{class_colour, class_of, encode, noise, save, uniform};

/// Every image of the folder, decoded one by one.
fn read_all(folder: &ImageFolder) -> Vec<Vec<f32>> {
    (0..folder.len())
        .map(|i| {
            let mut out = vec![0.0; folder.shape().len()];
            folder.read_image(i, &mut out).unwrap();
            out
        })
        .collect()
}

/// The epoch's batches: images, labels, indices.
fn epoch(batches: &mut FolderBatches<'_>, e: u64) -> Vec<(Vec<f32>, Vec<usize>, Vec<usize>)> {
    batches.start_epoch(e).unwrap();
    let mut out = Vec::new();
    while let Some(b) = batches.next_batch().unwrap() {
        out.push((b.images.to_vec(), b.labels.to_vec(), b.indices.to_vec()));
    }
    out
}

fn close(a: f32, b: f32, tolerance: f32) -> bool {
    (a - b).abs() <= tolerance
}

#[test]
fn classes_are_sorted_directories_and_labels_their_indices() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let red = uniform(2, 2, [255, 0, 0]);
    for name in ["zebra/b.png", "zebra/a.JPG", "ant/x.jpeg", "ant/deep/y.png", "Bee/1.png"] {
        save(&root.join(name), &red);
    }
    fs::create_dir_all(root.join("cat")).unwrap();
    // Left out: hidden files and directories, other extensions, files beside the classes.
    save(&root.join("ant/.hidden.png"), &red);
    save(&root.join(".ipynb_checkpoints/z.png"), &red);
    save(&root.join("loose.png"), &red);
    fs::write(root.join("ant/.DS_Store"), b"\0\0").unwrap();
    fs::write(root.join("ant/labels.csv"), b"x,y").unwrap();
    fs::write(root.join("zebra/picture.gif"), b"GIF89a").unwrap();

    let folder = ImageFolder::open(root, Shape::volume(2, 2, 3)).unwrap();
    // Sorted by bytes, as Python sorts: capitals first. The empty class keeps its index.
    assert_eq!(folder.classes(), ["Bee", "ant", "cat", "zebra"]);
    assert_eq!(folder.class_counts(), [1, 2, 0, 2]);
    assert_eq!(folder.labels(), [0, 1, 1, 3, 3]);
    let names: Vec<&Path> = folder.paths().iter().map(|p| p.strip_prefix(root).unwrap()).collect();
    let expected = ["Bee/1.png", "ant/x.jpeg", "ant/deep/y.png", "zebra/a.JPG", "zebra/b.png"];
    assert_eq!(names, expected.map(Path::new));
    assert_eq!((folder.len(), folder.root(), folder.shape()), (5, root, Shape::volume(2, 2, 3)));
    let (set, _) = folder.load(Limit::DEFAULT, OnError::Fail).unwrap();
    assert_eq!((set.classes, set.labels.as_slice()), (4, folder.labels()));
}

#[test]
fn a_root_with_no_class_or_no_image_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let shape = Shape::volume(2, 2, 1);
    let message = |root: &Path| match ImageFolder::open(root, shape) {
        Err(Error::File { path, reason }) => (path, reason),
        other => panic!("{other:?}"),
    };
    let (path, reason) = message(root);
    assert_eq!((path.as_path(), reason.contains("no class directories")), (root, true), "{reason}");
    fs::create_dir_all(root.join("a")).unwrap();
    fs::write(root.join("a/notes.txt"), b"no image").unwrap();
    let (path, reason) = message(root);
    assert_eq!((path.as_path(), reason.contains("no PNG or JPEG image")), (root, true), "{reason}");
    let missing = root.join("missing");
    assert_eq!(message(&missing).0, missing);
}

/// Grey, grey and alpha, RGB and RGBA, 8 and 16 bits, PNG and JPEG: a uniform image stays its
/// colour, in RGB and in grey (Rec. 709 luma of the `f32` values), and alpha is dropped.
#[test]
fn every_colour_format_decodes_to_its_values() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (r, g, b) = (200u8, 100u8, 30u8);
    let sixteen = (51_400u16, 12_000u16, 65_535u16);
    let images: Vec<(&str, DynamicImage, [f32; 3])> = vec![
        ("grey8.png", GrayImage::from_pixel(5, 3, Luma([77])).into(), [77.0 / 255.0; 3]),
        ("greyalpha8.png", GrayAlphaImage::from_pixel(5, 3, LumaA([77, 0])).into(), [77.0 / 255.0; 3]),
        ("rgb8.png", uniform(5, 3, [r, g, b]), [r, g, b].map(|v| v as f32 / 255.0)),
        ("rgba8.png", RgbaImage::from_pixel(5, 3, Rgba([r, g, b, 10])).into(), [r, g, b].map(|v| v as f32 / 255.0)),
        (
            "rgb16.png",
            DynamicImage::ImageRgb16(ImageBuffer::from_pixel(5, 3, Rgb([sixteen.0, sixteen.1, sixteen.2]))),
            [sixteen.0, sixteen.1, sixteen.2].map(|v| v as f32 / 65535.0),
        ),
        (
            "rgba16.png",
            DynamicImage::ImageRgba16(ImageBuffer::from_pixel(5, 3, Rgba([sixteen.0, sixteen.1, sixteen.2, 0]))),
            [sixteen.0, sixteen.1, sixteen.2].map(|v| v as f32 / 65535.0),
        ),
        (
            "grey16.png",
            DynamicImage::ImageLuma16(ImageBuffer::from_pixel(5, 3, Luma([40_000u16]))),
            [40_000.0 / 65535.0; 3],
        ),
        ("rgb.jpg", uniform(16, 16, [r, g, b]), [r, g, b].map(|v| v as f32 / 255.0)),
        ("grey.jpeg", GrayImage::from_pixel(16, 16, Luma([77])).into(), [77.0 / 255.0; 3]),
    ];
    for (name, image, _) in &images {
        save(&root.join("all").join(name), image);
    }
    let by_name = |folder: &ImageFolder, name: &str| folder.paths().iter().position(|p| p.ends_with(name)).unwrap();
    let rgb = ImageFolder::open(root, Shape::volume(4, 6, 3)).unwrap();
    let grey = ImageFolder::open(root, Shape::volume(4, 6, 1)).unwrap();
    let (rgb_images, grey_images) = (read_all(&rgb), read_all(&grey));
    for (name, _, want) in &images {
        // JPEG is lossy: a uniform colour comes back within a few levels.
        let tolerance = if name.ends_with("png") { 1e-6 } else { 3.0 / 255.0 };
        let got = &rgb_images[by_name(&rgb, name)];
        for (c, plane) in got.chunks(24).enumerate() {
            assert!(plane.iter().all(|&v| close(v, want[c], tolerance)), "{name} channel {c}: {plane:?} {want:?}");
        }
        let luma = 0.2126 * want[0] + 0.7152 * want[1] + 0.0722 * want[2];
        let got = &grey_images[by_name(&grey, name)];
        assert!(got.iter().all(|&v| close(v, luma, tolerance)), "{name} in grey: {got:?}, luma {luma}");
    }
}

/// Odd sizes to 4x6 and to a centre crop: the right number of values, and the right ones where
/// they are known.
#[test]
fn odd_sizes_are_stretched_or_cropped_to_the_shape() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Three bands across: red, green, blue, each 10 pixels wide and 10 high.
    let mut bands = RgbaImage::new(30, 10);
    for (x, _, px) in bands.enumerate_pixels_mut() {
        px.0 = [[255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255]][x as usize / 10];
    }
    save(&root.join("a/bands.png"), &bands.into());
    for (w, h) in [(7, 13), (1, 1), (300, 17)] {
        save(&root.join(format!("a/{w}x{h}.png")), &uniform(w, h, [10, 20, 30]));
    }
    let shape = Shape::volume(10, 10, 3);
    let stretched = ImageFolder::open(root, shape).unwrap();
    let cropped = stretched.clone().resize(Resize::CropCentre { shorter_side: 10 }).unwrap();
    for folder in [&stretched, &cropped] {
        let images = read_all(folder);
        assert!(images.iter().all(|i| i.len() == 300));
        for (path, image) in folder.paths().iter().zip(&images).filter(|(p, _)| !p.ends_with("bands.png")) {
            let want = [10.0 / 255.0, 20.0 / 255.0, 30.0 / 255.0];
            for (c, plane) in image.chunks(100).enumerate() {
                assert!(plane.iter().all(|&v| close(v, want[c], 1e-6)), "{}: {plane:?}", path.display());
            }
        }
    }
    let bands = stretched.paths().iter().position(|p| p.ends_with("bands.png")).unwrap();
    let bands_of = |folder: &ImageFolder| read_all(folder)[bands].clone();
    // The crop keeps the middle third: green, untouched (a scale of 1 reads each pixel once).
    let crop = bands_of(&cropped);
    assert!(crop[..100].iter().chain(&crop[200..]).all(|&v| v == 0.0) && crop[100..200].iter().all(|&v| v == 1.0));
    // Stretched, the row runs from red on the left to blue on the right.
    let stretch = bands_of(&stretched);
    let (red, blue) = (&stretch[..100], &stretch[200..]);
    assert!(close(red[0], 1.0, 1e-6) && red[9] == 0.0 && blue[0] == 0.0 && close(blue[9], 1.0, 1e-6), "{stretch:?}");
    // Larger crops from the same files: every value in [0, 1].
    let larger = ImageFolder::open(root, Shape::volume(32, 24, 3)).unwrap();
    let larger = larger.resize(Resize::CropCentre { shorter_side: 40 }).unwrap();
    assert!(read_all(&larger).iter().flatten().all(|v| (0.0..=1.0).contains(v)));
}

/// The files a folder of four classes gets broken with, by name, and the bytes of each.
fn broken_files() -> Vec<(&'static str, Vec<u8>)> {
    let valid = encode(&uniform(16, 16, [1, 2, 3]), ImageFormat::Png);
    vec![
        ("class0/truncated.png", valid[..valid.len() / 2].to_vec()),
        ("class1/noise.png", noise(500, 3)),
        ("class1/empty.png", Vec::new()),
        ("class2/text.jpg", b"this is a text file with a .jpg name\n".to_vec()),
        ("class2/bomb.png", image_files::png_declaring(100_000, 100_000)),
        ("class3/bomb.jpg", image_files::jpeg_declaring_the_largest_size()),
    ]
}

/// Four classes of ten uniform images of the class's colour, broken files among them, and one
/// file that vanishes after the listing. Returns the folder and the broken paths.
fn folder_with_broken_files(root: &Path) -> (ImageFolder, BTreeSet<PathBuf>) {
    for c in 0..4 {
        for k in 0..10 {
            save(&root.join(format!("class{c}/{k:02}.png")), &uniform(6 + k, 5, class_colour(c)));
        }
    }
    let mut broken = BTreeSet::new();
    for (name, bytes) in broken_files() {
        fs::write(root.join(name), bytes).unwrap();
        broken.insert(root.join(name));
    }
    let vanishing = root.join("class3/05b.png");
    save(&vanishing, &uniform(3, 3, class_colour(3)));
    let folder = ImageFolder::open(root, Shape::volume(4, 4, 3)).unwrap();
    fs::remove_file(&vanishing).unwrap();
    broken.insert(vanishing);
    assert_eq!(folder.len(), 47);
    (folder, broken)
}

/// The class an image's colour says it is (its first pixel).
fn colour_class(image: &[f32]) -> Option<usize> {
    class_of([image[0], image[16], image[32]], 4)
}

#[test]
fn broken_files_are_skipped_without_shifting_a_label() {
    let dir = tempfile::tempdir().unwrap();
    let (folder, broken) = folder_with_broken_files(dir.path());
    let mut batches = FolderBatches::new(&folder, 8, 3).unwrap().on_error(OnError::Skip).workers(3).unwrap();
    for e in 0..2 {
        let got = epoch(&mut batches, e);
        assert_eq!(got.iter().map(|b| b.1.len()).collect::<Vec<_>>(), [8, 8, 8, 8, 8]);
        for (images, labels, indices) in &got {
            for (k, (&label, &index)) in labels.iter().zip(indices).enumerate() {
                assert_eq!(colour_class(&images[k * 48..(k + 1) * 48]), Some(label), "image {index}");
                assert!(!broken.contains(folder.path(index).unwrap()));
            }
        }
    }
    // Each reported once, with its path and a reason.
    let skipped: BTreeSet<PathBuf> = batches.skipped().iter().map(|s| s.path.clone()).collect();
    assert_eq!(skipped, broken);
    assert_eq!(batches.skipped().len(), broken.len());
    for s in batches.skipped() {
        assert_eq!(folder.path(s.index), Some(s.path.as_path()));
        let name = s.path.file_name().unwrap().to_str().unwrap();
        let expected = match name {
            "bomb.png" => "100000x100000 pixels, more than the 33554432 allowed",
            "bomb.jpg" => "65535x65535 pixels",
            "empty.png" => "an empty file",
            "text.jpg" | "noise.png" => "not a PNG or JPEG image",
            "05b.png" => "cannot open",
            _ => "cannot decode",
        };
        assert!(s.reason.contains(expected), "{name}: {}", s.reason);
    }
    // Read whole, and for the statistics: the same images are left out.
    let (set, skipped) = folder.load(Limit::DEFAULT, OnError::Skip).unwrap();
    assert_eq!((set.len(), skipped.len()), (40, broken.len()));
    for i in 0..set.len() {
        let (image, label) = set.sample(i).unwrap();
        assert_eq!(colour_class(image), Some(label));
    }
    let stats = folder.channel_stats(OnError::Skip).unwrap();
    assert_eq!((stats.images, stats.skipped), (40, skipped));
}

#[test]
fn broken_files_are_errors_naming_them_when_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (folder, broken) = folder_with_broken_files(dir.path());
    let first_broken = folder.paths().iter().find(|p| broken.contains(*p)).unwrap().clone();
    let file_error = |result: cnn::Result<()>| match result {
        Err(Error::File { path, reason }) => {
            assert!(!reason.is_empty());
            path
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(file_error(folder.load(Limit::DEFAULT, OnError::Fail).map(drop)), first_broken);
    assert_eq!(file_error(folder.channel_stats(OnError::Fail).map(drop)), first_broken);
    let mut batches = FolderBatches::new(&folder, 8, 3).unwrap();
    let path = file_error((|| {
        while batches.next_batch()?.is_some() {}
        Ok(())
    })());
    assert!(broken.contains(&path), "{}", path.display());
    assert!(batches.next_batch().unwrap().is_none(), "the error ended the epoch");
    // Each broken file alone, through `read_image`.
    for (i, path) in folder.paths().iter().enumerate().filter(|(_, p)| broken.contains(*p)) {
        assert_eq!(&file_error(folder.read_image(i, &mut [0.0; 48])), path);
    }
}

#[test]
fn every_image_once_per_epoch_in_an_order_set_by_seed_and_epoch() {
    let dir = tempfile::tempdir().unwrap();
    for c in 0..3 {
        for k in 0..9 {
            save(&dir.path().join(format!("c{c}/{k}.png")), &uniform(3, 2, [c as u8 * 80, k as u8 * 20, 5]));
        }
    }
    let folder = ImageFolder::open(dir.path(), Shape::volume(3, 2, 3)).unwrap();
    let with = |workers: usize, seed: u64| FolderBatches::new(&folder, 5, seed).unwrap().workers(workers).unwrap();
    let mut one = with(1, 11);
    let (e0, e1) = (epoch(&mut one, 0), epoch(&mut one, 1));
    for got in [&e0, &e1] {
        let mut seen: Vec<usize> = got.iter().flat_map(|b| b.2.clone()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..27).collect::<Vec<_>>());
        assert_eq!(got.iter().map(|b| b.1.len()).collect::<Vec<_>>(), [5, 5, 5, 5, 5, 2]);
    }
    assert_ne!(e0, e1);
    // The same with more threads, in any order of epochs, and again.
    let mut four = with(4, 11);
    assert_eq!(epoch(&mut four, 1), e1);
    assert_eq!(epoch(&mut four, 0), e0);
    assert_eq!(epoch(&mut with(3, 11).prefetch(1).unwrap(), 1), e1);
    assert_ne!(epoch(&mut with(2, 12), 0), e0);
    // Unshuffled, in index order; a dropped last batch leaves whole ones.
    let plain = epoch(&mut with(2, 11).shuffle(false).unwrap().last(LastBatch::Drop), 4);
    assert_eq!(plain.iter().flat_map(|b| b.2.clone()).collect::<Vec<_>>(), (0..25).collect::<Vec<_>>());
    // Leaving an epoch half read and starting another gives that epoch whole.
    let mut half = with(2, 11);
    half.start_epoch(0).unwrap();
    half.next_batch().unwrap();
    assert_eq!(epoch(&mut half, 1), e1);
    assert_eq!((half.len(), half.samples(), half.epoch()), (6, 27, 1));
}

cnn! { struct Tiny < input(4x4x3) fc(4) softmax > }

#[test]
fn a_small_folder_loads_into_a_dataset_for_batches_and_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    for c in 0..4 {
        for k in 0..3 {
            save(&dir.path().join(format!("class{c}/{k}.png")), &uniform(9, 7, class_colour(c)));
        }
    }
    let folder = ImageFolder::open(dir.path(), Shape::volume(4, 4, 3)).unwrap();
    let (set, skipped) = folder.load(Limit::bytes(12 * 48 * 4 + 12 * 8), OnError::Fail).unwrap();
    assert!(skipped.is_empty());
    assert_eq!((set.len(), set.classes, set.source.as_path()), (12, 4, dir.path()));
    set.check_fits(Tiny::INPUT, Tiny::OUTPUT_LEN).unwrap();
    let eval = Tiny::with_seed(1).evaluate(&set.images, &set.labels, 5).unwrap();
    assert!((0.0..=1.0).contains(&eval.accuracy));
    let mut batches = Batches::new(&set, 5, 1).unwrap();
    assert_eq!(batches.next_batch().unwrap().unwrap().labels.len(), 5);
    // A limit one byte short refuses the load before decoding anything.
    let err = folder.load(Limit::bytes(12 * 48 * 4 + 12 * 8 - 1), OnError::Fail).unwrap_err().to_string();
    assert!(err.contains("limit of") && err.starts_with(&dir.path().display().to_string()), "{err}");
    // The statistics are those of the loaded images.
    let stats = folder.channel_stats(OnError::Fail).unwrap();
    for c in 0..3 {
        let values: Vec<f64> = set.images.chunks(16).skip(c).step_by(3).flatten().map(|&v| f64::from(v)).collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt();
        assert!(close(stats.mean[c], mean as f32, 1e-6) && close(stats.std[c], std as f32, 1e-6), "{c}: {stats:?}");
    }
    let mut standardised = FolderBatches::new(&folder, 12, 1).unwrap().standardise(&stats.mean, &stats.std).unwrap();
    let all: Vec<f32> = epoch(&mut standardised, 0).into_iter().flat_map(|b| b.0).collect();
    let mean: f32 = all.iter().sum::<f32>() / all.len() as f32;
    assert!(mean.abs() < 1e-5, "standardised mean {mean}");
}

/// Where the parent test leaves the folder for the child process that streams it.
const MEMORY_DIR: &str = "CNN_IMAGE_FOLDER_MEMORY_DIR";

/// The loader's ceiling in the memory test, and what threads, decoders and allocator add to it.
const CEILING: u64 = 4 << 20;
const SLACK: u64 = 16 << 20;

/// Streams a folder whose decoded images take 14 times the ceiling, in a child process, and
/// checks that its peak resident memory grew by less than the ceiling and the slack: a loader
/// that kept the images (56 MiB) would fail.
#[test]
fn streaming_stays_within_its_memory_ceiling() {
    if image_files::resident().is_none() {
        eprintln!("no /proc/self/status: the memory test needs Linux");
        return;
    }
    let start = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    // 1200 images of 64x64 RGB: 48 KiB each as f32, 56.25 MiB in all.
    for c in 0..4 {
        for k in 0..300u32 {
            let image = ImageBuffer::from_fn(64, 64, |x, y| Rgb([(x * 4) as u8, (y * 4) as u8, (k + c) as u8]));
            save(&dir.path().join(format!("c{c}/{k:03}.png")), &DynamicImage::ImageRgb8(image));
        }
    }
    let written = start.elapsed();
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["streaming_memory_child", "--exact", "--nocapture", "--test-threads", "1"])
        .env(MEMORY_DIR, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    // libtest prints the test's name and `...` before what the test prints.
    let line = stdout.lines().find_map(|l| l.find("memory:").map(|at| &l[at..]));
    let line = line.unwrap_or_else(|| panic!("no measurement from the child:\n{stdout}"));
    println!("{line} (files written in {:.2} s, all in {:.2} s)", written.as_secs_f64(), start.elapsed().as_secs_f64());
}

/// The child's side of `streaming_stays_within_its_memory_ceiling`; does nothing unless that
/// test started it.
#[test]
fn streaming_memory_child() {
    let Some(dir) = std::env::var_os(MEMORY_DIR) else { return };
    let folder = ImageFolder::open(PathBuf::from(dir), Shape::volume(64, 64, 3)).unwrap();
    let decoded = folder.len() as u64 * 64 * 64 * 3 * 4;
    assert!(decoded >= 10 * CEILING, "{decoded} bytes decoded is not 10 times the ceiling");
    let mut batches = FolderBatches::new(&folder, 32, 1).unwrap().ceiling(CEILING).unwrap().workers(2).unwrap();
    // Where clearing the counters is allowed (`echo 5 > /proc/self/clear_refs`), the peak
    // restarts from here; otherwise the peak so far only makes the growth look larger.
    let _ = fs::write("/proc/self/clear_refs", "5");
    let (peak_before, rss_before) = image_files::resident().unwrap();
    let start = Instant::now();
    batches.start_epoch(0).unwrap();
    let (mut seen, mut sum) = (0, 0.0f64);
    while let Some(batch) = batches.next_batch().unwrap() {
        seen += batch.labels.len();
        sum += batch.images.iter().map(|&v| f64::from(v)).sum::<f64>();
    }
    let seconds = start.elapsed().as_secs_f64();
    let (peak, _) = image_files::resident().unwrap();
    assert_eq!(seen, 1200);
    assert!(sum > 0.0);
    let growth = peak.saturating_sub(rss_before);
    println!(
        "memory: {seen} images, {:.1} MiB decoded in {seconds:.2} s; resident {:.1} MiB before (peak {:.1}), \
         peak {:.1} MiB after: growth {:.1} MiB, limit {:.1} (ceiling {:.0} + slack {:.0})",
        mib(decoded),
        mib(rss_before),
        mib(peak_before),
        mib(peak),
        mib(growth),
        mib(CEILING + SLACK),
        mib(CEILING),
        mib(SLACK)
    );
    assert!(growth < CEILING + SLACK, "peak resident memory grew by {:.1} MiB", mib(growth));
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}
