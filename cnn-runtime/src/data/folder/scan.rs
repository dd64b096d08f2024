//! Listing an image folder: its classes, then each class's image files, in a fixed order.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use crate::data::file_error;
use crate::Result;

/// The extensions of the files listed (compared without regard to case).
pub(super) const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// What a scan found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Listing {
    /// Class names, sorted.
    pub(super) classes: Vec<String>,
    /// Images per class.
    pub(super) counts: Vec<usize>,
    /// Every image, class after class.
    pub(super) paths: Vec<PathBuf>,
    /// The class of each image.
    pub(super) labels: Vec<usize>,
}

/// Lists `root`: one class per visible sub-directory (symbolic links followed), sorted by name;
/// in each, its image files by name, then those of its sub-directories, each in turn, by name.
pub(super) fn scan(root: &Path) -> Result<Listing> {
    let mut classes: Vec<(OsString, PathBuf)> =
        visible(root)?.into_iter().filter(|(_, path)| fs::metadata(path).is_ok_and(|m| m.is_dir())).collect();
    if classes.is_empty() {
        return Err(file_error(root, "no class directories: one sub-directory of images per class is expected"));
    }
    classes.sort();
    let mut listing = Listing::default();
    for (label, (name, dir)) in classes.iter().enumerate() {
        let before = listing.paths.len();
        let mut seen = HashSet::new();
        walk(dir, &mut listing.paths, &mut seen)?;
        listing.labels.resize(listing.paths.len(), label);
        listing.counts.push(listing.paths.len() - before);
        listing.classes.push(name.to_string_lossy().into_owned());
    }
    if listing.paths.is_empty() {
        return Err(file_error(
            root,
            format!("no PNG or JPEG image (.png, .jpg, .jpeg) in its {} class directories", classes.len()),
        ));
    }
    Ok(listing)
}

/// Whether `path` names an image by its extension.
pub(super) fn is_image(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
    EXTENSIONS.iter().any(|known| ext.eq_ignore_ascii_case(known))
}

/// The entries of `dir` whose names do not start with a dot.
fn visible(dir: &Path) -> Result<Vec<(OsString, PathBuf)>> {
    let cannot = |e: std::io::Error| file_error(dir, format!("cannot list: {e}"));
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(cannot)? {
        let entry = entry.map_err(cannot)?;
        let name = entry.file_name();
        if !name.as_encoded_bytes().starts_with(b".") {
            entries.push((name, entry.path()));
        }
    }
    Ok(entries)
}

/// Adds the images under `dir` to `paths`: its own first, then its sub-directories'. `seen`
/// holds the directories already walked, so that a link back up is not followed round.
fn walk(dir: &Path, paths: &mut Vec<PathBuf>, seen: &mut HashSet<PathBuf>) -> Result<()> {
    if let Ok(canonical) = fs::canonicalize(dir) {
        if !seen.insert(canonical) {
            return Ok(());
        }
    }
    let mut entries = visible(dir)?;
    entries.sort();
    let mut dirs = Vec::new();
    for (_, path) in entries {
        match fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => dirs.push(path),
            // Sockets and pipes are not read (opening a pipe would wait for a writer).
            Ok(meta) if meta.is_file() && is_image(&path) => paths.push(path),
            Ok(_) => {}
            // A broken link with an image's name is listed, so that reading it reports why.
            Err(_) if is_image(&path) => paths.push(path),
            Err(_) => {}
        }
    }
    for sub in dirs {
        walk(&sub, paths, seen)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, name: &str) {
        let path = root.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"x").unwrap();
    }

    #[test]
    fn classes_and_files_are_sorted_and_hidden_or_other_files_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for name in ["b/2.PNG", "b/1.jpeg", "b/sub/0.jpg", "b/.hidden.png", "b/notes.txt", "a/x.Jpg", "c.png"] {
            touch(root, name);
        }
        fs::create_dir_all(root.join("empty")).unwrap();
        fs::create_dir_all(root.join(".git/objects")).unwrap();
        touch(root, ".git/objects/z.png");
        touch(root, "b/.cache/y.png");
        let listing = scan(root).unwrap();
        assert_eq!(listing.classes, ["a", "b", "empty"]);
        assert_eq!(listing.counts, [1, 3, 0]);
        let names: Vec<PathBuf> = listing.paths.iter().map(|p| p.strip_prefix(root).unwrap().to_path_buf()).collect();
        assert_eq!(
            names,
            [Path::new("a/x.Jpg"), Path::new("b/1.jpeg"), Path::new("b/2.PNG"), Path::new("b/sub/0.jpg")]
        );
        assert_eq!(listing.labels, [0, 1, 1, 1]);
    }

    #[cfg(unix)]
    #[test]
    fn links_are_followed_but_not_round_in_circles() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(root, "elsewhere/cat/1.png");
        fs::create_dir_all(root.join("set")).unwrap();
        std::os::unix::fs::symlink(root.join("elsewhere/cat"), root.join("set/cat")).unwrap();
        std::os::unix::fs::symlink(root.join("elsewhere/cat"), root.join("elsewhere/cat/loop")).unwrap();
        std::os::unix::fs::symlink(root.join("gone.png"), root.join("elsewhere/cat/2.png")).unwrap();
        let listing = scan(&root.join("set")).unwrap();
        assert_eq!(listing.classes, ["cat"]);
        assert_eq!(listing.counts, [2], "{:?}", listing.paths);
    }

    #[test]
    fn a_root_without_classes_or_images_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let err = scan(root).unwrap_err().to_string();
        assert!(err.starts_with(&root.display().to_string()) && err.contains("no class directories"), "{err}");
        touch(root, "a/readme.txt");
        fs::create_dir_all(root.join("b")).unwrap();
        let err = scan(root).unwrap_err().to_string();
        assert!(err.contains("no PNG or JPEG image") && err.contains("2 class directories"), "{err}");
        let err = scan(&root.join("missing")).unwrap_err().to_string();
        assert!(err.contains("missing: cannot list"), "{err}");
    }
}
