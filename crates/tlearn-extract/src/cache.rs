//! The on-disk feature cache (format v1, see the project notes) and its resume journal.
//!
//! A cache directory holds `meta.json`, `features.npy` (float32 `[N, D]`), `index.csv`
//! (`path,label,sha256`, row i ↔ features row i, sorted by path) and `skipped.csv`
//! (`path,reason`). Every file is written as `*.tmp`, fsynced and renamed, `meta.json` last.
//!
//! While a run is going, every newly extracted vector is appended to `journal.bin` (a header
//! line with the extractor fingerprint, then length-framed records), flushed regularly. A run
//! that is killed leaves the previous cache untouched plus the journal; the next run with the
//! same fingerprint reuses the journal's vectors (matched by path and content hash) and only
//! extracts the rest. A torn last record (killed mid-write) is ignored.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ndarray::Array2;
use ndarray_npy::{ReadNpyExt, WriteNpyExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::augment::Augment;
use crate::spec::{Pooling, Preprocess};

pub const FORMAT: &str = "tlearn-features";
pub const VERSION: u32 = 1;
pub const JOURNAL: &str = "journal.bin";

/// Everything that determines the vectors: two caches are compatible iff these are equal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub backbone: String,
    pub sha256: String,
    pub layer: String,
    pub pool: Pooling,
    pub preprocess: Preprocess,
    pub augment: Augment,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub format: String,
    pub version: u32,
    pub dataset: String,
    pub dim: usize,
    pub rows: usize,
    pub classes: Vec<String>,
    pub extractor: Value,
    pub created: String,
    pub tlearn_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexRow {
    pub path: String,
    pub label: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkipRow {
    pub path: String,
    pub reason: String,
}

/// A whole cache in memory.
#[derive(Debug, Clone)]
pub struct Cache {
    pub meta: Meta,
    pub index: Vec<IndexRow>,
    /// Row-major `[rows, dim]`.
    pub features: Vec<f32>,
    pub skipped: Vec<SkipRow>,
}

impl Cache {
    pub fn row(&self, i: usize) -> &[f32] {
        let d = self.meta.dim;
        &self.features[i * d..(i + 1) * d]
    }
}

/// Describe how two extractor fingerprints differ (`None` if equal), naming the fields.
pub fn fingerprint_diff(old: &Value, new: &Value) -> Option<String> {
    fn walk(prefix: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Object(ma), Value::Object(mb)) => {
                let mut keys: Vec<&String> = ma.keys().chain(mb.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(
                        &p,
                        ma.get(k).unwrap_or(&Value::Null),
                        mb.get(k).unwrap_or(&Value::Null),
                        out,
                    );
                }
            }
            _ if a != b => out.push(format!("{prefix}: cache has {a}, this run has {b}")),
            _ => {}
        }
    }
    let mut diffs = Vec::new();
    walk("", old, new, &mut diffs);
    (!diffs.is_empty()).then(|| diffs.join("; "))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Write a file atomically: `write` fills `<path>.tmp`, which is fsynced and renamed.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<()>,
) -> Result<()> {
    let tmp = staged(path, write)?;
    fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// Fill `<path>.tmp` with `write` and fsync it; returns the temporary path (not yet renamed).
fn staged(path: &Path, write: impl FnOnce(&mut BufWriter<File>) -> Result<()>) -> Result<PathBuf> {
    let tmp = tmp_path(path);
    let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut w = BufWriter::new(file);
    write(&mut w).with_context(|| format!("writing {}", tmp.display()))?;
    let file = w
        .into_inner()
        .map_err(|e| anyhow::anyhow!("flushing {}: {}", tmp.display(), e.error()))?;
    file.sync_all()
        .with_context(|| format!("fsync {}", tmp.display()))?;
    Ok(tmp)
}

fn sync_dir(dir: &Path) {
    // Makes the renames durable; not all platforms allow opening a directory, so best effort.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Write the whole cache into `dir` (created if missing). `meta.json` is renamed last.
pub fn write(dir: &Path, cache: &Cache) -> Result<()> {
    let m = &cache.meta;
    anyhow::ensure!(
        cache.index.len() == m.rows && cache.features.len() == m.rows * m.dim,
        "internal error: {} index rows, {} floats for {}×{}",
        cache.index.len(),
        cache.features.len(),
        m.rows,
        m.dim
    );
    fs::create_dir_all(dir).with_context(|| format!("creating cache dir {}", dir.display()))?;
    // Phase 1: every file is written in full as `*.tmp` and fsynced; a kill here leaves the
    // previous cache untouched.
    let features = staged(&dir.join("features.npy"), |w| {
        let arr = ndarray::ArrayView2::from_shape((m.rows, m.dim), &cache.features)?;
        arr.write_npy(w)?;
        Ok(())
    })?;
    let index = staged(&dir.join("index.csv"), |w| {
        let mut c = csv::Writer::from_writer(w);
        c.write_record(["path", "label", "sha256"])?;
        for r in &cache.index {
            c.write_record([&r.path, &r.label, &r.sha256])?;
        }
        c.flush()?;
        Ok(())
    })?;
    let skipped = staged(&dir.join("skipped.csv"), |w| {
        let mut c = csv::Writer::from_writer(w);
        c.write_record(["path", "reason"])?;
        for r in &cache.skipped {
            c.write_record([&r.path, &r.reason])?;
        }
        c.flush()?;
        Ok(())
    })?;
    let meta = staged(&dir.join("meta.json"), |w| {
        serde_json::to_writer_pretty(&mut *w, m)?;
        w.write_all(b"\n")?;
        Ok(())
    })?;
    // Phase 2: retire the old meta.json first, so that a kill between the renames below leaves
    // a directory without meta.json (read as "no cache"; the journal still holds this run's
    // vectors) rather than an old meta.json over a new features.npy.
    match fs::remove_file(dir.join("meta.json")) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).context(format!("retiring {}", dir.join("meta.json").display())),
    }
    let names = ["features.npy", "index.csv", "skipped.csv", "meta.json"];
    for (tmp, name) in [features, index, skipped, meta].into_iter().zip(names) {
        let path = dir.join(name);
        fs::rename(&tmp, &path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    }
    sync_dir(dir);
    Ok(())
}

/// Read a cache; `Ok(None)` if `dir` has no `meta.json`. Checks the pieces agree.
pub fn read(dir: &Path) -> Result<Option<Cache>> {
    let meta_path = dir.join("meta.json");
    if !meta_path.exists() {
        return Ok(None);
    }
    let meta: Meta = serde_json::from_reader(BufReader::new(
        File::open(&meta_path).with_context(|| format!("opening {}", meta_path.display()))?,
    ))
    .with_context(|| format!("parsing {}", meta_path.display()))?;
    if meta.format != FORMAT || meta.version != VERSION {
        bail!(
            "{} is not a tlearn feature cache v{VERSION} (format {:?} version {})",
            meta_path.display(),
            meta.format,
            meta.version
        );
    }
    let npy = dir.join("features.npy");
    let arr = Array2::<f32>::read_npy(BufReader::new(
        File::open(&npy).with_context(|| format!("opening {}", npy.display()))?,
    ))
    .with_context(|| format!("reading {}", npy.display()))?;
    let index: Vec<IndexRow> = read_csv(&dir.join("index.csv"))?;
    let skipped: Vec<SkipRow> = if dir.join("skipped.csv").exists() {
        read_csv(&dir.join("skipped.csv"))?
    } else {
        Vec::new()
    };
    if arr.nrows() != meta.rows || index.len() != meta.rows || arr.ncols() != meta.dim {
        bail!(
            "cache {} is inconsistent: meta says {}×{}, features.npy is {:?}, index.csv has {} rows",
            dir.display(),
            meta.rows,
            meta.dim,
            arr.shape(),
            index.len()
        );
    }
    let features = arr.as_standard_layout().iter().copied().collect();
    Ok(Some(Cache {
        meta,
        index,
        features,
        skipped,
    }))
}

fn read_csv<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    r.deserialize()
        .collect::<Result<Vec<T>, _>>()
        .with_context(|| format!("reading {}", path.display()))
}

