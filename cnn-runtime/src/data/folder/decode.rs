//! One image file to one `f32` image of the target shape: opened, recognised by its content,
//! its declared size checked before any pixel is decoded, decoded, resampled.

use std::fs::File;
use std::io::{BufReader, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits};

use super::resample::{Source, Unit, Window};
use super::Resize;
use crate::data::file_error;
use crate::{Result, Shape};

/// The most pixels an image may declare unless set otherwise: 2^25, about 33.5 million (such
/// as 8192 x 4096).
pub(super) const DEFAULT_MAX_PIXELS: u64 = 1 << 25;

/// Bytes a file may hold per pixel allowed: compressed data rarely takes more than the 8 bytes
/// of a 16-bit RGBA pixel.
const FILE_BYTES_PER_PIXEL: u64 = 16;

/// Bytes the decoders may allocate beyond the decoded image (their tables and line buffers).
const DECODER_SLACK: u64 = 16 << 20;

/// How the images of a folder become images of one shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Decoder {
    pub(super) shape: Shape,
    pub(super) resize: Resize,
    pub(super) max_pixels: u64,
}

impl Decoder {
    /// Decodes `path` into `out` (one image of the shape). Every failure, a panic of the
    /// decoder included, is an error naming `path`.
    pub(super) fn read(&self, path: &Path, out: &mut [f32]) -> Result<()> {
        match catch_unwind(AssertUnwindSafe(|| self.read_unguarded(path, out))) {
            Ok(result) => result,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(file_error(path, format!("the image decoder failed: {message}")))
            }
        }
    }

    fn read_unguarded(&self, path: &Path, out: &mut [f32]) -> Result<()> {
        let image = self.open(path)?;
        let window = self.window(image.width() as usize, image.height() as usize);
        let (width, height) = (image.width() as usize, image.height() as usize);
        let shape = self.shape;
        macro_rules! resample {
            ($buffer:expr, $channels:expr) => {
                resample($buffer.as_raw(), width, height, $channels, &window, shape, out)
            };
        }
        match &image {
            DynamicImage::ImageLuma8(b) => resample!(b, 1),
            DynamicImage::ImageLumaA8(b) => resample!(b, 2),
            DynamicImage::ImageRgb8(b) => resample!(b, 3),
            DynamicImage::ImageRgba8(b) => resample!(b, 4),
            DynamicImage::ImageLuma16(b) => resample!(b, 1),
            DynamicImage::ImageLumaA16(b) => resample!(b, 2),
            DynamicImage::ImageRgb16(b) => resample!(b, 3),
            DynamicImage::ImageRgba16(b) => resample!(b, 4),
            DynamicImage::ImageRgb32F(b) => resample!(b, 3),
            DynamicImage::ImageRgba32F(b) => resample!(b, 4),
            // Kinds PNG and JPEG do not decode to today.
            other => resample!(other.to_rgb32f(), 3),
        }
        Ok(())
    }

    /// Opens and decodes `path`, refusing what is not a PNG or JPEG file and images whose
    /// declared size passes the limit before their pixels are decoded.
    fn open(&self, path: &Path) -> Result<DynamicImage> {
        let error = |reason: String| file_error(path, reason);
        let file = File::open(path).map_err(|e| error(format!("cannot open: {e}")))?;
        let max_bytes = self.max_pixels.saturating_mul(FILE_BYTES_PER_PIXEL).saturating_add(1 << 20);
        let len = file.metadata().map_err(|e| error(format!("cannot read: {e}")))?.len();
        if len > max_bytes {
            return Err(error(format!(
                "a file of {len} bytes, more than the {max_bytes} allowed for images of at most {} pixels",
                self.max_pixels
            )));
        }
        // The JPEG decoder reads the whole file: a file that grows after the check is cut short.
        let reader = BufReader::new(file.take(max_bytes));
        let mut reader =
            ImageReader::new(reader).with_guessed_format().map_err(|e| error(format!("cannot read: {e}")))?;
        match reader.format() {
            Some(ImageFormat::Png | ImageFormat::Jpeg) => {}
            Some(format) => return Err(error(format!("a {format:?} image: only PNG and JPEG are read"))),
            None if len == 0 => return Err(error("an empty file, not a PNG or JPEG image".into())),
            None => return Err(error("not a PNG or JPEG image (its first bytes are neither's)".into())),
        }
        let side = u32::try_from(self.max_pixels).unwrap_or(u32::MAX);
        let mut limits = Limits::default();
        limits.max_image_width = Some(side);
        limits.max_image_height = Some(side);
        limits.max_alloc = Some(self.max_pixels.saturating_mul(8).saturating_add(DECODER_SLACK));
        reader.limits(limits);
        let decoder = reader.into_decoder().map_err(|e| self.decode_error(path, e))?;
        let (width, height) = decoder.dimensions();
        let pixels = u64::from(width) * u64::from(height);
        if pixels == 0 {
            return Err(error(format!("an image of {width}x{height} pixels: it has none")));
        }
        if pixels > self.max_pixels {
            return Err(file_error(
                path,
                format!(
                    "an image of {width}x{height} pixels, more than the {} allowed \
                     (raise it with ImageFolder::max_pixels)",
                    self.max_pixels
                ),
            ));
        }
        DynamicImage::from_decoder(decoder).map_err(|e| self.decode_error(path, e))
    }

    fn decode_error(&self, path: &Path, e: ImageError) -> crate::Error {
        match e {
            ImageError::Limits(e) => file_error(
                path,
                format!(
                    "{e}: more than images of {} pixels may take (raise it with ImageFolder::max_pixels)",
                    self.max_pixels
                ),
            ),
            e => file_error(path, format!("cannot decode: {e}")),
        }
    }

    /// The part of a `width` x `height` source that becomes the image.
    fn window(&self, width: usize, height: usize) -> Window {
        let (w, h) = (width as f64, height as f64);
        match self.resize {
            Resize::Stretch => Window { x: 0.0..w, y: 0.0..h },
            Resize::CropCentre { shorter_side } => {
                // torchvision's `Resize(s)`: the shorter side to `s`, the longer one in
                // proportion, rounded down; then `CenterCrop`, its offsets rounded half to even
                // as Python's `round`. Both sides end at least `s`, no less than the crop.
                let s = shorter_side as f64;
                let (rw, rh) = if width <= height { (s, (s * h / w).floor()) } else { ((s * w / h).floor(), s) };
                let (cw, ch) = (self.shape.w as f64, self.shape.h as f64);
                let left = ((rw - cw) / 2.0).round_ties_even();
                let top = ((rh - ch) / 2.0).round_ties_even();
                let (sx, sy) = (rw / w, rh / h);
                Window { x: left / sx..(left + cw) / sx, y: top / sy..(top + ch) / sy }
            }
        }
    }
}

