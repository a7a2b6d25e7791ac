//! Atomic file writes, the one implementation in the workspace: the content goes to a temp
//! file with a unique name in the same directory (`.NAME.XXXXXX.tmp`, so two writers never
//! share one), is fsynced, renamed over `NAME`, and the directory is fsynced so the rename
//! survives a crash. A reader sees the old file or the new one, never a mix; a failed write
//! removes its temp file.
//!
//! The unique names and clean-up on drop come from `tempfile` (`NamedTempFile`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::CacheError;

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
    builder.prefix(&prefix).suffix(".tmp");
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

/// Write `path` atomically with the content `write` produces.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<(), WriteError>,
) -> Result<(), CacheError> {
    stage(path, write)?.commit()?;
    sync_dir(parent_of(path))
}

/// Write `path` atomically with `bytes`.
pub fn write_atomic_bytes(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    write_atomic(path, |w| Ok(w.write_all(bytes)?))
}