const RECORD_TAG: &[u8; 4] = b"TLR1";

/// Append-only log of vectors extracted by an unfinished run.
pub struct JournalWriter {
    w: BufWriter<File>,
}

impl JournalWriter {
    /// Open `dir/journal.bin` for appending after its last complete record; a journal for
    /// another fingerprint (or none) is started afresh.
    pub fn open(dir: &Path, fingerprint: &Value) -> Result<JournalWriter> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(JOURNAL);
        let header = serde_json::to_string(fingerprint)?;
        let scan = scan_journal(&path, &header)?;
        let file = match scan {
            Some((_, valid_len)) => {
                let f = fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .with_context(|| format!("opening {}", path.display()))?;
                // Drop a torn last record so appended records stay readable.
                f.set_len(valid_len)?;
                let mut f = f;
                std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0))?;
                f
            }
            None => {
                let mut f =
                    File::create(&path).with_context(|| format!("creating {}", path.display()))?;
                f.write_all(header.as_bytes())?;
                f.write_all(b"\n")?;
                f
            }
        };
        Ok(JournalWriter {
            w: BufWriter::new(file),
        })
    }

    pub fn append(&mut self, path: &str, sha256: &str, vector: &[f32]) -> Result<()> {
        let mut rec = Vec::with_capacity(16 + path.len() + sha256.len() + vector.len() * 4);
        rec.extend_from_slice(RECORD_TAG);
        for s in [path, sha256] {
            rec.extend_from_slice(&(s.len() as u32).to_le_bytes());
            rec.extend_from_slice(s.as_bytes());
        }
        rec.extend_from_slice(&(vector.len() as u32).to_le_bytes());
        for x in vector {
            rec.extend_from_slice(&x.to_le_bytes());
        }
        self.w.write_all(&rec).context("appending to the journal")?;
        Ok(())
    }

    /// Push buffered records to the OS (survives the process being killed).
    pub fn flush(&mut self) -> Result<()> {
        self.w.flush().context("flushing the journal")
    }
}

