//! Reading a feature cache (format v1: `meta.json`, `features.npy`, `index.csv`) and checking it.

use anyhow::{bail, Context, Result};
use ndarray::Array2;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The parts of `meta.json` the heads need. Unknown fields are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct CacheMeta {
    pub format: String,
    pub version: u32,
    pub dim: usize,
    pub rows: usize,
    pub classes: Vec<String>,
    /// The extractor fingerprint; opaque to the heads, compared for equality only.
    pub extractor: serde_json::Value,
    #[serde(default)]
    pub dataset: Option<String>,
}

/// A loaded, validated feature cache.
#[derive(Debug, Clone)]
pub struct FeatureCache {
    pub dir: PathBuf,
    pub meta: CacheMeta,
    /// `[rows, dim]` feature vectors.
    pub x: Array2<f32>,
    /// Row i: path relative to the data set root.
    pub paths: Vec<String>,
    /// Row i: index into `meta.classes`.
    pub y: Vec<usize>,
    /// Row i: sha256 of the image bytes (duplicates share it).
    pub sha256: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct IndexRow {
    path: String,
    label: String,
    sha256: String,
}

impl FeatureCache {
    /// Load and validate a cache directory. Every problem is an error naming the file.
    pub fn load(dir: &Path) -> Result<FeatureCache> {
        if !dir.is_dir() {
            bail!("feature cache {} is not a directory", dir.display());
        }
        let meta_path = dir.join("meta.json");
        let text = std::fs::read_to_string(&meta_path)
            .with_context(|| format!("reading {}", meta_path.display()))?;
        let meta: CacheMeta = serde_json::from_str(&text)
            .with_context(|| format!("parsing {}", meta_path.display()))?;
        if meta.format != "tlearn-features" {
            bail!(
                "{}: format is {:?}, expected \"tlearn-features\"",
                meta_path.display(),
                meta.format
            );
        }
        if meta.version != 1 {
            bail!(
                "{}: feature cache version {} is not supported (this tlearn reads version 1)",
                meta_path.display(),
                meta.version
            );
        }

        let npy_path = dir.join("features.npy");
        let x: Array2<f32> = ndarray_npy::read_npy(&npy_path).with_context(|| {
            format!(
                "reading {} (expected float32 C-order [N, D])",
                npy_path.display()
            )
        })?;
        if x.nrows() != meta.rows || x.ncols() != meta.dim {
            bail!(
                "{} has shape [{}, {}] but {} says rows={} dim={}",
                npy_path.display(),
                x.nrows(),
                x.ncols(),
                meta_path.display(),
                meta.rows,
                meta.dim
            );
        }

        let index_path = dir.join("index.csv");
        let mut rdr = csv::Reader::from_path(&index_path)
            .with_context(|| format!("opening {}", index_path.display()))?;
        let mut paths = Vec::with_capacity(meta.rows);
        let mut labels = Vec::with_capacity(meta.rows);
        let mut sha256 = Vec::with_capacity(meta.rows);
        for (i, rec) in rdr.deserialize::<IndexRow>().enumerate() {
            let rec = rec.with_context(|| format!("{}: line {}", index_path.display(), i + 2))?;
            paths.push(rec.path);
            labels.push(rec.label);
            sha256.push(rec.sha256);
        }
        if paths.len() != meta.rows {
            bail!(
                "{} has {} rows but {} has {} (and meta.json says {})",
                index_path.display(),
                paths.len(),
                npy_path.display(),
                x.nrows(),
                meta.rows
            );
        }
        let mut y = Vec::with_capacity(meta.rows);
        for (i, l) in labels.iter().enumerate() {
            match meta.classes.iter().position(|c| c == l) {
                Some(k) => y.push(k),
                None => bail!(
                    "{}: line {} ({}) has label {:?}, which is not among the classes in meta.json {:?}",
                    index_path.display(),
                    i + 2,
                    paths[i],
                    l,
                    meta.classes
                ),
            }
        }

        // Non-finite values: name the first few rows.
        let bad: Vec<usize> = x
            .outer_iter()
            .enumerate()
            .filter(|(_, r)| r.iter().any(|v| !v.is_finite()))
            .map(|(i, _)| i)
            .collect();
        if !bad.is_empty() {
            let names: Vec<String> = bad
                .iter()
                .take(5)
                .map(|&i| format!("row {i} ({})", paths[i]))
                .collect();
            bail!(
                "{}: {} row(s) contain NaN or infinite values: {}{}",
                npy_path.display(),
                bad.len(),
                names.join(", "),
                if bad.len() > 5 { ", ..." } else { "" }
            );
        }

        Ok(FeatureCache {
            dir: dir.to_path_buf(),
            meta,
            x,
            paths,
            y,
            sha256,
        })
    }

    pub fn rows(&self) -> usize {
        self.x.nrows()
    }

    pub fn classes(&self) -> &[String] {
        &self.meta.classes
    }

    /// Training needs at least two classes with rows and at least one row.
    pub fn check_trainable(&self) -> Result<()> {
        if self.rows() == 0 {
            bail!(
                "feature cache {} is empty (0 rows): nothing to train on",
                self.dir.display()
            );
        }
        let mut counts = vec![0usize; self.classes().len()];
        for &k in &self.y {
            counts[k] += 1;
        }
        let present: Vec<&String> = self
            .classes()
            .iter()
            .zip(&counts)
            .filter(|(_, &n)| n > 0)
            .map(|(c, _)| c)
            .collect();
        if present.len() < 2 {
            bail!(
                "feature cache {} has {} class(es) with images ({:?}); a classifier needs at least 2",
                self.dir.display(),
                present.len(),
                present
            );
        }
        if present.len() < self.classes().len() {
            let empty: Vec<&String> = self
                .classes()
                .iter()
                .zip(&counts)
                .filter(|(_, &n)| n == 0)
                .map(|(c, _)| c)
                .collect();
            bail!(
                "feature cache {}: classes {:?} are listed in meta.json but have no rows",
                self.dir.display(),
                empty
            );
        }
        Ok(())
    }
}
