//! The exclusive lock of a cache directory: one writer (`tlearn extract`) at a time. The lock is
//! an OS advisory lock (`flock`, through `std::fs::File::lock`) on `DIR/.lock`, which also
//! records who holds it (pid, start time) for the messages. The OS drops the lock when its
//! process dies, so the lock of a killed run is simply taken over by the next one. Whoever takes
//! the lock is the only writer of the cache's files, so temp files of those files that it finds
//! are a killed writer's leftovers and are removed then.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::CacheError;

/// File name of the lock inside a cache directory.
pub const LOCK_FILE: &str = ".lock";

/// The files of a cache (or of a cut set's cut) the lock holder writes (atomically, through
/// temp files).
pub const CACHE_FILES: [&str; 9] = [
    crate::FEATURES_FILE,
    crate::INDEX_FILE,
    crate::SKIPPED_FILE,
    crate::META_FILE,
    crate::SUMMARY_FILE,
    crate::VIEWS_FILE,
    crate::set::SET_FILE,
    crate::set_update::UPDATE_FILE,
    crate::atomic::PROBE_FILE,
];

/// A held lock; released on drop.
#[derive(Debug)]
pub struct CacheLock {
    file: File,
    path: PathBuf,
}

/// Open `path` (`.lock`) without following a link or blocking; it must be a regular file.
fn open_lock_file(path: &Path, create: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true);
    if create {
        o.write(true).create(true).truncate(false);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = match o.open(path) {
        Ok(f) => f,
        // O_NOFOLLOW on a link: ELOOP.
        Err(e)
            if path
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink()) =>
        {
            return Err(std::io::Error::new(
                e.kind(),
                "it is a symbolic link, not tlearn's lock file (remove it)",
            ))
        }
        Err(e) => return Err(e),
    };
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other(
            "it is not a regular file, so not tlearn's lock file (remove it)",
        ));
    }
    Ok(file)
}

fn open(dir: &Path) -> Result<(File, PathBuf), CacheError> {
    std::fs::create_dir_all(dir).map_err(|e| CacheError::io("creating", dir, e))?;
    let path = dir.join(LOCK_FILE);
    let file = open_lock_file(&path, true).map_err(|e| CacheError::io("opening", &path, e))?;
    Ok((file, path))
}

fn recorded_holder(file: &mut File) -> String {
    let mut s = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_string(&mut s);
    let s = s.trim();
    if s.is_empty() {
        "another process".into()
    } else {
        s.to_owned()
    }
}

impl CacheLock {
    /// Take the lock of `dir` (created if missing) without waiting; if another process holds
    /// it, [`CacheError::Locked`] names the holder.
    pub fn try_acquire(dir: &Path) -> Result<CacheLock, CacheError> {
        CacheLock::try_acquire_for(dir, &CACHE_FILES)
    }

    /// [`CacheLock::try_acquire`] for a directory whose holder writes `files` (stale temp files
    /// of those are removed once the lock is taken).
    pub fn try_acquire_for(dir: &Path, files: &[&str]) -> Result<CacheLock, CacheError> {
        let (mut file, path) = open(dir)?;
        match file.try_lock() {
            Ok(()) => CacheLock::record(file, path, files),
            Err(TryLockError::WouldBlock) => Err(CacheError::Locked {
                dir: dir.to_path_buf(),
                holder: recorded_holder(&mut file),
            }),
            Err(TryLockError::Error(e)) => Err(CacheError::io("locking", path, e)),
        }
    }

    /// Take the lock of `dir`, waiting for the holder to finish; `on_wait` is told who holds it
    /// before waiting starts.
    pub fn acquire(dir: &Path, on_wait: impl FnOnce(&str)) -> Result<CacheLock, CacheError> {
        CacheLock::acquire_for(dir, &CACHE_FILES, on_wait)
    }

    /// [`CacheLock::acquire`] for a directory whose holder writes `files` (a `train` output
    /// directory: `head.json`, `cv.json`, ...).
    pub fn acquire_for(
        dir: &Path,
        files: &[&str],
        on_wait: impl FnOnce(&str),
    ) -> Result<CacheLock, CacheError> {
        match CacheLock::try_acquire_for(dir, files) {
            Err(CacheError::Locked { holder, .. }) => {
                on_wait(&holder);
                let (file, path) = open(dir)?;
                file.lock()
                    .map_err(|e| CacheError::io("locking", &path, e))?;
                CacheLock::record(file, path, files)
            }
            other => other,
        }
    }

    /// Who holds the lock of `dir` now, if anyone.
    pub fn holder(dir: &Path) -> Option<String> {
        let mut file = open_lock_file(&dir.join(LOCK_FILE), false).ok()?;
        match file.try_lock_shared() {
            Ok(()) => None,
            Err(TryLockError::WouldBlock) => Some(recorded_holder(&mut file)),
            Err(TryLockError::Error(_)) => None,
        }
    }

    fn record(mut file: File, path: PathBuf, files: &[&str]) -> Result<CacheLock, CacheError> {
        if let Some(dir) = path.parent() {
            // An interrupted update of a cut set first: its temp files are the new set.
            if files.contains(&crate::set_update::UPDATE_FILE) {
                crate::set_update::recover(dir)?;
            }
            crate::atomic::remove_stale_temps(dir, files)?;
            if files.contains(&crate::set::SET_FILE) {
                for cut in crate::set::cut_dirs_written(dir) {
                    crate::atomic::remove_stale_temps(&dir.join(cut), &CACHE_FILES)?;
                }
            }
        }
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let who = format!(
            "tlearn pid {} (since unix time {since})\n",
            std::process::id()
        );
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(who.as_bytes()))
            .and_then(|_| file.flush())
            .map_err(|e| CacheError::io("writing", &path, e))?;
        Ok(CacheLock { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Give the lock up and remove the lock file and its directory, for a holder that created
    /// the directory and is leaving it empty (an input error before anything was written).
    /// A directory that holds anything else stays.
    pub fn remove_with_dir(self) {
        let _ = std::fs::remove_file(&self.path);
        let dir = self.path.parent().map(Path::to_path_buf);
        drop(self);
        if let Some(dir) = dir {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

impl Drop for CacheLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}
