//! What an extraction run did ([`Summary`], also written to `CACHE/summary.json`) and its
//! human-readable report.

use std::collections::BTreeMap;

use serde::Serialize;
use tlearn_cache::SkipRow;

use crate::budget;

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
        s += &format!(
            "classes: {}\n",
            self.classes
                .iter()
                .map(|(k, v)| format!("{k} ({v})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
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
