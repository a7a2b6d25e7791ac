//! Folder of images `DIR/<class>/<image>` → feature cache, in parallel and streaming.
//!
//! The folder is listed (paths only), sorted, and processed in bounded chunks: each rayon
//! worker reads one file, hashes it, and either reuses its vector (unchanged since the last
//! cache, or already in the journal of a killed run) or decodes, preprocesses and encodes it.
//! New vectors are appended to the journal after every chunk, so memory holds at most one chunk
//! of decoded images plus the vectors. At the end the cache is written atomically and the
//! journal removed. Bad files are skipped with a reason; nothing about one image stops the run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use image::RgbImage;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::augment::{self, Augment};
use crate::cache::{self, Cache, Fingerprint, IndexRow, Meta, SkipRow};
use crate::decode;
use crate::preprocess;
use crate::spec::{Pooling, Preprocess};

/// Anything that turns preprocessed `crop×crop` RGB views into feature vectors.
pub trait Encoder: Send + Sync {
    fn name(&self) -> &str;
    fn sha256(&self) -> &str;
    fn layer(&self) -> &str;
    fn pool(&self) -> Pooling;
    fn preprocess(&self) -> &Preprocess;
    fn dim(&self) -> usize;
    /// One vector per view, in order.
    fn encode_views(&self, views: &[RgbImage]) -> Result<Vec<Vec<f32>>>;
}

impl Encoder for crate::pixels::Pixels {
    fn name(&self) -> &str {
        self.name()
    }
    fn sha256(&self) -> &str {
        self.sha256()
    }
    fn layer(&self) -> &str {
        self.layer()
    }
    fn pool(&self) -> Pooling {
        self.pool()
    }
    fn preprocess(&self) -> &Preprocess {
        self.preprocess()
    }
    fn dim(&self) -> usize {
        self.dim()
    }
    fn encode_views(&self, views: &[RgbImage]) -> Result<Vec<Vec<f32>>> {
        views.iter().map(|v| self.encode(v)).collect()
    }
}

/// The extractor fingerprint stored in `meta.json`.
pub fn fingerprint(enc: &dyn Encoder, augment: Augment) -> Fingerprint {
    Fingerprint {
        backbone: enc.name().to_owned(),
        sha256: enc.sha256().to_owned(),
        layer: enc.layer().to_owned(),
        pool: enc.pool(),
        preprocess: enc.preprocess().clone(),
        augment,
    }
}

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
    pub dim: usize,
    /// Newly encoded this run.
    pub extracted: usize,
    /// Reused from the previous cache (unchanged path + sha256).
    pub reused: usize,
    /// Reused from the journal of an interrupted run.
    pub resumed: usize,
    /// Rows of the previous cache whose file is gone or changed.
    pub dropped: usize,
    pub skipped: Vec<SkipRow>,
    pub empty_classes: Vec<String>,
    pub classes: BTreeMap<String, usize>,
    pub seconds: f64,
    /// Newly encoded images per second of wall time (whole run).
    pub images_per_s: f64,
}

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

/// The result of one file.
enum Outcome {
    New(String, Vec<f32>),
    Reused(String, Vec<f32>),
    Resumed(String, Vec<f32>),
    Skipped(String),
}

