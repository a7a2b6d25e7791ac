//! Atomic file writes, the one implementation in the workspace: the content goes to a temp
//! file with a unique name in the same directory (`.NAME.XXXXXX.tmp`, so two writers never
//! share one), is fsynced, renamed over `NAME`, and the directory is fsynced so the rename
//! survives a crash. A reader sees the old file or the new one, never a mix; a failed write
//! removes its temp file.
//!
//! The unique names and clean-up on drop come from `tempfile` (`NamedTempFile`). A process
//! killed between creating and renaming its temp file leaves it behind: [`remove_stale_temps`]
//! removes those of given files, for a writer that knows it is the only one (the holder of a
//! cache's lock).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::CacheError;

/// The name [`check_writable`] probes a directory with (its temp files: `.write-probe.XXXXXX.tmp`).
pub const PROBE_FILE: &str = "write-probe";

/// Length of the random part of a temp file's name.
const RAND_CHARS: usize = 6;

/// The error a content writer may return (serde_json, csv, ndarray-npy, io ...).
pub type WriteError = Box<dyn std::error::Error + Send + Sync>;

/// A file written in full under a temporary name, not yet renamed into place.
pub(crate) struct Staged {
    tmp: NamedTempFile,
    path: PathBuf,
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Fill a unique temp file beside `path` with `write`, flush and fsync it.
pub(crate) fn stage(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<(), WriteError>,
) -> Result<Staged, CacheError> {
    let dir = parent_of(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder
        .prefix(&prefix)
        .suffix(".tmp")
        .rand_bytes(RAND_CHARS);
    #[cfg(unix)]
    {
        // An ordinary file's mode (tempfile's default is 0600).
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let tmp = builder
        .tempfile_in(dir)
        .map_err(|e| CacheError::io("creating a temporary file for", path, e))?;
    let mut w = BufWriter::new(tmp.as_file());
    write(&mut w).map_err(|e| CacheError::io("writing", path, std::io::Error::other(e)))?;
    w.flush().map_err(|e| CacheError::io("writing", path, e))?;
    drop(w);
    tmp.as_file()
        .sync_all()
        .map_err(|e| CacheError::io("fsync of the temporary file for", path, e))?;
    Ok(Staged {
        tmp,
        path: path.to_path_buf(),
    })
}

impl Staged {
    /// Rename into place (the directory is not fsynced here; see [`sync_dir`]).
    pub(crate) fn commit(self) -> Result<(), CacheError> {
        let path = self.path;
        self.tmp
            .persist(&path)
            .map_err(|e| CacheError::io("renaming a temporary file onto", &path, e.error))?;
        Ok(())
    }
}

impl Staged {
    /// Keep the temp file (it is no longer removed on drop): its path and the path it is for,
    /// for a writer that records the renames it is about to make ([`crate::set`]).
    pub(crate) fn keep(self) -> Result<(PathBuf, PathBuf), CacheError> {
        let (_, tmp) = self
            .tmp
            .keep()
            .map_err(|e| CacheError::io("keeping the temporary file for", &self.path, e.error))?;
        Ok((tmp, self.path))
    }
}

/// Make renames in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), CacheError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| CacheError::io("fsync of directory", dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Whether `file_name` is a temp file of [`stage`] for `name` (`.NAME.XXXXXX.tmp`, [`RAND_CHARS`]
/// random letters and digits), or of the fixed-name writers before it (`NAME.tmp`).
fn is_temp_of(file_name: &str, name: &str) -> bool {
    if file_name == format!("{name}.tmp") {
        return true;
    }
    file_name
        .strip_prefix('.')
        .and_then(|r| r.strip_prefix(name))
        .and_then(|r| r.strip_prefix('.'))
        .and_then(|r| r.strip_suffix(".tmp"))
        .is_some_and(|rand| {
            rand.len() == RAND_CHARS && rand.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// Remove the temp files that writes of `dir/NAME` (for each of `names`) left behind when their
/// process was killed; returns the paths removed. Only for a caller that is the one writer of
/// those files (it holds the directory's lock): a temp file of a live writer would go too.
pub fn remove_stale_temps(dir: &Path, names: &[&str]) -> Result<Vec<PathBuf>, CacheError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CacheError::io("listing", dir, e)),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CacheError::io("listing", dir, e))?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        if names.iter().any(|n| is_temp_of(file_name, n)) {
            let p = entry.path();
            match std::fs::remove_file(&p) {
                Ok(()) => removed.push(p),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(CacheError::io("removing stale temporary file", p, e)),
            }
        }
    }
    removed.sort();
    Ok(removed)
}

/// Write `path` atomically with the content `write` produces.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<(), WriteError>,
) -> Result<(), CacheError> {
    stage(path, write)?.commit()?;
    sync_dir(parent_of(path))
}

/// Make sure files can be written into `dir` (created if missing): a probe file is written,
/// fsynced and removed, so that a command fails before its long work, naming the directory,
/// rather than after it.
pub fn check_writable(dir: &Path) -> Result<(), CacheError> {
    std::fs::create_dir_all(dir).map_err(|e| CacheError::io("creating", dir, e))?;
    let probe = dir.join(PROBE_FILE);
    stage(&probe, |w| Ok(w.write_all(b"tlearn write probe\n")?)).map_err(|e| match e {
        CacheError::Io { err, .. } => CacheError::Io {
            action: "cannot write a file into",
            path: dir.to_path_buf(),
            err,
        },
        other => other,
    })?;
    Ok(())
}

/// Write `path` atomically with `bytes`.
pub fn write_atomic_bytes(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    write_atomic(path, |w| Ok(w.write_all(bytes)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised_exactly() {
        assert!(is_temp_of(".features.npy.a1B2c3.tmp", "features.npy"));
        assert!(is_temp_of("features.npy.tmp", "features.npy"));
        assert!(!is_temp_of(".features.npy.a1B2c.tmp", "features.npy"));
        assert!(!is_temp_of(".index.csv.a1B2c3.tmp", "features.npy"));
        assert!(!is_temp_of("features.npy", "features.npy"));
        assert!(!is_temp_of(".features.npy.a1B2c3.tmp.x", "features.npy"));
    }

    #[test]
    fn a_killed_writers_temp_file_is_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        // What a writer killed before its rename leaves: a real staged temp file.
        let staged = stage(&dir.path().join("meta.json"), |w| Ok(w.write_all(b"{}")?)).unwrap();
        let (_, kept_path) = staged.tmp.keep().unwrap();
        std::fs::write(dir.path().join("meta.json"), b"{}").unwrap();
        std::fs::write(dir.path().join(".head.json.abcdef.tmp"), b"x").unwrap();
        let removed = remove_stale_temps(dir.path(), &["meta.json", "features.npy"]).unwrap();
        assert_eq!(removed, vec![kept_path.clone()]);
        assert!(!kept_path.exists());
        assert!(dir.path().join("meta.json").exists());
        assert!(dir.path().join(".head.json.abcdef.tmp").exists());
    }
}
