//! Folder of images `DIR/<class>/<image>` → feature cache, in parallel and streaming.
//!
//! The folder is listed (paths only), sorted, and processed in bounded chunks: each rayon
//! worker reads one file, hashes it, and either reuses its vector (unchanged since the last
//! cache, or already in the journal of a killed run) or decodes, preprocesses and encodes it.
//! New vectors are appended to the journal after every chunk, so memory holds at most one chunk
//! of decoded images plus the vectors. At the end the cache is written atomically and the
//! journal removed. Bad files are skipped with a reason; nothing about one image stops the run.
//!
//! The pieces live beside it: [`crate::encoder`] (what encodes), [`crate::listing`] (the
//! folder), [`crate::views`] (one file → one vector), [`crate::summary`] (the report).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use tlearn_cache::journal::{self, JournalWriter};
use tlearn_cache::{CacheLock, FeatureCache, IndexRow, Meta, SkipRow};

use crate::augment::Augment;
use crate::encoder::{fingerprint, Encoder};
use crate::listing::list_dataset;
use crate::summary::Summary;
use crate::views::encode_bytes_catching;

#[derive(Debug, Clone)]
pub struct Options {
    pub dataset: PathBuf,
    pub out: PathBuf,
    pub augment: Augment,
    /// Worker threads (default: all cores).
    pub threads: Option<usize>,
    /// Images per chunk (bounded memory; the journal is flushed after each chunk).
    pub chunk: usize,
    /// Replace a cache made with another extractor instead of refusing.
    pub overwrite: bool,
    /// Show a progress bar (still hidden when stderr is not a terminal or `CI` is set).
    pub progress: bool,
}

impl Options {
    pub fn new(dataset: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Options {
        Options {
            dataset: dataset.into(),
            out: out.into(),
            augment: Augment::None,
            threads: None,
            chunk: 64,
            overwrite: false,
            progress: true,
        }
    }
}

/// The result of one file.
enum Outcome {
    New(String, Vec<f32>),
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

    // The previous cache: same extractor, or a refusal that says what differs.
    let previous = match FeatureCache::read(&opts.out) {
        Ok(c) => c,
        Err(e) if opts.overwrite => {
            eprintln!(
                "warning: ignoring unreadable cache {}: {e:#}",
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
    // Rows to reuse by (path, sha256); rows that are not finite are extracted again (repair).
    let old: HashMap<(&str, &str), usize> = previous
        .as_ref()
        .map(|c| {
            let bad: BTreeSet<usize> = c.non_finite.iter().copied().collect();
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

    let threads = opts
        .threads
        .unwrap_or_else(rayon::current_num_threads)
        .max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("starting worker threads")?;
    let pb = progress_bar(listing.files.len(), opts.progress);
    let abort_at = abort_after();

    let dim = enc.dim();
    let mut index = Vec::with_capacity(listing.files.len());
    let mut features: Vec<f32> = Vec::with_capacity(listing.files.len() * dim);
    let mut skipped = listing.skipped.clone();
    let (mut extracted, mut reused, mut resumed) = (0usize, 0usize, 0usize);
    let mut classes: BTreeMap<String, usize> = BTreeMap::new();

    for chunk in listing.files.chunks(opts.chunk.max(1)) {
        let outcomes: Vec<Outcome> = pool.install(|| {
            chunk
                .par_iter()
                .map(|(rel, abs)| {
                    let o = process_file(
                        enc,
                        opts.augment,
                        rel,
                        abs,
                        previous.as_ref(),
                        &old,
                        &journal_map,
                    );
                    pb.inc(1);
                    o
                })
                .collect()
        });
        for ((rel, _), outcome) in chunk.iter().zip(outcomes) {
            let (sha, vector) = match outcome {
                Outcome::Skipped(reason) => {
                    skipped.push(SkipRow {
                        path: rel.clone(),
                        reason,
                    });
                    continue;
                }
                Outcome::New(sha, v) => {
                    journal.append(rel, &sha, &v)?;
                    extracted += 1;
                    if abort_at.is_some_and(|n| extracted >= n) {
                        journal.flush()?;
                        eprintln!("TLEARN_ABORT_AFTER: aborting after {extracted} images");
                        std::process::abort();
                    }
                    (sha, v)
                }
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
        journal.flush()?;
    }
    pb.finish_and_clear();

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
    let meta = Meta::new(
        root.to_string_lossy(),
        dim,
        rows,
        classes.keys().cloned().collect(),
        fp,
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    );
    drop(journal);
    tlearn_cache::write(&opts.out, &meta, &index, &features, &skipped)?;
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
        extracted,
        reused,
        resumed,
        dropped,
        skipped,
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

fn process_file(
    enc: &dyn Encoder,
    augment: Augment,
    rel: &str,
    abs: &Path,
    previous: Option<&FeatureCache>,
    old: &HashMap<(&str, &str), usize>,
    journal: &HashMap<(String, String), Vec<f32>>,
) -> Outcome {
    let bytes = match std::fs::read(abs) {
        Ok(b) => b,
        Err(e) => return Outcome::Skipped(format!("unreadable file: {e}")),
    };
    let sha = hex::encode(Sha256::digest(&bytes));
    if let (Some(c), Some(&i)) = (previous, old.get(&(rel, sha.as_str()))) {
        return Outcome::Reused(sha, c.row(i).to_vec());
    }
    if let Some(v) = journal.get(&(rel.to_owned(), sha.clone())) {
        if v.len() == enc.dim() {
            return Outcome::Resumed(sha, v.clone());
        }
    }
    match encode_bytes_catching(enc, &bytes, augment) {
        Ok(v) => Outcome::New(sha, v),
        Err(e) => Outcome::Skipped(format!("{e:#}")),
    }
}
