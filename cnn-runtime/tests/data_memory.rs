//! Peak memory of loads fed decompression bombs and lying headers, measured by a global
//! allocator that tracks the most bytes live at once. One test only, so that no other test's
//! allocations run alongside the measurements.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use cnn_runtime::data::{load_cifar10_with, read_idx_images, read_idx_images_with};
use cnn_runtime::{Error, Limit};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, SeqCst) + bytes;
    PEAK.fetch_max(live, SeqCst);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), SeqCst);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as if the old and new blocks lived side by side, as they do when it copies.
        PEAK.fetch_max(LIVE.load(SeqCst) + new_size, SeqCst);
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), SeqCst);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What `f` returns and the most bytes live at once while it ran, beyond those live before.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.load(SeqCst);
    PEAK.store(before, SeqCst);
    let out = f();
    let peak = PEAK.load(SeqCst) - before;
    println!("peak {peak} bytes");
    (out, peak)
}

/// A gzip member of `header` followed by `zeros` zero bytes, written piece by piece.
fn gzip_zeros(header: &[u8], zeros: usize) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(header).unwrap();
    let piece = vec![0u8; 1 << 20];
    for _ in 0..zeros / piece.len() {
        enc.write_all(&piece).unwrap();
    }
    enc.write_all(&piece[..zeros % piece.len()]).unwrap();
    enc.finish().unwrap()
}

fn images_header(count: u32, rows: u32, cols: u32) -> Vec<u8> {
    [0x803, count, rows, cols].iter().flat_map(|x| x.to_be_bytes()).collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn reason(err: Error) -> String {
    match err {
        Error::File { reason, .. } => reason,
        other => panic!("expected a file error, got {other:?}"),
    }
}

const MIB: usize = 1 << 20;

#[test]
fn bombs_and_lying_headers_are_refused_within_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 256 MiB of zeros, a few hundred KB compressed: 16 gzip members of 16 MiB each (cheaper to
    // make than one member of 256 MiB, and read the same).
    let zeros = gzip_zeros(&[], 16 * MIB).repeat(16);
    assert!(zeros.len() < MIB, "{} bytes", zeros.len());
    let limit = 8 * MIB;

    // A CIFAR-10 batch (no header) decoding to far more than the limit: refused once the limit
    // is decoded.
    write(d, "data_batch_1.bin", &zeros);
    let (result, peak) = peak_of(|| load_cifar10_with(d, Limit::bytes(limit as u64)));
    let why = reason(result.unwrap_err());
    assert!(why.contains("decodes to more than the 8388608 bytes left of this load's limit of 8388608"), "{why}");
    assert!(peak < 2 * limit, "peak {peak} bytes for a limit of {limit}");

    // An IDX file whose header honestly announces 65,536 images of 32x32 (64 MiB): refused
    // from its header, before its pixels are decoded.
    let path = write(d, "honest.gz", &gzip_zeros(&images_header(65_536, 32, 32), 64 * MIB));
    let (result, peak) = peak_of(|| read_idx_images_with(&path, Limit::bytes(limit as u64)));
    let why = reason(result.unwrap_err());
    assert!(why.contains("65536 images of 32x32, which would need 67108864 bytes"), "{why}");
    assert!(peak < MIB, "peak {peak} bytes");
    // With room for it, the same file loads whole, its buffer doubling up to the 64 MiB.
    let (images, peak) = peak_of(|| read_idx_images_with(&path, Limit::bytes(64 << 20)).unwrap());
    assert_eq!((images.count, images.pixels.len()), (65_536, 64 * MIB));
    assert!(peak < 64 * MIB + 32 * MIB + MIB, "peak {peak} bytes");
    drop(images);

    // One image of 28x28, then 256 MiB of zeros the header does not announce: refused after
    // the first byte past the image, under the default limit.
    let one = [gzip_zeros(&images_header(1, 28, 28), 784), zeros.clone()].concat();
    let path = write(d, "one.gz", &one);
    let (result, peak) = peak_of(|| read_idx_images(&path));
    let why = reason(result.unwrap_err());
    assert!(why.contains("goes on past the 784 bytes the header announces"), "{why}");
    assert!(peak < MIB, "peak {peak} bytes");

    // A header announcing 1.3 million images (1 GB) over 4 MiB of pixels: memory follows the
    // 4 MiB read, not the 1 GB announced.
    let short = gzip_zeros(&images_header(1_300_000, 28, 28), 4 * MIB);
    let path = write(d, "short.gz", &short);
    let (result, peak) = peak_of(|| read_idx_images(&path));
    let why = reason(result.unwrap_err());
    assert!(why.starts_with("truncated: the header announces 1300000 images of 28x28"), "{why}");
    assert!(peak < 3 * 4 * MIB + MIB, "peak {peak} bytes");
}
