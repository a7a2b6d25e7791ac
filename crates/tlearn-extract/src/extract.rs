//! Folder of images `DIR/<class>/<image>` → feature cache, in parallel and streaming.
//!
//! The folder is listed (paths only) and sorted. A pipeline without barriers then runs it:
//! every worker thread pulls the next file (in path order) as soon as it is free, reads and
//! hashes it, and either reuses its vector (unchanged since the last cache, or already in the
//! journal of a killed run) or decodes, preprocesses and encodes it; its result goes through a
//! bounded queue to one writer (this thread), which appends each new vector to the journal and
//! flushes it at once, in completion order. So decoding and inference of different images
//! overlap, no thread idles until the slowest image of a batch is done, and every finished
//! image is durable. Memory: the decoded pixels in flight are held within the run's
//! [`MemoryBudget`] (one image per worker at most), the queue holds at most two results per
//! worker, plus the vectors themselves. At the end the rows are put in path order, the cache is
//! written atomically ([`write_output`]) and the journal removed. Bad files are skipped with a
//! reason; nothing about one image stops the run.
//!
//! An encoder opened on several cuts gives one vector per image with the cuts side by side
//! ([`Encoder::cuts`]); the journal and the reuse work on that joined vector, and only the final
//! write splits it into a cut set (one cache per cut, [`tlearn_cache::set`]).
//!
//! With every augmentation view kept (`--keep-views`), an image's vector is its views' joined
//! vectors one after another (`views × dim` values): the journal and the reuse work on that, and
//! only the final write averages it into `features.npy` and keeps it as `views.npy`.
//!
//! The pieces live beside it: [`crate::encoder`] (what encodes), [`crate::listing`] (the
//! folder), [`crate::views`] (one file → one vector), [`crate::budget`] (the memory budget),
//! [`crate::summary`] (the report), [`crate::workers`] (the work loop, shared with
//! [`crate::extractor::Extractor`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ndarray::Array2;
use sha2::{Digest, Sha256};
use tlearn_cache::journal::{self, JournalWriter};
use tlearn_cache::{CacheLock, IndexRow, Meta, SkipRow};

use crate::augment::Augment;
use crate::budget::{self, MemoryBudget};
use crate::encoder::{fingerprint, Encoder};
use crate::listing::list_dataset;
use crate::summary::{LargeRow, Summary};
use crate::views::{encode_bytes_together, Encoded};

#[derive(Debug, Clone)]
pub struct Options {
    pub dataset: PathBuf,
    pub out: PathBuf,
    pub augment: Augment,
    /// Worker threads (default: all cores; at most [`crate::workers::worker_threads`] allows).
    pub threads: Option<usize>,
    /// Largest image file read, in bytes (default [`crate::listing::MAX_FILE_BYTES`]): larger
    /// files are skipped as too large without being read.
    pub max_file_size: u64,
    /// Bytes of decoded pixels in flight across all threads (default: see [`crate::budget`]).
    pub decode_memory: Option<u64>,
    /// Replace a cache made with another extractor instead of refusing.
    pub overwrite: bool,
    /// Show a progress bar (still hidden when stderr is not a terminal or `CI` is set).
    pub progress: bool,
    /// Also keep every augmentation view's codes (`views.npy`, for training rows); kept anyway
    /// when the cache being updated has them. Nothing to keep without augmentation.
    pub keep_views: bool,
}

impl Options {
    pub fn new(dataset: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Options {
        Options {
            dataset: dataset.into(),
            out: out.into(),
            augment: Augment::None,
            threads: None,
            max_file_size: crate::listing::MAX_FILE_BYTES,
            decode_memory: None,
            overwrite: false,
            progress: true,
            keep_views: false,
        }
    }
}

/// The result of one file.
enum Outcome {
    New(String, Encoded),
    Reused(String, Vec<f32>),
    Resumed(String, Vec<f32>),
    Skipped(String),
}

fn progress_bar(len: usize, enabled: bool) -> ProgressBar {
    let visible = enabled && std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
    let pb = ProgressBar::with_draw_target(
        Some(len as u64),
        if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} images  {per_sec}  ETA {eta}",
        )
        .expect("valid template"),
    );
    pb
}