type JournalMap = HashMap<(String, String), Vec<f32>>;

/// Parse a journal whose header matches: its complete records and the byte length they span.
fn scan_journal(path: &Path, header: &str) -> Result<Option<(JournalMap, u64)>> {
    if !path.exists() {
        return Ok(None);
    }
    let mut r =
        BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?);
    let mut line = String::new();
    if r.read_line(&mut line).is_err() || line.strip_suffix('\n') != Some(header) {
        return Ok(None);
    }
    let mut valid = line.len() as u64;
    let mut out = HashMap::new();
    // Records until EOF; a torn (partial) last record ends the loop.
    while let Some((p, s, v, n)) = read_record(&mut r) {
        out.insert((p, s), v);
        valid += n;
    }
    Ok(Some((out, valid)))
}

/// Vectors from an unfinished run's journal, keyed by (path, sha256). Empty when there is no
/// journal or it belongs to another fingerprint.
pub fn read_journal(dir: &Path, fingerprint: &Value) -> Result<JournalMap> {
    let header = serde_json::to_string(fingerprint)?;
    Ok(scan_journal(&dir.join(JOURNAL), &header)?
        .map(|(m, _)| m)
        .unwrap_or_default())
}

fn read_u32(r: &mut impl Read) -> Option<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b).ok()?;
    Some(u32::from_le_bytes(b))
}

fn read_bytes(r: &mut impl Read, len: usize, max: usize) -> Option<Vec<u8>> {
    if len > max {
        return None;
    }
    let mut b = vec![0u8; len];
    r.read_exact(&mut b).ok()?;
    Some(b)
}

/// One record: (path, sha256, vector, bytes consumed), or `None` at EOF / a torn record.
fn read_record(r: &mut impl Read) -> Option<(String, String, Vec<f32>, u64)> {
    let mut tag = [0u8; 4];
    r.read_exact(&mut tag).ok()?;
    if &tag != RECORD_TAG {
        return None;
    }
    let plen = read_u32(r)? as usize;
    let pb = read_bytes(r, plen, 1 << 16)?;
    let slen = read_u32(r)? as usize;
    let sb = read_bytes(r, slen, 256)?;
    let dim = read_u32(r)? as usize;
    let vb = read_bytes(r, dim * 4, 1 << 28)?;
    let v = vb
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let n = (4 + 4 + plen + 4 + slen + 4 + dim * 4) as u64;
    Some((
        String::from_utf8(pb).ok()?,
        String::from_utf8(sb).ok()?,
        v,
        n,
    ))
}

