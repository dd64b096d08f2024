//! Image files for the image-folder tests: written with the `image` crate, and broken ones.
#![allow(dead_code)]

use std::fs;
use std::io::Cursor;
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

/// Writes `image` to `path` in the format its extension names (JPEG at quality 95).
pub fn save(path: &Path, image: &DynamicImage) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, encode(image, ImageFormat::from_path(path).unwrap())).unwrap();
}

/// `image` as the bytes of a `format` file.
pub fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    if format == ImageFormat::Jpeg {
        image.write_with_encoder(JpegEncoder::new_with_quality(&mut bytes, 95)).unwrap();
    } else {
        image.write_to(&mut Cursor::new(&mut bytes), format).unwrap();
    }
    bytes
}

/// A uniform RGB image.
pub fn uniform(width: u32, height: u32, rgb: [u8; 3]) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_pixel(width, height, Rgb(rgb)))
}

/// The colour of class `c`'s images in the label tests: far apart for different classes.
pub fn class_colour(c: usize) -> [u8; 3] {
    [(40 + 60 * c) as u8, (220 - 50 * c) as u8, (90 * c % 256) as u8]
}

/// The class whose colour `rgb` (in [0, 1]) is, if any.
pub fn class_of(rgb: [f32; 3], classes: usize) -> Option<usize> {
    (0..classes).find(|&c| class_colour(c).iter().zip(rgb).all(|(&want, got)| (want as f32 / 255.0 - got).abs() < 0.01))
}

/// CRC-32 of PNG chunks (ISO 3309, as gzip's), from `flate2`.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    crc.sum()
}

/// A valid 1x1 PNG whose header (with a correct checksum) declares `width` x `height`: a
/// decompression bomb's first bytes.
pub fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = encode(&uniform(1, 1, [1, 2, 3]), ImageFormat::Png);
    // Signature (8), IHDR length (4) and type (4), then width and height.
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

/// A valid 8x8 JPEG whose frame header declares 65535 x 65535 pixels.
pub fn jpeg_declaring_the_largest_size() -> Vec<u8> {
    let mut bytes = encode(&uniform(8, 8, [9, 9, 9]), ImageFormat::Jpeg);
    let sof = bytes.windows(2).position(|w| w == [0xff, 0xc0]).expect("a baseline frame header");
    // Marker (2), length (2), precision (1), then height and width.
    bytes[sof + 5..sof + 9].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    bytes
}

/// Bytes that are no image, from a seed.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The peak and current resident memory of this process, in bytes (`VmHWM`, `VmRSS`), where
/// `/proc` has them.
pub fn resident() -> Option<(u64, u64)> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib << 10)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}