/// `TLEARN_ABORT_AFTER=N`: test hook that aborts the process after N new vectors are journaled.
fn abort_after() -> Option<usize> {
    std::env::var("TLEARN_ABORT_AFTER").ok()?.parse().ok()
}

/// One cache of a pass: the encoder whose codes go there, and the cache folder.
#[derive(Clone, Copy)]
pub struct Part<'a> {
    pub encoder: &'a dyn Encoder,
    pub out: &'a Path,
}

/// Extract features for `opts.dataset` into the cache `opts.out`.
pub fn extract(enc: &dyn Encoder, opts: &Options) -> Result<Summary> {
    let part = Part {
        encoder: enc,
        out: &opts.out,
    };
    let mut summaries = extract_together(&[part], opts)?;
    Ok(summaries.remove(0))
}

/// Extract `opts.dataset` into one cache per part in one pass (`opts.out` is not read: each part
/// names its cache). Every file is listed, read and hashed once, and decoded and resized once
/// for the encoders that see the same views ([`crate::views::same_views`]); each cache ends as
/// `extract` alone would write it (same rows, the same vectors bit for bit), with its own reuse,
/// journal and resume. One summary per part, in order; `seconds` is the whole pass's.
pub fn extract_together(parts: &[Part], opts: &Options) -> Result<Vec<Summary>> {
    anyhow::ensure!(!parts.is_empty(), "no cache to extract into");
    let start = Instant::now();
    let root = std::fs::canonicalize(&opts.dataset)
        .with_context(|| format!("dataset folder {}", opts.dataset.display()))?;
    for (i, a) in parts.iter().enumerate() {
        if parts[..i].iter().any(|b| same_folder(a.out, b.out)) {
            bail!(
                "two extractions into one cache {}: give each backbone its own output folder",
                a.out.display()
            );
        }
    }
    // The input first: a folder without images is refused before anything is written.
    let listing = list_dataset(&root)?;
    if listing.files.is_empty() {
        bail!(
            "no image files under {} (expected DIR/<class>/<image>){}",
            root.display(),
            if listing.skipped.is_empty() {
                String::new()
            } else {
                format!("; {} entries skipped", listing.skipped.len())
            }
        );
    }
    // One writer per cache directory; a second run waits (the lock of a dead run is free). The
    // locks are taken in path order, so two passes over the same caches never wait on each other.
    let existed: Vec<bool> = parts.iter().map(|p| p.out.exists()).collect();
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by(|&a, &b| parts[a].out.cmp(parts[b].out));
    let mut locks: Vec<Option<CacheLock>> = parts.iter().map(|_| None).collect();
    for &k in &order {
        let out = parts[k].out;
        locks[k] = Some(CacheLock::acquire(out, |holder| {
            eprintln!(
                "waiting: cache {} is being written by {holder}",
                out.display()
            )
        })?);
    }
    let mut known = Vec::with_capacity(parts.len());
    let mut writers = Vec::with_capacity(parts.len());
    for ((part, lock), out_existed) in parts.iter().zip(locks).zip(existed) {
        let lock = lock.expect("every part is locked");
        let (k, w) = open_part(*part, opts, out_existed, lock)?;
        known.push(k);
        writers.push(w);
    }

    // No more threads than images (the CLI has already capped and noted an excessive count).
    let (threads, _) = crate::workers::worker_threads(
        opts.threads,
        listing.files.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let pool = crate::workers::pool(Some(threads))?;
    let budget = MemoryBudget::from_setting(opts.decode_memory);
    let pb = progress_bar(listing.files.len(), opts.progress);
    let abort_at = abort_after();

    let files = &listing.files;
    let n = files.len();
    let mut results: Vec<Vec<Option<Outcome>>> = parts
        .iter()
        .map(|_| (0..n).map(|_| None).collect())
        .collect();
    let mut new_files = 0usize;
    let work = |i: usize| {
        let (rel, abs) = &files[i];
        process_file(
            &known,
            (opts.augment, opts.max_file_size),
            rel,
            abs,
            &budget,
        )
    };
    // The writer: journal each new vector as soon as it is done, in completion order.
    crate::workers::pull_each(&pool, n, &work, &mut |i, outcomes: Vec<Outcome>| {
        pb.inc(1);
        let rel = &files[i].0;
        let mut any_new = false;
        for ((w, res), outcome) in writers.iter_mut().zip(&mut results).zip(outcomes) {
            if let Outcome::New(sha, e) = &outcome {
                w.journal.append(rel, sha, &e.vector)?;
                w.journal.flush()?;
                w.extracted += 1;
                any_new = true;
                if e.reserved >= budget::LARGE {
                    w.large.push(LargeRow {
                        path: rel.clone(),
                        width: e.declared.0,
                        height: e.declared.1,
                        decoded_bytes: e.reserved,
                    });
                }
            }
            res[i] = Some(outcome);
        }
        if any_new {
            new_files += 1;
            if abort_at.is_some_and(|n| new_files >= n) {
                eprintln!("TLEARN_ABORT_AFTER: aborting after {new_files} images");
                std::process::abort();
            }
        }
        Ok(())
    })?;
    pb.finish_and_clear();

    let rows: Vec<Rows> = results
        .into_iter()
        .map(|r| Rows::in_path_order(files, &listing.skipped, r))
        .collect();
    if let Some(empty) = rows.iter().find(|r| r.index.is_empty()) {
        let mut msg = format!(
            "no image of {} could be extracted ({} files, all skipped); no cache written",
            root.display(),
            listing.files.len()
        );
        for s in empty.skipped.iter().take(5) {
            msg += &format!("\n  {}: {}", s.path, s.reason);
        }
        // Leave nothing this run made: its (empty) journals, and the cache folders it created.
        for w in writers {
            w.abandon()?;
        }
        bail!(msg);
    }
    // Each cache is written, then its summary, under its lock (a waiting run would take the
    // summary's temporary file for a dead run's).
    let mut summaries = Vec::with_capacity(parts.len());
    let mut locks = Vec::with_capacity(parts.len());
    for (w, r) in writers.into_iter().zip(rows) {
        let (summary, lock) = w.finish(r, &root, opts, threads, &listing, &budget)?;
        summaries.push(summary);
        locks.push(lock);
    }
    let seconds = start.elapsed().as_secs_f64();
    for (s, part) in summaries.iter_mut().zip(parts) {
        s.seconds = seconds;
        s.images_per_s = s.extracted as f64 / seconds.max(1e-9);
        tlearn_cache::write_atomic(&part.out.join("summary.json"), |w| {
            serde_json::to_writer_pretty(&mut *w, &*s)?;
            Ok(())
        })?;
    }
    drop(locks);
    Ok(summaries)
}

/// Whether two output paths name one folder (as written, or once both exist).
fn same_folder(a: &Path, b: &Path) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

/// What the workers need of one part: its encoder and the vectors it already has (a previous
/// cache's rows, a killed run's journal).
struct Known<'a> {
    enc: &'a dyn Encoder,
    /// Every view's vector kept (`unit` = views × dim values per image).
    keep_views: bool,
    unit: usize,
    /// The previous cache's rows (of `unit` values) that can be reused, by (path, sha256).
    reuse: Option<Array2<f32>>,
    old: HashMap<(String, String), usize>,
    journal: HashMap<(String, String), Vec<f32>>,
}

