//! What an extraction run did ([`Summary`], also written to `CACHE/summary.json`) and its
//! human-readable report.

use std::collections::BTreeMap;

use serde::Serialize;
use tlearn_cache::{IndexRow, SkipRow};

use crate::budget;

/// One file content (sha256) found under two or more classes: the same image with two labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CrossClassDuplicate {
    pub sha256: String,
    /// Every path with this content, sorted (at least two classes among them).
    pub paths: Vec<String>,
}

/// The contents of `index` that appear under more than one class, in path order. (Copies
/// within one class are harmless: `train` keeps identical files on one side of its split.)
pub fn cross_class_duplicates(index: &[IndexRow]) -> Vec<CrossClassDuplicate> {
    let mut by_hash: BTreeMap<&str, Vec<&IndexRow>> = BTreeMap::new();
    for r in index {
        by_hash.entry(r.sha256.as_str()).or_default().push(r);
    }
    let mut out: Vec<CrossClassDuplicate> = by_hash
        .into_iter()
        .filter(|(_, rows)| rows.iter().any(|r| r.label != rows[0].label))
        .map(|(sha, rows)| {
            let mut paths: Vec<String> = rows.iter().map(|r| r.path.clone()).collect();
            paths.sort();
            CrossClassDuplicate {
                sha256: sha.to_owned(),
                paths,
            }
        })
        .collect();
    out.sort_by(|a, b| a.paths.cmp(&b.paths));
    out
}

/// An image whose decoding reserved at least [`budget::LARGE`] bytes of the memory budget.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LargeRow {
    pub path: String,
    /// The stored size its header declares.
    pub width: u32,
    pub height: u32,
    /// Bytes reserved while it was decoded.
    pub decoded_bytes: u64,
}

/// What a run did; also written to `CACHE/summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub dataset: String,
    pub cache: String,
    pub model: String,
    pub augment: String,
    pub threads: usize,
    /// Files found under class folders.
    pub files: usize,
    /// Rows in the cache.
    pub rows: usize,
    /// Values per image (all cuts together).
    pub dim: usize,
    /// The cuts written, `name:dim` (one for a plain cache; several for a cut set, each in
    /// `CACHE/<cut>/`).
    pub cuts: Vec<String>,
    /// Newly encoded this run.
    pub extracted: usize,
    /// Reused from the previous cache (unchanged path + sha256).
    pub reused: usize,
    /// Reused from the journal of an interrupted run.
    pub resumed: usize,
    /// Rows of the previous cache whose file is gone or changed.
    pub dropped: usize,
    pub skipped: Vec<SkipRow>,
    /// The memory budget for decoded pixels in flight, in bytes, and the most reserved at once.
    pub decode_memory: u64,
    pub decode_memory_peak: u64,
    /// Newly decoded images that needed a large share of memory, by path.
    pub large: Vec<LargeRow>,
    pub empty_classes: Vec<String>,
    /// The same file content under two or more classes (conflicting labels).
    pub cross_class_duplicates: Vec<CrossClassDuplicate>,
    pub classes: BTreeMap<String, usize>,
    pub seconds: f64,
    /// Newly encoded images per second of wall time (whole run).
    pub images_per_s: f64,
}

impl Summary {
    /// Human-readable end-of-run report.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{} rows × {} dims in {} ({} new, {} unchanged, {} resumed, {} dropped) — {:.1} s, {:.1} new images/s on {} threads\n",
            self.rows,
            self.dim,
            self.cache,
            self.extracted,
            self.reused,
            self.resumed,
            self.dropped,
            self.seconds,
            self.images_per_s,
            self.threads
        );
        if !self.classes.is_empty() {
            s += &format!(
                "classes: {}\n",
                self.classes
                    .iter()
                    .map(|(k, v)| format!("{k} ({v})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if self.cuts.len() > 1 {
            s += &format!(
                "cut set of {} caches (one per cut, each in {}/<cut>/): {}\n",
                self.cuts.len(),
                self.cache,
                self.cuts.join(", ")
            );
        }
        for c in &self.empty_classes {
            s += &format!("warning: class folder '{c}' has no images\n");
        }
        if !self.large.is_empty() {
            s += &format!(
                "large images: {} declare at least {} of decoded pixels (decoded within the {} \
                 budget, at most {} reserved at once; see --decode-memory):\n",
                self.large.len(),
                budget::human(budget::LARGE),
                budget::human(self.decode_memory),
                budget::human(self.decode_memory_peak)
            );
            for r in self.large.iter().take(20) {
                s += &format!(
                    "  {}: {}×{} ({})\n",
                    r.path,
                    r.width,
                    r.height,
                    budget::human(r.decoded_bytes)
                );
            }
            if self.large.len() > 20 {
                s += &format!(
                    "  ... and {} more (see summary.json)\n",
                    self.large.len() - 20
                );
            }
        }
        for d in &self.cross_class_duplicates {
            s += &format!(
                "warning: the same file (sha256 {}) is in more than one class: {}; `train` keeps \
                 identical files on one side of its split, so one of these labels is wrong there \
                 too: keep the file in one class\n",
                &d.sha256[..d.sha256.len().min(12)],
                d.paths.join(", ")
            );
        }
        if !self.skipped.is_empty() {
            s += &format!("skipped {} files:\n", self.skipped.len());
            for r in self.skipped.iter().take(20) {
                s += &format!("  {}: {}\n", r.path, r.reason);
            }
            if self.skipped.len() > 20 {
                s += &format!(
                    "  ... and {} more (see skipped.csv)\n",
                    self.skipped.len() - 20
                );
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(path: &str, sha: &str) -> IndexRow {
        IndexRow {
            path: path.into(),
            label: path.split('/').next().unwrap().into(),
            sha256: sha.into(),
        }
    }

    #[test]
    fn only_contents_under_two_classes_are_reported() {
        let index = [
            row("cat/a.jpg", "aa"),
            row("cat/b.jpg", "bb"),
            row("cat/b2.jpg", "bb"),
            row("dog/x.jpg", "aa"),
            row("dog/y.jpg", "cc"),
        ];
        assert_eq!(
            cross_class_duplicates(&index),
            [CrossClassDuplicate {
                sha256: "aa".into(),
                paths: vec!["cat/a.jpg".into(), "dog/x.jpg".into()],
            }]
        );
    }
}
