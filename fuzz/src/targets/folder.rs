//! Image folders: `cnn::data::ImageFolder` and `FolderBatches` on a folder of valid images
//! with one mutated PNG or JPEG file among them. The harness has no image library, so the
//! seeds come from the two small encoders here: PNG (any colour type, 8 or 16 bits, stored
//! rows) and baseline JPEG (blocks of one colour: DC coefficients only).

use std::io::{Read, Write};
use std::path::PathBuf;

use cnn::data::{FolderBatches, ImageFolder, OnError, Resize};
use cnn::Shape;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;

use super::data::signature;
use crate::mutate;
use crate::rng::{fnv, Rng};
use crate::runner::{Failure, Oracle, Outcome, Target};
use crate::work::Work;

/// Pixels an image may declare: mutated headers ask for far more, which must be refused before
/// anything that size is allocated.
const MAX_PIXELS: u64 = 1 << 16;

/// The ceiling of the streaming loader, in bytes: a batch of two images of 6x5x3 and a few
/// more decoded ahead.
const CEILING: u64 = 2048;

/// The valid images beside the case: (file, class, colour).
const VALID: [(&str, usize, [u8; 3]); 3] =
    [("a/0.png", 0, [200, 40, 40]), ("b/0.png", 1, [40, 200, 40]), ("b/1.jpg", 1, [40, 200, 40])];

/// The case's file: in class `a`, listed after `0.png`.
const CASE: &str = "a/case.png";

/// The PNG signature.
const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// CRC-32 of PNG chunks (ISO 3309, as gzip's), from `flate2`.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    crc.sum()
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

/// A PNG of `width` x `height` of colour type `colour` (0 grey, 2 RGB, 4 grey and alpha, 6
/// RGBA) and `depth` bits (8 or 16), whose rows are `rows` (without filter bytes).
pub fn png(width: u32, height: u32, colour: u8, depth: u8, rows: &[u8]) -> Vec<u8> {
    let mut out = PNG_SIGNATURE.to_vec();
    let mut header = [width.to_be_bytes(), height.to_be_bytes()].concat();
    header.extend_from_slice(&[depth, colour, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &header);
    let stride = rows.len() / height.max(1) as usize;
    let filtered: Vec<u8> =
        rows.chunks(stride.max(1)).flat_map(|row| std::iter::once(0).chain(row.iter().copied())).collect();
    chunk(&mut out, b"IDAT", &zlib(&filtered));
    chunk(&mut out, b"IEND", &[]);
    out
}

/// The chunks of a PNG after its signature, `(kind, data)`, as far as their lengths hold.
fn png_chunks(bytes: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
    let mut chunks = Vec::new();
    let mut at = PNG_SIGNATURE.len();
    while at + 12 <= bytes.len() {
        let len = u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        let Some(end) = (at + 12).checked_add(len).filter(|&end| end <= bytes.len()) else { break };
        let kind = [bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]];
        chunks.push((kind, bytes[at + 8..at + 8 + len].to_vec()));
        at = end;
    }
    chunks
}

/// Writes `chunks` back as a PNG, with checksums that hold.
fn png_from_chunks(chunks: &[([u8; 4], Vec<u8>)]) -> Vec<u8> {
    let mut out = PNG_SIGNATURE.to_vec();
    for (kind, data) in chunks {
        chunk(&mut out, kind, data);
    }
    out
}

/// Writes bits most significant first, stuffing a zero byte after each 0xff as JPEG's entropy
/// coding requires.
struct Bits {
    out: Vec<u8>,
    acc: u32,
    n: u32,
}

impl Bits {
    fn put(&mut self, code: u32, len: u32) {
        for i in (0..len).rev() {
            self.acc = (self.acc << 1) | ((code >> i) & 1);
            self.n += 1;
            if self.n == 8 {
                self.out.push(self.acc as u8);
                if self.acc == 0xff {
                    self.out.push(0);
                }
                (self.acc, self.n) = (0, 0);
            }
        }
    }

    fn finish(mut self) -> Vec<u8> {
        while self.n != 0 {
            self.put(1, 1);
        }
        self.out
    }
}

/// Code lengths of the standard luminance DC table (JPEG Annex K.3): symbols 0 to 11.
const DC_COUNTS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];

