//! Listing a data set folder `DIR/<class>/<image>`: the image files, sorted, and the entries
//! that are skipped (outside a class folder, hidden, unreadable, symlink loops, names that are
//! not UTF-8, anything that is not a regular file) with a reason. Only the data set's own notes
//! at its top level (README, LICENSE, MANIFEST.json, *.txt, ...) are left out without one.
//!
//! And reading one image file ([`read_image_file`], for `extract`, `predict` and `show`): only a
//! regular file is read (a FIFO would block the reader forever, `/dev/zero` would fill memory),
//! and only up to a size cap checked from its metadata first and bounding the read itself, so a
//! 2 GB file named `.jpg` is reported as too large without being read.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tlearn_cache::SkipRow;

/// Top-level files that describe a data set (MANIFEST.json, README, LICENSE, notes) rather than
/// being misplaced images: left out without a skip report.
fn is_dataset_notes(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    ["readme", "license", "licence", "manifest"]
        .iter()
        .any(|p| lower.starts_with(p))
        || [".json", ".txt", ".md", ".csv", ".toml", ".yaml", ".yml"]
            .iter()
            .any(|e| lower.ends_with(e))
}

/// The listing of a dataset folder.
#[derive(Debug, Default)]
pub struct Listing {
    /// (relative path with `/`, absolute path), sorted by relative path.
    pub files: Vec<(String, PathBuf)>,
    pub skipped: Vec<SkipRow>,
    /// Class folders with no files in them.
    pub empty_classes: Vec<String>,
}

/// The default cap on the size of one image file: 256 MiB (a 100-megapixel PNG is about 300 MB
/// decoded but far less on disk; `extract --max-file-size` raises it).
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// Why an image file was not read. The message is what lands in `skipped.csv`.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// A FIFO, socket or device (or a link to one).
    #[error("not a regular file ({0}); not read")]
    NotRegular(&'static str),
    #[error(
        "file too large: {} (over the {} limit for an image file; `extract --max-file-size` \
         raises it)",
        human(*.size),
        human(*.max)
    )]
    TooLarge { size: u64, max: u64 },
    #[error("unreadable file: {0}")]
    Io(#[from] std::io::Error),
}

fn human(bytes: u64) -> String {
    crate::budget::ByteSize(bytes).display().iec().to_string()
}

/// What kind of non-regular file `t` is, in words.
fn kind_of(t: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a named pipe (FIFO)";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
    }
    if t.is_dir() {
        "a folder"
    } else {
        "not a file"
    }
}

/// The bytes of the image file `path` (links followed): refused unless it is a regular file of
/// at most `max_bytes`, checked from its metadata before it is opened; the read itself stops
/// after `max_bytes` (a file that grew since is refused too). Opened without blocking, so a file
/// replaced by a FIFO after the check is refused, not waited on.
pub fn read_image_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>, FileError> {
    let check = |m: &std::fs::Metadata| -> Result<(), FileError> {
        if !m.is_file() {
            return Err(FileError::NotRegular(kind_of(m.file_type())));
        }
        if m.len() > max_bytes {
            return Err(FileError::TooLarge {
                size: m.len(),
                max: max_bytes,
            });
        }
        Ok(())
    };
    check(&std::fs::metadata(path)?)?;
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NONBLOCK);
    }
    let file = o.open(path)?;
    let meta = file.metadata()?;
    check(&meta)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(FileError::TooLarge {
            size: bytes.len() as u64,
            max: max_bytes,
        });
    }
    Ok(bytes)
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().starts_with(b".")
}

/// `p` relative to `root` with `/` separators: `Ok` when every component is UTF-8, else `Err`
/// with every byte that is not UTF-8 escaped as `\xNN` (a name to show, not to open).
fn rel_path(root: &Path, p: &Path) -> Result<String, String> {
    let rel = p.strip_prefix(root).unwrap_or(p);
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    match parts {
        Some(parts) => Ok(parts.join("/")),
        None => Err(rel
            .components()
            .map(|c| escape_bytes(c.as_os_str().as_encoded_bytes()))
            .collect::<Vec<_>>()
            .join("/")),
    }
}

