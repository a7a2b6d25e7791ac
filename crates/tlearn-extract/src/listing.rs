//! Listing a data set folder `DIR/<class>/<image>`: the image files, sorted, and the entries
//! that are skipped (outside a class folder, unreadable, symlink loops) with a reason.

use std::collections::BTreeSet;
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

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_str().is_some_and(|s| s.starts_with('.'))
}

fn rel_path(root: &Path, p: &Path) -> Option<String> {
    let rel = p.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}

/// List `root/<class>/...` files (hidden files and folders skipped, symlinks followed; loops and
/// unreadable folders become skip reasons).
pub fn list_dataset(root: &Path) -> Result<Listing> {
    let meta =
        std::fs::metadata(root).with_context(|| format!("dataset folder {}", root.display()))?;
    if !meta.is_dir() {
        bail!("dataset {} is not a folder", root.display());
    }
    let mut out = Listing::default();
    let mut class_dirs = BTreeSet::new();
    let mut seen_classes = BTreeSet::new();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(true)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !is_hidden(e.file_name()));
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(err) => {
                let path = err
                    .path()
                    .and_then(|p| rel_path(root, p))
                    .unwrap_or_else(|| "?".into());
                let reason = if let Some(anc) = err.loop_ancestor() {
                    format!(
                        "symlink loop (points back to {})",
                        rel_path(root, anc).unwrap_or_else(|| anc.display().to_string())
                    )
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
        let Some(rel) = rel_path(root, entry.path()) else {
            out.skipped.push(SkipRow {
                path: entry.path().to_string_lossy().into_owned(),
                reason: "file name is not valid UTF-8".into(),
            });
            continue;
        };
        let is_dir = entry.file_type().is_dir();
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
            out.files.push((rel, entry.into_path()));
        }
    }
    out.empty_classes = class_dirs.difference(&seen_classes).cloned().collect();
    out.files.sort_by(|a, b| a.0.cmp(&b.0));
    out.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}