impl Known<'_> {
    /// The vector of `rel` with content `sha`, when this part has it already.
    fn get(&self, rel: &str, sha: &str) -> Option<Outcome> {
        let key = (rel.to_owned(), sha.to_owned());
        if let (Some(r), Some(&i)) = (&self.reuse, self.old.get(&key)) {
            return Some(Outcome::Reused(sha.to_owned(), r.row(i).to_vec()));
        }
        match self.journal.get(&key) {
            Some(v) if v.len() == self.unit => Some(Outcome::Resumed(sha.to_owned(), v.clone())),
            _ => None,
        }
    }
}

/// What the writer holds of one part while the pass runs, and writes at its end.
struct Writing<'a> {
    enc: &'a dyn Encoder,
    out: &'a Path,
    out_existed: bool,
    lock: CacheLock,
    fp: tlearn_cache::Fingerprint,
    /// The previous cache (its vectors moved into [`Known::reuse`]): which rows it had.
    previous: Option<tlearn_cache::FeatureCache>,
    keep_views: bool,
    unit: usize,
    journal: JournalWriter,
    journal_existed: bool,
    extracted: usize,
    large: Vec<LargeRow>,
}

/// Lock-holding setup of one part: its previous cache (same extractor, or a refusal that says
/// what differs), the rows it can reuse, its journal.
fn open_part<'a>(
    part: Part<'a>,
    opts: &Options,
    out_existed: bool,
    lock: CacheLock,
) -> Result<(Known<'a>, Writing<'a>)> {
    let (enc, out) = (part.encoder, part.out);
    let fp = fingerprint(enc, opts.augment);
    // What `out` holds was made by this very extractor (its fingerprint says so) but does not
    // read: nothing is lost by extracting it again, so it is repaired without --overwrite.
    let same_extractor = || {
        tlearn_cache::existing_fingerprint(out)
            .is_some_and(|f| f.compare(&fp, "cache", "this run").is_none())
    };
    let previous = match tlearn_cache::set::read_joined(out) {
        Ok(c) => c,
        Err(e) if opts.overwrite || same_extractor() => {
            eprintln!(
                "warning: ignoring unreadable cache {} (every image is extracted again): {e:#}",
                out.display()
            );
            None
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "existing cache {} is unreadable (use --overwrite to rebuild it)",
                out.display()
            )))
        }
    };
    let mut previous = match previous {
        Some(c) => match c.meta.extractor.compare(&fp, "cache", "this run") {
            None => Some(c),
            Some(diff) if opts.overwrite => {
                eprintln!("note: replacing cache made with another extractor ({diff})");
                None
            }
            Some(diff) => bail!(
                "cache {} was made with a different extractor and vectors cannot be mixed: {diff}. \
                 Use another --out, or --overwrite to replace it.",
                out.display()
            ),
        },
        None => None,
    };
    // Every view kept: each image's vector is its views' vectors one after another (`unit`
    // values), averaged only when the cache is written.
    let keep_views = opts.augment != Augment::None
        && (opts.keep_views || previous.as_ref().is_some_and(|c| !c.meta.views.is_empty()));
    let n_views = if keep_views {
        crate::augment::views(opts.augment).len()
    } else {
        1
    };
    let unit = n_views * enc.dim();
    let previous_views = match &previous {
        Some(_) if keep_views => previous_view_rows(out, n_views),
        _ => None,
    };
    // Rows to reuse by (path, sha256); rows that are not finite (codes or kept views), and rows
    // of an index.csv out of order or repeated whose vector is not proven theirs, are extracted
    // again (repair).
    if let Some(c) = previous.as_ref().filter(|c| !c.misplaced.is_empty()) {
        eprintln!(
            "warning: {}: {} of {} rows are out of path order or repeated, so their vectors \
             cannot be matched to their images; extracting them again",
            out.join(tlearn_cache::INDEX_FILE).display(),
            c.misplaced.len(),
            c.rows()
        );
    }
    let (reuse, bad_views) = match (keep_views, previous_views, previous.as_mut()) {
        (true, Some((rows, bad)), _) => (Some(rows), bad),
        (false, _, Some(c)) => (Some(std::mem::take(&mut c.x)), Vec::new()),
        _ => (None, Vec::new()),
    };
    let old: HashMap<(String, String), usize> = previous
        .as_ref()
        .filter(|_| reuse.is_some())
        .map(|c| {
            let bad: BTreeSet<usize> = c
                .non_finite
                .iter()
                .chain(&c.misplaced)
                .chain(&bad_views)
                .copied()
                .collect();
            c.paths
                .iter()
                .zip(&c.sha256)
                .enumerate()
                .filter(|(i, _)| !bad.contains(i))
                .map(|(i, (p, s))| ((p.clone(), s.clone()), i))
                .collect()
        })
        .unwrap_or_default();
    let journal_map = journal::read_journal(out, &fp)?;
    let journal_existed = out.join(tlearn_cache::JOURNAL_FILE).exists();
    let journal = JournalWriter::open(out, &fp)?;
    Ok((
        Known {
            enc,
            keep_views,
            unit,
            reuse,
            old,
            journal: journal_map,
        },
        Writing {
            enc,
            out,
            out_existed,
            lock,
            fp,
            previous,
            keep_views,
            unit,
            journal,
            journal_existed,
            extracted: 0,
            large: Vec::new(),
        },
    ))
}