fn resample<S: Unit>(
    raw: &[S],
    width: usize,
    height: usize,
    channels: usize,
    window: &Window,
    shape: Shape,
    out: &mut [f32],
) {
    Source { raw, width, height, channels }.resample(window, shape, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoder(w: usize, h: usize, resize: Resize) -> Decoder {
        Decoder { shape: Shape::volume(w, h, 3), resize, max_pixels: DEFAULT_MAX_PIXELS }
    }

    #[test]
    fn a_centre_crop_window_follows_torchvision() {
        let crop = Resize::CropCentre { shorter_side: 256 };
        // 500x375 to 341x256 (256 * 500 / 375 = 341.33), crop 224x224 at (58.5 -> 58, 16).
        let window = decoder(224, 224, crop).window(500, 375);
        let sx = 341.0 / 500.0;
        let sy = 256.0 / 375.0;
        assert_eq!(window, Window { x: 58.0 / sx..282.0 / sx, y: 16.0 / sy..240.0 / sy });
        // Portrait: the width is the shorter side.
        let window = decoder(224, 224, crop).window(375, 500);
        assert_eq!(window.x, 16.0 / sy..240.0 / sy);
        // Already the size: the whole image.
        let window = decoder(4, 4, Resize::CropCentre { shorter_side: 4 }).window(4, 4);
        assert_eq!(window, Window { x: 0.0..4.0, y: 0.0..4.0 });
        let stretch = decoder(3, 3, Resize::Stretch).window(7, 13);
        assert_eq!(stretch, Window { x: 0.0..7.0, y: 0.0..13.0 });
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let path = Path::new("/nonexistent/x.png");
        let mut out = vec![0.0; 12];
        let err = decoder(2, 2, Resize::Stretch).read(path, &mut out).unwrap_err();
        let crate::Error::File { path: p, reason } = err else { panic!("not a file error") };
        assert_eq!(p, path);
        assert!(reason.starts_with("cannot open"), "{reason}");
    }
}