/// A baseline JPEG of `width` x `height` with `components` (1 grey, 3 YCbCr) at full
/// resolution, each 8x8 block of one colour: `sample(x, y, c)` at the block's top-left pixel.
/// Quantisation is 1 everywhere; every block's AC coefficients are zero (an end of block, coded
/// as the one-bit code `0`).
pub fn jpeg(width: u16, height: u16, components: u8, sample: impl Fn(u16, u16, u8) -> u8) -> Vec<u8> {
    let mut out = vec![0xff, 0xd8];
    let mut segment = |marker: u8, data: &[u8]| {
        out.extend_from_slice(&[0xff, marker]);
        out.extend_from_slice(&(data.len() as u16 + 2).to_be_bytes());
        out.extend_from_slice(data);
    };
    segment(0xdb, &[[0u8].as_slice(), &[1; 64]].concat());
    let mut frame = vec![8];
    frame.extend_from_slice(&height.to_be_bytes());
    frame.extend_from_slice(&width.to_be_bytes());
    frame.push(components);
    (1..=components).for_each(|c| frame.extend_from_slice(&[c, 0x11, 0]));
    segment(0xc0, &frame);
    segment(0xc4, &[[0x00].as_slice(), &DC_COUNTS, &(0..12).collect::<Vec<u8>>()].concat());
    let mut ac = vec![0x10, 1];
    ac.extend_from_slice(&[0; 15]);
    ac.push(0x00);
    segment(0xc4, &ac);
    let mut scan = vec![components];
    (1..=components).for_each(|c| scan.extend_from_slice(&[c, 0x00]));
    scan.extend_from_slice(&[0, 63, 0]);
    segment(0xda, &scan);
    // Canonical codes of the DC table: (code, length) by symbol.
    let mut dc_codes = Vec::new();
    let mut code = 0u32;
    for (len, &count) in DC_COUNTS.iter().enumerate() {
        for _ in 0..count {
            dc_codes.push((code, len as u32 + 1));
            code += 1;
        }
        code <<= 1;
    }
    let mut bits = Bits { out: Vec::new(), acc: 0, n: 0 };
    let mut previous = vec![0i32; components as usize];
    for by in 0..height.div_ceil(8) {
        for bx in 0..width.div_ceil(8) {
            for c in 0..components {
                // The DC coefficient of a block of one value v: 8 (v - 128).
                let dc = 8 * (i32::from(sample(bx * 8, by * 8, c)) - 128);
                let diff = dc - previous[c as usize];
                previous[c as usize] = dc;
                let size = 32 - diff.unsigned_abs().leading_zeros();
                let (code, len) = dc_codes[size as usize];
                bits.put(code, len);
                let value = if diff < 0 { diff + (1 << size) - 1 } else { diff };
                bits.put(value as u32, size);
                bits.put(0, 1);
            }
        }
    }
    out.extend(bits.finish());
    out.extend_from_slice(&[0xff, 0xd9]);
    out
}

/// `rgb` as the YCbCr a JPEG holds.
pub fn ycbcr([r, g, b]: [u8; 3]) -> [u8; 3] {
    let (r, g, b) = (f32::from(r), f32::from(g), f32::from(b));
    let y = 0.299 * r + 0.587 * g + 0.114 * b;
    let cb = 128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b;
    let cr = 128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b;
    [y, cb, cr].map(|v| v.round().clamp(0.0, 255.0) as u8)
}

/// A PNG of one colour.
fn uniform_png(rgb: [u8; 3]) -> Vec<u8> {
    png(7, 4, 2, 8, &rgb.repeat(28))
}

/// The seeds: a PNG of each colour type and depth, and JPEGs of grey and colour.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let ramp = |n: usize, k: usize| (0..n).map(|i| (i * k % 251) as u8).collect::<Vec<u8>>();
    let mut seeds = vec![
        ("png.grey8.png".to_string(), png(9, 7, 0, 8, &ramp(63, 5))),
        ("png.grey16.png".into(), png(5, 3, 0, 16, &ramp(30, 7))),
        ("png.grey-alpha8.png".into(), png(4, 4, 4, 8, &ramp(32, 3))),
        ("png.rgb8.png".into(), png(6, 5, 2, 8, &ramp(90, 11))),
        ("png.rgb16.png".into(), png(3, 3, 2, 16, &ramp(54, 13))),
        ("png.rgba8.png".into(), png(2, 9, 6, 8, &ramp(72, 17))),
    ];
    seeds.push(("jpeg.grey.jpg".into(), jpeg(16, 8, 1, |x, y, _| (x * 8 + y * 3) as u8)));
    let colour = |x: u16, y: u16, c: u8| ycbcr([(x * 10) as u8, (y * 20) as u8, 90])[c as usize];
    seeds.push(("jpeg.rgb.jpg".into(), jpeg(16, 16, 3, colour)));
    seeds
}