/// One part's rows in path order (as in the listing), and what happened to the other files.
struct Rows {
    index: Vec<IndexRow>,
    features: Vec<f32>,
    skipped: Vec<SkipRow>,
    reused: usize,
    resumed: usize,
    classes: BTreeMap<String, usize>,
}

impl Rows {
    fn in_path_order(
        files: &[(String, PathBuf)],
        listed_skips: &[SkipRow],
        outcomes: Vec<Option<Outcome>>,
    ) -> Rows {
        let mut r = Rows {
            index: Vec::with_capacity(files.len()),
            features: Vec::new(),
            skipped: listed_skips.to_vec(),
            reused: 0,
            resumed: 0,
            classes: BTreeMap::new(),
        };
        for ((rel, _), outcome) in files.iter().zip(outcomes) {
            let (sha, vector) = match outcome.expect("every listed file has an outcome") {
                Outcome::Skipped(reason) => {
                    r.skipped.push(SkipRow {
                        path: rel.clone(),
                        reason,
                    });
                    continue;
                }
                Outcome::New(sha, e) => (sha, e.vector),
                Outcome::Reused(sha, v) => {
                    r.reused += 1;
                    (sha, v)
                }
                Outcome::Resumed(sha, v) => {
                    r.resumed += 1;
                    (sha, v)
                }
            };
            let label = rel.split('/').next().unwrap_or_default().to_owned();
            *r.classes.entry(label.clone()).or_default() += 1;
            r.features.extend_from_slice(&vector);
            r.index.push(IndexRow {
                path: rel.clone(),
                label,
                sha256: sha,
            });
        }
        r.skipped.sort_by(|a, b| a.path.cmp(&b.path));
        r
    }
}