/// Remove the journal after a successful write.
pub fn remove_journal(dir: &Path) -> Result<()> {
    let p = dir.join(JOURNAL);
    if p.exists() {
        fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ChannelOrder, Layout};

    fn fp() -> Fingerprint {
        Fingerprint {
            backbone: "b".into(),
            sha256: "00".into(),
            layer: "features".into(),
            pool: Pooling::Avg,
            preprocess: Preprocess {
                crop: 224,
                resize_ratio: 256.0 / 224.0,
                value_scale: 1.0,
                mean: [127.0; 3],
                std: [128.0; 3],
                channels: ChannelOrder::Rgb,
                layout: Layout::Nchw,
                background: [255; 3],
                decode: Default::default(),
            },
            augment: Augment::None,
        }
    }

    #[test]
    fn write_read_round_trip_and_numpy_layout() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache {
            meta: Meta {
                format: FORMAT.into(),
                version: VERSION,
                dataset: "/d".into(),
                dim: 2,
                rows: 2,
                classes: vec!["a, \"quoted\"".into(), "b".into()],
                extractor: serde_json::to_value(fp()).unwrap(),
                created: "now".into(),
                tlearn_version: "0".into(),
            },
            index: vec![
                IndexRow {
                    path: "a, \"quoted\"/x.png".into(),
                    label: "a, \"quoted\"".into(),
                    sha256: "11".into(),
                },
                IndexRow {
                    path: "b/y.png".into(),
                    label: "b".into(),
                    sha256: "22".into(),
                },
            ],
            features: vec![1.0, 2.0, 3.0, 4.0],
            skipped: vec![SkipRow {
                path: "b/z.jpg".into(),
                reason: "empty file (0 bytes)".into(),
            }],
        };
        write(dir.path(), &cache).unwrap();
        let back = read(dir.path()).unwrap().unwrap();
        assert_eq!(back.index, cache.index);
        assert_eq!(back.features, cache.features);
        assert_eq!(back.skipped, cache.skipped);
        assert_eq!(back.row(1), &[3.0, 4.0]);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
        // The npy header is numpy's: little-endian float32, C order, shape (2, 2).
        let raw = fs::read(dir.path().join("features.npy")).unwrap();
        let head = String::from_utf8_lossy(&raw[..80]);
        assert!(
            head.contains("'descr': '<f4'") && head.contains("(2, 2)"),
            "{head}"
        );
        let idx = fs::read_to_string(dir.path().join("index.csv")).unwrap();
        assert!(
            idx.starts_with("path,label,sha256\n\"a, \"\"quoted\"\"/x.png\""),
            "{idx}"
        );
    }

    #[test]
    fn fingerprint_diff_names_the_field() {
        let a = serde_json::to_value(fp()).unwrap();
        assert_eq!(fingerprint_diff(&a, &a), None);
        let mut f = fp();
        f.layer = "stem".into();
        f.preprocess.crop = 240;
        let d = fingerprint_diff(&a, &serde_json::to_value(f).unwrap()).unwrap();
        assert!(
            d.contains("layer: cache has \"features\", this run has \"stem\""),
            "{d}"
        );
        assert!(d.contains("preprocess.crop"), "{d}");
    }

    #[test]
    fn journal_survives_a_torn_record_and_ignores_other_fingerprints() {
        let dir = tempfile::tempdir().unwrap();
        let f = serde_json::to_value(fp()).unwrap();
        let mut j = JournalWriter::open(dir.path(), &f).unwrap();
        j.append("a/1.png", "aa", &[1.0, 2.0]).unwrap();
        j.append("a/2.png", "bb", &[3.0, 4.0]).unwrap();
        j.flush().unwrap();
        drop(j);
        // Tear the last record.
        let p = dir.path().join(JOURNAL);
        let len = fs::metadata(&p).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let got = read_journal(dir.path(), &f).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[&("a/1.png".into(), "aa".into())], vec![1.0, 2.0]);
        let mut other = fp();
        other.augment = Augment::Flip;
        let other = serde_json::to_value(other).unwrap();
        assert!(read_journal(dir.path(), &other).unwrap().is_empty());
        // Re-opening drops the torn record, so records appended now are readable.
        let mut j = JournalWriter::open(dir.path(), &f).unwrap();
        j.append("a/3.png", "cc", &[5.0, 6.0]).unwrap();
        j.flush().unwrap();
        let got = read_journal(dir.path(), &f).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[&("a/3.png".into(), "cc".into())], vec![5.0, 6.0]);
        // Another fingerprint starts a fresh journal.
        drop(JournalWriter::open(dir.path(), &other).unwrap());
        assert!(read_journal(dir.path(), &f).unwrap().is_empty());
    }
}