/// A mutant of a PNG: bytes changed then (mostly) the checksums made to hold again, its header's
/// fields set to extremes, or its decompressed rows mutated and compressed again.
fn mutate_png(rng: &mut Rng, parent: &[u8], other: &[u8]) -> Vec<u8> {
    let mut chunks = png_chunks(parent);
    match rng.below(4) {
        0 if !chunks.is_empty() && chunks[0].1.len() == 13 => {
            let header = &mut chunks[0].1;
            match rng.below(4) {
                0 => header[0..4]
                    .copy_from_slice(&(rng.pick(&[0u32, 1, 0x7fff, 65_536, 1 << 20, u32::MAX])).to_be_bytes()),
                1 => header[4..8].copy_from_slice(&(rng.pick(&[0u32, 1, 256, 1 << 16, 1 << 31])).to_be_bytes()),
                2 => header[8] = rng.pick(&[1, 2, 4, 8, 16, 0, 3]),
                _ => header[9] = rng.pick(&[0, 2, 3, 4, 6, 1, 7]),
            }
            png_from_chunks(&chunks)
        }
        1 => {
            let Some((_, idat)) = chunks.iter_mut().find(|(kind, _)| kind == b"IDAT") else {
                return parent.to_vec();
            };
            let mut rows = Vec::new();
            let _ = ZlibDecoder::new(idat.as_slice()).take(1 << 20).read_to_end(&mut rows);
            mutate::bytes(rng, &mut rows, other);
            *idat = zlib(&rows);
            png_from_chunks(&chunks)
        }
        2 => {
            let mut out = parent.to_vec();
            mutate::bytes(rng, &mut out, other);
            out
        }
        _ => {
            let mut out = parent.to_vec();
            mutate::bytes(rng, &mut out, other);
            if out.starts_with(&PNG_SIGNATURE) && !png_chunks(&out).is_empty() {
                out = png_from_chunks(&png_chunks(&out));
            }
            out
        }
    }
}

/// A mutant of a JPEG: bytes changed, or the frame header's size set to an extreme.
fn mutate_jpeg(rng: &mut Rng, parent: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = parent.to_vec();
    let frame = out.windows(2).position(|w| w == [0xff, 0xc0]).filter(|&at| at + 9 <= out.len());
    match frame {
        Some(at) if rng.one_in(4) => {
            let size = rng.pick(&[0u16, 1, 7, 255, 4096, u16::MAX]).to_be_bytes();
            let field = at + 5 + 2 * rng.below(2);
            out[field..field + 2].copy_from_slice(&size);
        }
        _ => mutate::bytes(rng, &mut out, other),
    }
    out
}

/// `cnn::data::ImageFolder` and `FolderBatches` on a folder of three valid images and the case.
pub struct Folder {
    work: Work,
    case: PathBuf,
}

impl Folder {
    /// A target with its scratch folder of valid images.
    pub fn new() -> Self {
        let work = Work::new("image-folder");
        for dir in ["a", "b"] {
            std::fs::create_dir_all(work.dir().join(dir)).expect("scratch directory");
        }
        for (name, _, rgb) in VALID {
            let bytes = if name.ends_with(".jpg") {
                let yuv = ycbcr(rgb);
                jpeg(8, 8, 3, |_, _, c| yuv[c as usize])
            } else {
                uniform_png(rgb)
            };
            work.write(name, &bytes);
        }
        let case = work.write(CASE, &uniform_png([1, 2, 3]));
        Folder { work, case }
    }

    /// The case's image alone: `None` when it decodes (to values in [0, 1]), the error when it
    /// does not, which must name its file.
    fn read_case(&self, folder: &ImageFolder, case: usize) -> Result<Option<cnn::Error>, Failure> {
        let mut out = vec![0.0; folder.shape().len()];
        match folder.read_image(case, &mut out) {
            Ok(()) if out.iter().all(|v| (0.0..=1.0).contains(v)) => Ok(None),
            Ok(()) => Err(Failure::new(Oracle::WrongResult, "a value out of [0, 1]")),
            Err(cnn::Error::File { path, reason }) if path == self.case => Ok(Some(cnn::Error::File { path, reason })),
            Err(e) => Err(Failure::new(Oracle::WrongResult, format!("an error that does not name the image: {e}"))),
        }
    }