impl Writing<'_> {
    /// Leave nothing this run made: its journal (when it made it) and its cache folder (when
    /// it created it).
    fn abandon(self) -> Result<()> {
        drop(self.journal);
        if !self.journal_existed {
            journal::remove_journal(self.out)?;
        }
        if !self.out_existed {
            self.lock.remove_with_dir();
        }
        Ok(())
    }

    /// Write the cache (atomically) and remove the journal; the summary's time is the caller's,
    /// and so is the lock, until it has written the summary.
    fn finish(
        mut self,
        rows: Rows,
        root: &Path,
        opts: &Options,
        threads: usize,
        listing: &crate::listing::Listing,
        budget: &MemoryBudget,
    ) -> Result<(Summary, CacheLock)> {
        let dim = self.enc.dim();
        let n = rows.index.len();
        let kept: BTreeSet<(&str, &str)> = rows
            .index
            .iter()
            .map(|r| (r.path.as_str(), r.sha256.as_str()))
            .collect();
        let dropped = self.previous.as_ref().map_or(0, |c| {
            c.paths
                .iter()
                .zip(&c.sha256)
                .filter(|(p, s)| !kept.contains(&(p.as_str(), s.as_str())))
                .count()
        });
        let (features, views) = if self.keep_views {
            let averaged: Vec<f32> = rows
                .features
                .chunks_exact(self.unit)
                .flat_map(|row| {
                    let views: Vec<Vec<f32>> = row.chunks_exact(dim).map(<[f32]>::to_vec).collect();
                    crate::augment::average(&views)
                })
                .collect();
            (averaged, Some(rows.features))
        } else {
            (rows.features, None)
        };
        let mut meta = Meta::new(
            root.to_string_lossy(),
            dim,
            n,
            rows.classes.keys().cloned().collect(),
            self.fp.clone(),
            humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        );
        if self.keep_views {
            meta.views = crate::augment::view_names(opts.augment);
        }
        drop(self.journal);
        write_output(
            self.enc,
            self.out,
            &meta,
            &rows.index,
            &features,
            views.as_deref(),
            &rows.skipped,
        )?;
        journal::remove_journal(self.out)?;
        self.large.sort_by(|a, b| a.path.cmp(&b.path));
        let summary = Summary {
            dataset: root.to_string_lossy().into_owned(),
            cache: self.out.to_string_lossy().into_owned(),
            model: self.enc.name().to_owned(),
            augment: opts.augment.to_string(),
            threads,
            files: listing.files.len(),
            rows: n,
            dim,
            cuts: self
                .enc
                .cuts()
                .iter()
                .map(|c| format!("{}:{}", c.name, c.dim))
                .collect(),
            extracted: self.extracted,
            reused: rows.reused,
            resumed: rows.resumed,
            dropped,
            skipped: rows.skipped,
            decode_memory: budget.limit(),
            decode_memory_peak: budget.peak(),
            large: self.large,
            empty_classes: listing.empty_classes.clone(),
            cross_class_duplicates: crate::summary::cross_class_duplicates(&rows.index),
            classes: rows.classes,
            seconds: 0.0,
            images_per_s: 0.0,
        };
        Ok((summary, self.lock))
    }
}

