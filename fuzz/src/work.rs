//! A scratch directory per target and process, for the files a case is read from.

use std::fs;
use std::path::{Path, PathBuf};

/// A directory in memory (`/dev/shm`) or under the system's temporary directory, or under
/// `CNN_FUZZ_WORK` when set; removed when dropped. When the process
/// aborts (an allocation over the hard cap), it stays, holding the input that caused it.
#[derive(Debug)]
pub struct Work {
    dir: PathBuf,
}

impl Work {
    /// A new, empty directory for `name`.
    pub fn new(name: &str) -> Work {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        // Writing a file per case costs milliseconds on some disks and microseconds in memory.
        let base = std::env::var_os("CNN_FUZZ_WORK").map(PathBuf::from).unwrap_or_else(|| {
            let shm = Path::new("/dev/shm");
            if shm.is_dir() {
                shm.to_path_buf()
            } else {
                std::env::temp_dir()
            }
        });
        let dir = base.join(format!("cnn-fuzz-{}-{name}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        Work { dir }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `bytes` to `name` in the directory and returns its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.join(name);
        fs::write(&path, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}