/// Decode → views → encode → average, for one file's bytes.
pub fn encode_bytes(enc: &dyn Encoder, bytes: &[u8], augment: Augment) -> Result<Vec<f32>> {
    let p = enc.preprocess();
    let img = decode::decode_rgb_for(bytes, p.background, p.decode, preprocess::short_side(p))?;
    // A mirrored view is its unmirrored crop flipped: resize each crop window once.
    let specs = augment.views();
    let mut views: Vec<RgbImage> = Vec::with_capacity(specs.len());
    for (i, &v) in specs.iter().enumerate() {
        let done = specs[..i]
            .iter()
            .position(|u| u.anchor == v.anchor && !u.flip);
        let mut view = match done {
            Some(j) => views[j].clone(),
            None => preprocess::view_image(&img, p, augment::View { flip: false, ..v })?,
        };
        if v.flip {
            image::imageops::flip_horizontal_in_place(&mut view);
        }
        views.push(view);
    }
    drop(img);
    let vecs = enc.encode_views(&views)?;
    let out = augment::average(&vecs);
    if out.len() != enc.dim() {
        bail!(
            "backbone returned {} values, expected dim {}",
            out.len(),
            enc.dim()
        );
    }
    if out.iter().any(|x| !x.is_finite()) {
        bail!("backbone returned non-finite values");
    }
    Ok(out)
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
    let fp_json = serde_json::to_value(&fp)?;

    // The previous cache: same extractor, or a refusal that says what differs.
    let previous = match cache::read(&opts.out) {
        Ok(c) => c,
        Err(e) if opts.overwrite => {
            eprintln!(
                "warning: ignoring unreadable cache {}: {e:#}",
                opts.out.display()
            );
            None
        }
        Err(e) => {
            return Err(e.context(format!(
                "existing cache {} is unreadable (use --overwrite to rebuild it)",
                opts.out.display()
            )))
        }
    };
    let previous = match previous {
        Some(c) => match cache::fingerprint_diff(&c.meta.extractor, &fp_json) {
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
    let old: HashMap<(&str, &str), usize> = previous
        .as_ref()
        .map(|c| {
            c.index
                .iter()
                .enumerate()
                .map(|(i, r)| ((r.path.as_str(), r.sha256.as_str()), i))
                .collect()
        })
        .unwrap_or_default();
    let journal_map = cache::read_journal(&opts.out, &fp_json)?;
    let mut journal = cache::JournalWriter::open(&opts.out, &fp_json)?;

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
        bail!(msg);
    }
    let kept: BTreeSet<(&str, &str)> = index
        .iter()
        .map(|r| (r.path.as_str(), r.sha256.as_str()))
        .collect();
    let dropped = previous.as_ref().map_or(0, |c| {
        c.index
            .iter()
            .filter(|r| !kept.contains(&(r.path.as_str(), r.sha256.as_str())))
            .count()
    });
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    let cache = Cache {
        meta: Meta {
            format: cache::FORMAT.into(),
            version: cache::VERSION,
            dataset: root.to_string_lossy().into_owned(),
            dim,
            rows,
            classes: classes.keys().cloned().collect(),
            extractor: fp_json,
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            tlearn_version: env!("CARGO_PKG_VERSION").into(),
        },
        index,
        features,
        skipped: skipped.clone(),
    };
    drop(journal);
    cache::write(&opts.out, &cache)?;
    cache::remove_journal(&opts.out)?;

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
        classes,
        seconds,
        images_per_s: extracted as f64 / seconds.max(1e-9),
    };
    cache::write_atomic(&opts.out.join("summary.json"), |w| {
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
    previous: Option<&Cache>,
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
    // A panic inside a decoder or the backbone must not take the run down.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        encode_bytes(enc, &bytes, augment)
    }));
    match result {
        Ok(Ok(v)) => Outcome::New(sha, v),
        Ok(Err(e)) => Outcome::Skipped(format!("{e:#}")),
        Err(_) => Outcome::Skipped("decoder or backbone panicked on this file".into()),
    }
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
        for c in &self.empty_classes {
            s += &format!("warning: class folder '{c}' has no images\n");
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

impl Encoder for crate::backbone::Backbone {
    fn name(&self) -> &str {
        self.name()
    }
    fn sha256(&self) -> &str {
        self.sha256()
    }
    fn layer(&self) -> &str {
        self.layer()
    }
    fn pool(&self) -> Pooling {
        self.pool()
    }
    fn preprocess(&self) -> &Preprocess {
        self.preprocess()
    }
    fn dim(&self) -> usize {
        self.dim()
    }
    fn encode_views(&self, views: &[RgbImage]) -> Result<Vec<Vec<f32>>> {
        // One batch-1 run per view: tract is slower per image at larger batches.
        views
            .iter()
            .map(|v| {
                self.encode(preprocess::to_tensor(
                    std::slice::from_ref(v),
                    self.preprocess(),
                )?)
            })
            .collect()
    }
}