/// The previous cache's kept views as rows of `n_views` joined vectors one after another, and
/// the rows among them that are not finite; `None` (every image is extracted again) when it
/// keeps none, another number, or they do not read.
fn previous_view_rows(out: &Path, n_views: usize) -> Option<(Array2<f32>, Vec<usize>)> {
    match tlearn_cache::set::read_joined_views(out) {
        Ok(Some(v)) if v.codes.dim().1 == n_views => {
            let (n, k, d) = v.codes.dim();
            let rows = v.codes.into_shape_with_order((n, k * d)).ok()?;
            Some((rows, v.non_finite))
        }
        Ok(_) => None,
        Err(e) => {
            eprintln!("warning: {e}; extracting every image again");
            None
        }
    }
}

/// Write the rows (one joined vector per image, [`Encoder::cuts`] side by side; `views`: every
/// view's, when kept): a plain cache for one cut, else a cut set with one cache per cut
/// ([`tlearn_cache::set`]).
fn write_output(
    enc: &dyn Encoder,
    out: &Path,
    meta: &Meta,
    index: &[IndexRow],
    features: &[f32],
    views: Option<&[f32]>,
    skipped: &[SkipRow],
) -> Result<()> {
    let cuts = enc.cuts();
    if cuts.len() == 1 {
        // The plain cache first (a reader prefers it to a set), then the set it replaces: a run
        // killed in between leaves one complete cache or the other.
        tlearn_cache::write_with_views(out, meta, index, features, views, skipped)?;
        tlearn_cache::set::retire_set(out)?;
        return Ok(());
    }
    let entries = cuts
        .iter()
        .map(|c| tlearn_cache::CutEntry {
            name: c.name.clone(),
            dir: tlearn_cache::set::cut_dir_name(&c.name),
            dim: c.dim,
        })
        .collect();
    let set = tlearn_cache::CutSet::new(enc.name(), meta.dataset.clone(), entries);
    tlearn_cache::set::write_split(out, &set, meta, index, features, views, skipped)?;
    Ok(())
}

/// One file for every part: read and hashed once; for each part reused from its previous cache,
/// resumed from its journal, or encoded (the parts that need it together, see
/// [`encode_bytes_together`]). One outcome per part, in order.
fn process_file(
    parts: &[Known],
    (augment, max_file_size): (Augment, u64),
    rel: &str,
    abs: &Path,
    budget: &MemoryBudget,
) -> Vec<Outcome> {
    let bytes = match crate::listing::read_image_file(abs, max_file_size) {
        Ok(b) => b,
        Err(e) => {
            let reason = e.to_string();
            return parts
                .iter()
                .map(|_| Outcome::Skipped(reason.clone()))
                .collect();
        }
    };
    let sha = hex::encode(Sha256::digest(&bytes));
    let mut out: Vec<Option<Outcome>> = parts.iter().map(|p| p.get(rel, &sha)).collect();
    let todo: Vec<usize> = (0..parts.len()).filter(|&k| out[k].is_none()).collect();
    if !todo.is_empty() {
        let encs: Vec<(&dyn Encoder, bool)> = todo
            .iter()
            .map(|&k| (parts[k].enc, parts[k].keep_views))
            .collect();
        let encoded = encode_bytes_together(&encs, &bytes, augment, budget);
        for (k, e) in todo.into_iter().zip(encoded) {
            out[k] = Some(match e {
                Ok(v) => Outcome::New(sha.clone(), v),
                Err(e) => Outcome::Skipped(format!("{e:#}")),
            });
        }
    }
    out.into_iter()
        .map(|o| o.expect("every part has an outcome"))
        .collect()
}