/// A file name's bytes as text: valid UTF-8 kept, every other byte as `\xNN`.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// List `root/<class>/...` files (symlinks followed). Hidden files and folders (`.DS_Store`,
/// `.git`) are not read but listed as skipped, as are loops, unreadable folders and names that
/// are not UTF-8.
pub fn list_dataset(root: &Path) -> Result<Listing> {
    let meta =
        std::fs::metadata(root).with_context(|| format!("dataset folder {}", root.display()))?;
    if !meta.is_dir() {
        bail!("dataset {} is not a folder", root.display());
    }
    let mut out = Listing::default();
    let mut class_dirs = BTreeSet::new();
    let mut seen_classes = BTreeSet::new();
    let mut walker = walkdir::WalkDir::new(root)
        .follow_links(true)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = walker.next() {
        let entry = match entry {
            Ok(e) => e,
            Err(err) => {
                let path = match err.path().map(|p| rel_path(root, p)) {
                    Some(Ok(p) | Err(p)) => p,
                    None => "?".into(),
                };
                let reason = if let Some(anc) = err.loop_ancestor() {
                    match rel_path(root, anc) {
                        Ok(p) | Err(p) if p.is_empty() => {
                            "symlink loop (points back to the data set folder)".to_string()
                        }
                        Ok(p) | Err(p) => format!("symlink loop (points back to {p})"),
                    }
                } else if let Some(io) = err.io_error() {
                    match io.kind() {
                        std::io::ErrorKind::NotFound => "broken symlink".to_string(),
                        std::io::ErrorKind::PermissionDenied => {
                            format!("unreadable folder: {io}")
                        }
                        _ => format!("cannot list: {io}"),
                    }
                } else {
                    format!("cannot list: {err}")
                };
                out.skipped.push(SkipRow { path, reason });
                continue;
            }
        };
        let is_dir = entry.file_type().is_dir();
        let rel = match rel_path(root, entry.path()) {
            Ok(rel) => rel,
            Err(escaped) => {
                if is_dir {
                    walker.skip_current_dir();
                }
                out.skipped.push(SkipRow {
                    path: escaped,
                    reason: format!(
                        "{} name is not valid UTF-8 (bytes shown as \\xNN); rename it",
                        if is_dir { "folder" } else { "file" }
                    ),
                });
                continue;
            }
        };
        if is_hidden(entry.file_name()) {
            if is_dir {
                walker.skip_current_dir();
            }
            out.skipped.push(SkipRow {
                path: rel,
                reason: if is_dir {
                    "hidden folder (not read)".into()
                } else {
                    "hidden file".into()
                },
            });
            continue;
        }
        if entry.depth() == 1 {
            if is_dir {
                class_dirs.insert(rel);
            } else if !is_dataset_notes(&rel) {
                out.skipped.push(SkipRow {
                    path: rel,
                    reason: "not inside a class folder".into(),
                });
            }
        } else if !is_dir {
            let class = rel.split('/').next().unwrap_or_default().to_owned();
            seen_classes.insert(class);
            // Links are followed: this is the type of what a link points to.
            let t = entry.file_type();
            if t.is_file() {
                out.files.push((rel, entry.into_path()));
            } else {
                out.skipped.push(SkipRow {
                    path: rel,
                    reason: FileError::NotRegular(kind_of(t)).to_string(),
                });
            }
        }
    }
    out.empty_classes = class_dirs.difference(&seen_classes).cloned().collect();
    out.files.sort_by(|a, b| a.0.cmp(&b.0));
    out.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn hidden_and_non_utf8_names_are_listed_relative_with_a_reason() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("cats/.thumbnails")).unwrap();
        std::fs::write(root.join("cats/a.png"), b"x").unwrap();
        std::fs::write(root.join("cats/.DS_Store"), b"x").unwrap();
        std::fs::write(root.join("cats/.thumbnails/a.png"), b"x").unwrap();
        std::fs::write(root.join(".DS_Store"), b"x").unwrap();
        std::fs::write(root.join("MANIFEST.json"), b"{}").unwrap();
        let latin1 = std::ffi::OsStr::from_bytes(b"caf\xe9 \xff.jpg");
        std::fs::write(root.join("cats").join(latin1), b"x").unwrap();
        let l = list_dataset(root).unwrap();
        let files: Vec<&str> = l.files.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(files, ["cats/a.png"]);
        let skipped: Vec<(&str, &str)> = l
            .skipped
            .iter()
            .map(|r| (r.path.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(
            skipped,
            [
                (".DS_Store", "hidden file"),
                ("cats/.DS_Store", "hidden file"),
                ("cats/.thumbnails", "hidden folder (not read)"),
                (
                    "cats/caf\\xe9 \\xff.jpg",
                    "file name is not valid UTF-8 (bytes shown as \\xNN); rename it"
                ),
            ]
        );
    }

    #[test]
    fn only_regular_files_within_the_cap_are_listed_and_read() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("birds")).unwrap();
        std::fs::write(root.join("birds/a.png"), b"12345").unwrap();
        let fifo = root.join("birds/pipe.png");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        std::os::unix::fs::symlink("/dev/zero", root.join("birds/z.png")).unwrap();
        std::os::unix::fs::symlink(root, root.join("birds/loop")).unwrap();
        let l = list_dataset(root).unwrap();
        let files: Vec<&str> = l.files.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(files, ["birds/a.png"]);
        let skipped: Vec<(&str, &str)> = l
            .skipped
            .iter()
            .map(|r| (r.path.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(
            skipped,
            [
                (
                    "birds/loop",
                    "symlink loop (points back to the data set folder)"
                ),
                (
                    "birds/pipe.png",
                    "not a regular file (a named pipe (FIFO)); not read"
                ),
                (
                    "birds/z.png",
                    "not a regular file (a character device); not read"
                ),
            ]
        );
        // Read directly (predict, show): refused without reading, at once.
        for p in [fifo, root.join("birds/z.png")] {
            let e = read_image_file(&p, MAX_FILE_BYTES).unwrap_err().to_string();
            assert!(e.starts_with("not a regular file"), "{e}");
        }
        assert_eq!(
            read_image_file(&root.join("birds/a.png"), 5).unwrap(),
            b"12345"
        );
        let e = read_image_file(&root.join("birds/a.png"), 4)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "file too large: 5 B (over the 4 B limit for an image file; `extract \
             --max-file-size` raises it)"
        );
        // A sparse 300 MiB file: refused from its size, nothing read.
        let big = root.join("birds/big.jpg");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(300 << 20)
            .unwrap();
        let e = read_image_file(&big, MAX_FILE_BYTES)
            .unwrap_err()
            .to_string();
        assert!(e.contains("300.0 MiB") && e.contains("256.0 MiB"), "{e}");
    }

    #[test]
    fn escaping_keeps_utf8_and_shows_other_bytes() {
        assert_eq!(escape_bytes("été.jpg".as_bytes()), "été.jpg");
        assert_eq!(escape_bytes(b"a\x80\xc3(b"), "a\\x80\\xc3(b");
    }
}
