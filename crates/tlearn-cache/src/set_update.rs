//! Replacing a cut set as one step: the old set stays whole and readable until the new one is
//! complete, and an update cut short (killed, out of disk) is either not visible at all or
//! finished by whoever opens the set next.
//!
//! A set is several caches plus `cuts.json`, so no single rename replaces it. [`commit`] works
//! like a database's redo log: every file of every cut is first written in full under a
//! temporary name beside its final one (fsynced; a failure here removes them and leaves the old
//! set as it was), then the list of renames and removals that turns the old set into the new one
//! is written atomically to `DIR/.cuts-update.json` (the commit point), then applied, then the
//! list removed. Each step is safe to apply twice (a rename whose temporary file is gone was
//! done; a cut's old `meta.json` is retired only while its new one is still a temporary file),
//! so [`recover`] applies a list left by a killed run from the start: the set's next writer does
//! it when it takes the lock ([`crate::lock`]), a reader ([`finish_interrupted`]) before it
//! reads. While a list is being applied, a reader of one cut's directory sees that cut without
//! `meta.json` (being written), never one cut's new files under its old `meta.json`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic::{sync_dir, Staged};
use crate::error::CacheError;
use crate::write::StagedCache;
use crate::VIEWS_FILE;

/// The list of steps of an update in progress, in the set directory.
pub const UPDATE_FILE: &str = ".cuts-update.json";
/// Its `format` field.
const UPDATE_FORMAT: &str = "tlearn-cut-set-update";

/// Test hook: `TLEARN_ABORT_SET_WRITE=N` aborts the process right after the N-th step of a
/// set's write (each cut staged, then the step list written, then each step applied), as a kill
/// at that point would.
const ABORT_ENV: &str = "TLEARN_ABORT_SET_WRITE";

/// One step of an update; paths are relative to the set directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
enum Step {
    /// Rename `from` onto `to`, if `from` is still there.
    Rename { from: String, to: String },
    /// Remove the file `path` if present; with `while_present`, only while that file is still
    /// there (a cut's old `meta.json`, retired until its new one is renamed in).
    Remove {
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        while_present: Option<String>,
    },
    /// Remove the cache in the directory `dir` (a cut the new set does not have).
    RetireDir { dir: String },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Update {
    format: String,
    steps: Vec<Step>,
}

/// Counts the steps of one write for [`ABORT_ENV`].
struct AbortHook {
    at: Option<usize>,
    done: usize,
}

impl AbortHook {
    fn from_env() -> AbortHook {
        AbortHook {
            at: std::env::var(ABORT_ENV).ok().and_then(|v| v.parse().ok()),
            done: 0,
        }
    }