    /// One epoch of the streaming loader, skipping what cannot be read: the indices of the
    /// images it gave and of those it skipped. Each valid image must come with its class, and in
    /// RGB with its colour.
    fn stream(&self, folder: &ImageFolder, hash: u64) -> Result<(Vec<usize>, Vec<usize>), Failure> {
        let wrong = |message: String| Failure::new(Oracle::WrongResult, message);
        let mut batches = FolderBatches::new(folder, 2, hash)
            .and_then(|b| b.on_error(OnError::Skip).workers(1 + (hash >> 2) as usize % 2)?.ceiling(CEILING))
            .map_err(|e| wrong(format!("the loader did not start: {e}")))?;
        let shape = folder.shape();
        let plane = shape.w * shape.h;
        let mut seen = Vec::new();
        while let Some(batch) = batches.next_batch().map_err(|e| wrong(format!("an error while skipping: {e}")))? {
            for (k, (&label, &index)) in batch.labels.iter().zip(batch.indices).enumerate() {
                let image = &batch.images[k * shape.len()..(k + 1) * shape.len()];
                let valid = VALID.iter().find(|v| folder.path(index) == Some(self.work.dir().join(v.0).as_path()));
                if let Some(&(_, class, rgb)) = valid {
                    let first = [image[0], image[plane.min(image.len() - 1)], image[(2 * plane).min(image.len() - 1)]];
                    let near = rgb.iter().zip(first).all(|(&want, got)| (f32::from(want) / 255.0 - got).abs() < 0.05);
                    if label != class || (shape.d == 3 && !near) {
                        return Err(wrong(format!("image {index} has label {label} and colour {first:?}")));
                    }
                }
                seen.push(index);
            }
        }
        seen.sort_unstable();
        Ok((seen, batches.skipped().iter().map(|s| s.index).collect()))
    }
}

impl Default for Folder {
    fn default() -> Self {
        Self::new()
    }
}

impl Target for Folder {
    fn name(&self) -> &'static str {
        "image-folder"
    }

    fn mutate(&self, rng: &mut Rng, parent: &[u8], other: &[u8]) -> Vec<u8> {
        if parent.starts_with(&PNG_SIGNATURE) && !rng.one_in(8) {
            mutate_png(rng, parent, other)
        } else {
            mutate_jpeg(rng, parent, other)
        }
    }

    fn run(&mut self, _config: &str, input: &[u8]) -> Outcome {
        self.work.write(CASE, input);
        let hash = fnv(input);
        let shape = Shape::volume(6, 5, if hash & 1 == 0 { 3 } else { 1 });
        let resize = if hash & 2 == 0 { Resize::Stretch } else { Resize::CropCentre { shorter_side: 7 } };
        let opened = ImageFolder::open(self.work.dir(), shape).and_then(|f| f.resize(resize)?.max_pixels(MAX_PIXELS));
        let folder = opened.map_err(|e| Failure::new(Oracle::WrongResult, format!("the folder did not open: {e}")))?;
        let case = folder.paths().iter().position(|p| *p == self.case);
        let case = case.ok_or_else(|| Failure::new(Oracle::WrongResult, "the case is not listed"))?;
        let error = self.read_case(&folder, case)?;
        let (seen, skipped) = self.stream(&folder, hash)?;
        // Every image once, but the case when it does not decode, which is reported instead.
        let expected: Vec<usize> = (0..folder.len()).filter(|&i| i != case || error.is_none()).collect();
        if seen != expected || skipped != if error.is_none() { vec![] } else { vec![case] } {
            return Err(Failure::new(
                Oracle::WrongResult,
                format!("images {seen:?} and skipped {skipped:?}; the case, image {case}, fails with {error:?}"),
            ));
        }
        Ok(error.map_or_else(|| "ok".into(), |e| signature(&e, self.work.dir())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_read_back_as_written() {
        let image = png(2, 2, 0, 8, &[1, 2, 3, 4]);
        let chunks = png_chunks(&image);
        let kinds: Vec<&[u8; 4]> = chunks.iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, [b"IHDR", b"IDAT", b"IEND"]);
        assert_eq!(png_from_chunks(&chunks), image);
        // The CRC of an empty IEND chunk, as every PNG ends.
        assert_eq!(crc32(b"IEND"), 0xae42_6082);
    }
}
