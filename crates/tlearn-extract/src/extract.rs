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
use ndarray::{Array2, ArrayView2};
use sha2::{Digest, Sha256};
use tlearn_cache::journal::{self, JournalWriter};
use tlearn_cache::{CacheLock, IndexRow, Meta, SkipRow};

use crate::augment::Augment;
use crate::budget::{self, MemoryBudget};
use crate::encoder::{fingerprint, Encoder};
use crate::listing::list_dataset;
use crate::summary::{LargeRow, Summary};
use crate::views::{encode_bytes_catching, encode_bytes_views_catching, Encoded};

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

/// Extract features for `opts.dataset` into the cache `opts.out`.
pub fn extract(enc: &dyn Encoder, opts: &Options) -> Result<Summary> {
    let start = Instant::now();
    let root = std::fs::canonicalize(&opts.dataset)
        .with_context(|| format!("dataset folder {}", opts.dataset.display()))?;
    let fp = fingerprint(enc, opts.augment);
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
    let out_existed = opts.out.exists();
    // One writer per cache directory; a second run waits (the lock of a dead run is free).
    let lock = CacheLock::acquire(&opts.out, |holder| {
        eprintln!(
            "waiting: cache {} is being written by {holder}",
            opts.out.display()
        )
    })?;

    // The previous cache (a cut set joined): same extractor, or a refusal that says what differs.
    // What `out` holds was made by this very extractor (its fingerprint says so) but does not
    // read: nothing is lost by extracting it again, so it is repaired without --overwrite.
    let same_extractor = || {
        tlearn_cache::existing_fingerprint(&opts.out)
            .is_some_and(|f| f.compare(&fp, "cache", "this run").is_none())
    };
    let previous = match tlearn_cache::set::read_joined(&opts.out) {
        Ok(c) => c,
        Err(e) if opts.overwrite || same_extractor() => {
            eprintln!(
                "warning: ignoring unreadable cache {} (every image is extracted again): {e:#}",
                opts.out.display()
            );
            None
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "existing cache {} is unreadable (use --overwrite to rebuild it)",
                opts.out.display()
            )))
        }
    };
    let previous = match previous {
        Some(c) => match c.meta.extractor.compare(&fp, "cache", "this run") {
            None => Some(c),
            Some(diff) if opts.overwrite => {
                eprintln!("note: replacing cache made with another extractor ({diff})");
                None
            }
            Some(diff) => bail!(
                "cache {} was made with a different extractor and vectors cannot be mixed: {diff}. \
                 Use another --out, or --overwrite to replace it.",
                opts.out.display()
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
        Some(_) if keep_views => previous_view_rows(&opts.out, n_views),
        _ => None,
    };
    let reuse_rows: Option<ArrayView2<f32>> = if keep_views {
        previous_views.as_ref().map(|(v, _)| v.view())
    } else {
        previous.as_ref().map(|c| c.x.view())
    };
    // Rows to reuse by (path, sha256); rows that are not finite (codes or kept views), and rows
    // of an index.csv out of order or repeated whose vector is not proven theirs, are extracted
    // again (repair).
    if let Some(c) = previous.as_ref().filter(|c| !c.misplaced.is_empty()) {
        eprintln!(
            "warning: {}: {} of {} rows are out of path order or repeated, so their vectors \
             cannot be matched to their images; extracting them again",
            opts.out.join(tlearn_cache::INDEX_FILE).display(),
            c.misplaced.len(),
            c.rows()
        );
    }
    let old: HashMap<(&str, &str), usize> = previous
        .as_ref()
        .filter(|_| reuse_rows.is_some())
        .map(|c| {
            let bad: BTreeSet<usize> = c
                .non_finite
                .iter()
                .chain(&c.misplaced)
                .chain(previous_views.iter().flat_map(|(_, bad)| bad))
                .copied()
                .collect();
            c.paths
                .iter()
                .zip(&c.sha256)
                .enumerate()
                .filter(|(i, _)| !bad.contains(i))
                .map(|(i, (p, s))| ((p.as_str(), s.as_str()), i))
                .collect()
        })
        .unwrap_or_default();
    let journal_map = journal::read_journal(&opts.out, &fp)?;
    let journal_existed = opts.out.join(tlearn_cache::JOURNAL_FILE).exists();
    let mut journal = JournalWriter::open(&opts.out, &fp)?;

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

    let dim = enc.dim();
    let files = &listing.files;
    let n = files.len();
    let mut results: Vec<Option<Outcome>> = (0..n).map(|_| None).collect();
    let mut extracted = 0usize;
    let mut large = Vec::new();
    let work = |i: usize| {
        let (rel, abs) = &files[i];
        process_file(
            enc,
            (opts.augment, keep_views, unit, opts.max_file_size),
            rel,
            abs,
            reuse_rows,
            &old,
            &journal_map,
            &budget,
        )
    };
    // The writer: journal each new vector as soon as it is done, in completion order.
    crate::workers::pull_each(&pool, n, &work, &mut |i, outcome| {
        pb.inc(1);
        if let Outcome::New(sha, e) = &outcome {
            let rel = &files[i].0;
            journal.append(rel, sha, &e.vector)?;
            journal.flush()?;
            extracted += 1;
            if abort_at.is_some_and(|n| extracted >= n) {
                eprintln!("TLEARN_ABORT_AFTER: aborting after {extracted} images");
                std::process::abort();
            }
            if e.reserved >= budget::LARGE {
                large.push(LargeRow {
                    path: rel.clone(),
                    width: e.declared.0,
                    height: e.declared.1,
                    decoded_bytes: e.reserved,
                });
            }
        }
        results[i] = Some(outcome);
        Ok(())
    })?;
    pb.finish_and_clear();
    large.sort_by(|a, b| a.path.cmp(&b.path));

    // Rows in path order, as in the listing.
    let mut index = Vec::with_capacity(n);
    let mut features: Vec<f32> = Vec::with_capacity(n * unit);
    let mut skipped = listing.skipped.clone();
    let (mut reused, mut resumed) = (0usize, 0usize);
    let mut classes: BTreeMap<String, usize> = BTreeMap::new();
    for ((rel, _), outcome) in files.iter().zip(results) {
        let (sha, vector) = match outcome.expect("every listed file has an outcome") {
            Outcome::Skipped(reason) => {
                skipped.push(SkipRow {
                    path: rel.clone(),
                    reason,
                });
                continue;
            }
            Outcome::New(sha, e) => (sha, e.vector),
            Outcome::Reused(sha, v) => {
                reused += 1;
                (sha, v)
            }
            Outcome::Resumed(sha, v) => {
                resumed += 1;
                (sha, v)
            }
        };
        let label = rel.split('/').next().unwrap_or_default().to_owned();
        *classes.entry(label.clone()).or_default() += 1;
        features.extend_from_slice(&vector);
        index.push(IndexRow {
            path: rel.clone(),
            label,
            sha256: sha,
        });
    }

    let rows = index.len();
    if rows == 0 {
        let mut msg = format!(
            "no image of {} could be extracted ({} files, all skipped); no cache written",
            root.display(),
            listing.files.len()
        );
        for s in skipped.iter().take(5) {
            msg += &format!("\n  {}: {}", s.path, s.reason);
        }
        // Leave nothing this run made: its (empty) journal, and the cache folder it created.
        drop(journal);
        if !journal_existed {
            journal::remove_journal(&opts.out)?;
        }
        if !out_existed {
            lock.remove_with_dir();
        }
        bail!(msg);
    }
    let kept: BTreeSet<(&str, &str)> = index
        .iter()
        .map(|r| (r.path.as_str(), r.sha256.as_str()))
        .collect();
    let dropped = previous.as_ref().map_or(0, |c| {
        c.paths
            .iter()
            .zip(&c.sha256)
            .filter(|(p, s)| !kept.contains(&(p.as_str(), s.as_str())))
            .count()
    });
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    let (features, views) = if keep_views {
        let averaged: Vec<f32> = features
            .chunks_exact(unit)
            .flat_map(|row| {
                let views: Vec<Vec<f32>> = row.chunks_exact(dim).map(<[f32]>::to_vec).collect();
                crate::augment::average(&views)
            })
            .collect();
        (averaged, Some(features))
    } else {
        (features, None)
    };
    let mut meta = Meta::new(
        root.to_string_lossy(),
        dim,
        rows,
        classes.keys().cloned().collect(),
        fp,
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    );
    if keep_views {
        meta.views = crate::augment::view_names(opts.augment);
    }
    drop(journal);
    write_output(
        enc,
        &opts.out,
        &meta,
        &index,
        &features,
        views.as_deref(),
        &skipped,
    )?;
    journal::remove_journal(&opts.out)?;

    let seconds = start.elapsed().as_secs_f64();
    let summary = Summary {
        dataset: root.to_string_lossy().into_owned(),
        cache: opts.out.to_string_lossy().into_owned(),
        model: enc.name().to_owned(),
        augment: opts.augment.to_string(),
        threads,
        files: listing.files.len(),
        rows,
        dim,
        cuts: enc
            .cuts()
            .iter()
            .map(|c| format!("{}:{}", c.name, c.dim))
            .collect(),
        extracted,
        reused,
        resumed,
        dropped,
        skipped,
        decode_memory: budget.limit(),
        decode_memory_peak: budget.peak(),
        large,
        empty_classes: listing.empty_classes,
        cross_class_duplicates: crate::summary::cross_class_duplicates(&index),
        classes,
        seconds,
        images_per_s: extracted as f64 / seconds.max(1e-9),
    };
    tlearn_cache::write_atomic(&opts.out.join("summary.json"), |w| {
        serde_json::to_writer_pretty(&mut *w, &summary)?;
        Ok(())
    })?;
    Ok(summary)
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

/// One file: reused from `reuse` (rows of `unit` values, by `old`), resumed from the journal,
/// or encoded (`augment`'s views averaged, or all kept one after another).
#[allow(clippy::too_many_arguments)]
fn process_file(
    enc: &dyn Encoder,
    (augment, keep_views, unit, max_file_size): (Augment, bool, usize, u64),
    rel: &str,
    abs: &Path,
    reuse: Option<ArrayView2<f32>>,
    old: &HashMap<(&str, &str), usize>,
    journal: &HashMap<(String, String), Vec<f32>>,
    budget: &MemoryBudget,
) -> Outcome {
    let bytes = match crate::listing::read_image_file(abs, max_file_size) {
        Ok(b) => b,
        Err(e) => return Outcome::Skipped(e.to_string()),
    };
    let sha = hex::encode(Sha256::digest(&bytes));
    if let (Some(r), Some(&i)) = (reuse, old.get(&(rel, sha.as_str()))) {
        return Outcome::Reused(sha, r.row(i).to_vec());
    }
    if let Some(v) = journal.get(&(rel.to_owned(), sha.clone())) {
        if v.len() == unit {
            return Outcome::Resumed(sha, v.clone());
        }
    }
    let encoded = if keep_views {
        encode_bytes_views_catching(enc, &bytes, augment, budget)
    } else {
        encode_bytes_catching(enc, &bytes, augment, budget)
    };
    match encoded {
        Ok(v) => Outcome::New(sha, v),
        Err(e) => Outcome::Skipped(format!("{e:#}")),
    }
}