    fn step(&mut self) {
        self.done += 1;
        if self.at == Some(self.done) {
            eprintln!("{ABORT_ENV}: aborting after step {}", self.done);
            std::process::abort();
        }
    }
}

fn relative(dir: &Path, path: &Path) -> Result<String, CacheError> {
    path.strip_prefix(dir)
        .ok()
        .and_then(|p| p.to_str())
        .map(str::to_owned)
        .ok_or_else(|| {
            CacheError::invalid(path, format!("is not a file of the set {}", dir.display()))
        })
}

/// Replace what `dir` holds by the set whose cuts `stage` writes (one call per cut, in order,
/// staging it in `dir/<cut dir>`) and whose manifest is `set_json`; `retire` names the cut
/// directories of the old set that the new one has not. Nothing a reader sees changes until
/// every file is written; see the module doc.
pub(crate) fn commit(
    dir: &Path,
    cut_dirs: &[String],
    mut stage: impl FnMut(usize) -> Result<StagedCache, CacheError>,
    set_json: &[u8],
    retire: &[String],
) -> Result<(), CacheError> {
    let mut hook = AbortHook::from_env();
    let mut staged = Vec::with_capacity(cut_dirs.len());
    for i in 0..cut_dirs.len() {
        staged.push(stage(i)?);
        hook.step();
    }
    let manifest = crate::atomic::stage(&dir.join(crate::set::SET_FILE), |w| {
        Ok(w.write_all(set_json)?)
    })?;
    // Every file is written: from here the temporary files are kept, and removed again if the
    // step list cannot be written.
    let mut kept: Vec<PathBuf> = Vec::new();
    let steps = keep_all(dir, staged, manifest, retire, &mut kept);
    let written = steps.and_then(|steps| {
        for d in cut_dirs {
            sync_dir(&dir.join(d))?;
        }
        sync_dir(dir)?;
        let update = Update {
            format: UPDATE_FORMAT.into(),
            steps,
        };
        let json = serde_json::to_vec_pretty(&update)
            .map_err(|e| CacheError::invalid(dir.join(UPDATE_FILE), e.to_string()))?;
        crate::write_atomic_bytes(&dir.join(UPDATE_FILE), &json)?;
        Ok(update)
    });
    let update = match written {
        Ok(u) => u,
        Err(e) => {
            for k in &kept {
                let _ = std::fs::remove_file(k);
            }
            return Err(e);
        }
    };
    hook.step();
    apply(dir, &update.steps, &mut hook)
}

/// The steps that put the staged files in place, their temporary files kept (listed in `kept`).
fn keep_all(
    dir: &Path,
    staged: Vec<StagedCache>,
    manifest: Staged,
    retire: &[String],
    kept: &mut Vec<PathBuf>,
) -> Result<Vec<Step>, CacheError> {
    let mut keep = |s: Staged| -> Result<(String, String), CacheError> {
        let (tmp, path) = s.keep()?;
        kept.push(tmp.clone());
        let to = relative(dir, &path)?;
        // The temp file is beside `path` (its own path may have been made absolute).
        let from = match (
            Path::new(&to).parent(),
            tmp.file_name().and_then(|n| n.to_str()),
        ) {
            (Some(p), Some(name)) => p.join(name).to_string_lossy().into_owned(),
            _ => return Err(CacheError::invalid(&tmp, "a temporary file without a name")),
        };
        Ok((from, to))
    };
    let mut steps = Vec::new();
    for cut in staged {
        let cut_dir = cut.dir.clone();
        let (meta_tmp, meta_path) = keep(cut.meta)?;
        steps.push(Step::Remove {
            path: meta_path.clone(),
            while_present: Some(meta_tmp.clone()),
        });
        for f in cut.data {
            let (from, to) = keep(f)?;
            steps.push(Step::Rename { from, to });
        }
        if cut.drop_views {
            steps.push(Step::Remove {
                path: relative(dir, &cut_dir.join(VIEWS_FILE))?,
                while_present: None,
            });
        }
        steps.push(Step::Rename {
            from: meta_tmp,
            to: meta_path,
        });
    }
    // A plain cache in `dir` being replaced: `meta.json` first, so it never reads as a cache
    // beside the set (a reader prefers it).
    for f in crate::DATA_FILES {
        steps.push(Step::Remove {
            path: f.into(),
            while_present: None,
        });
    }
    let (from, to) = keep(manifest)?;
    steps.push(Step::Rename { from, to });
    steps.extend(retire.iter().map(|d| Step::RetireDir { dir: d.clone() }));
    Ok(steps)
}

fn apply(dir: &Path, steps: &[Step], hook: &mut AbortHook) -> Result<(), CacheError> {
    let mut dirs: Vec<PathBuf> = vec![dir.to_path_buf()];
    for step in steps {
        match step {
            Step::Rename { from, to } => {
                let (from, to) = (dir.join(from), dir.join(to));
                match std::fs::rename(&from, &to) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && !from.exists() => {}
                    Err(e) => return Err(CacheError::io("renaming a temporary file onto", to, e)),
                }
                if let Some(p) = to.parent().filter(|p| !dirs.iter().any(|d| d == p)) {
                    dirs.push(p.to_path_buf());
                }
            }
            Step::Remove {
                path,
                while_present,
            } => {
                if while_present
                    .as_ref()
                    .is_none_or(|p| dir.join(p).symlink_metadata().is_ok())
                {
                    remove_if_present(&dir.join(path))?;
                }
            }
            Step::RetireDir { dir: d } => crate::set::retire_cache_dir(&dir.join(d))?,
        }
        hook.step();
    }
    for d in &dirs {
        sync_dir(d)?;
    }
    remove_if_present(&dir.join(UPDATE_FILE))?;
    sync_dir(dir)
}

fn remove_if_present(path: &Path) -> Result<(), CacheError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CacheError::io("removing", path, e)),
    }
}

/// Finish an update of the set in `dir` that was cut short after its new caches were complete
/// (its step list is still there); `Ok(false)` when there is none. Only for the holder of the
/// set's lock.
pub(crate) fn recover(dir: &Path) -> Result<bool, CacheError> {
    let path = dir.join(UPDATE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(CacheError::io("reading", path, e)),
    };
    let update: Update = crate::json::from_slice(&bytes).map_err(|e| {
        CacheError::invalid(&path, format!("not the step list of a cut-set update: {e}"))
    })?;
    if update.format != UPDATE_FORMAT {
        return Err(CacheError::invalid(
            &path,
            format!("format is '{}', expected '{UPDATE_FORMAT}'", update.format),
        ));
    }
    for step in &update.steps {
        let paths: Vec<&String> = match step {
            Step::Rename { from, to } => vec![from, to],
            Step::Remove {
                path,
                while_present,
            } => std::iter::once(path).chain(while_present).collect(),
            Step::RetireDir { dir } => vec![dir],
        };
        // Only files of the set: no absolute paths, no `..`.
        if let Some(bad) = paths.iter().find(|p| {
            Path::new(p.as_str())
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        }) {
            return Err(CacheError::invalid(
                &path,
                format!("names {bad:?}, which is not a file of the set"),
            ));
        }
    }
    apply(dir, &update.steps, &mut AbortHook { at: None, done: 0 })?;
    Ok(true)
}

/// Before reading the set in `dir`: finish an update a killed run left (taking the set's lock
/// for it), or say that one is in progress. Nothing to do (and no lock taken) when there is no
/// step list.
pub(crate) fn finish_interrupted(dir: &Path) -> Result<(), CacheError> {
    if dir.join(UPDATE_FILE).symlink_metadata().is_err() {
        return Ok(());
    }
    match crate::lock::CacheLock::try_acquire(dir) {
        // Taking the lock finished the update.
        Ok(lock) => {
            drop(lock);
            Ok(())
        }
        Err(CacheError::Locked { holder, .. }) => Err(CacheError::BeingWritten {
            dir: dir.to_path_buf(),
            by: format!(" by {holder}"),
        }),
        Err(e) => Err(CacheError::invalid(
            dir.join(UPDATE_FILE),
            format!(
                "an update of this cut set was cut short after its new caches were written, and \
                 finishing it failed: {e}; run `tlearn extract` on it again"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_round_trip_as_json() {
        let steps = vec![
            Step::Remove {
                path: "a/meta.json".into(),
                while_present: Some("a/.meta.json.abcdef.tmp".into()),
            },
            Step::Rename {
                from: "a/.meta.json.abcdef.tmp".into(),
                to: "a/meta.json".into(),
            },
            Step::RetireDir { dir: "old".into() },
        ];
        let json = serde_json::to_string(&Update {
            format: UPDATE_FORMAT.into(),
            steps: steps.clone(),
        })
        .unwrap();
        let back: Update = serde_json::from_str(&json).unwrap();
        assert_eq!(back.steps, steps);
    }

    #[test]
    fn a_step_list_naming_files_outside_the_set_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"keep me").unwrap();
        let set = dir.path().join("set");
        std::fs::create_dir_all(&set).unwrap();
        std::fs::write(
            set.join(UPDATE_FILE),
            br#"{"format": "tlearn-cut-set-update", "steps": [{"op": "remove", "path": "../outside"}]}"#,
        )
        .unwrap();
        let e = recover(&set).unwrap_err().to_string();
        assert!(e.contains("not a file of the set"), "{e}");
        assert!(outside.exists());
    }
}
