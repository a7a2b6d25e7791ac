//! Helpers for the heads tests: write feature caches (format v1), read scikit-learn's bundled
//! real data sets (UCI digits, iris) from the project's venv.
#![allow(dead_code)]

use ndarray::Array2;
use std::io::Read;
use std::path::{Path, PathBuf};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn extractor(name: &str) -> serde_json::Value {
    serde_json::json!({
        "backbone": name, "sha256": "abc123", "layer": "features", "pool": "avg",
        "preprocess": {"size": 224}, "augment": "none"
    })
}

/// Write a cache; `sha` defaults to a distinct hash per row.
pub fn write_cache(
    dir: &Path,
    x: &Array2<f32>,
    labels: &[String],
    sha: Option<&[String]>,
    extractor: serde_json::Value,
) {
    std::fs::create_dir_all(dir).unwrap();
    let mut classes: Vec<String> = labels.to_vec();
    classes.sort();
    classes.dedup();
    ndarray_npy::write_npy(dir.join("features.npy"), x).unwrap();
    let mut w = csv::Writer::from_path(dir.join("index.csv")).unwrap();
    w.write_record(["path", "label", "sha256"]).unwrap();
    for (i, l) in labels.iter().enumerate() {
        let h = sha
            .map(|s| s[i].clone())
            .unwrap_or_else(|| format!("{i:064x}"));
        w.write_record([format!("{l}/{i:05}.png"), l.clone(), h])
            .unwrap();
    }
    w.flush().unwrap();
    let meta = serde_json::json!({
        "format": "tlearn-features", "version": 1, "dataset": "/nowhere", "dim": x.ncols(),
        "rows": x.nrows(), "classes": classes, "extractor": extractor,
        "created": "2026-01-01T00:00:00Z", "tlearn_version": "test"
    });
    std::fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
    std::fs::write(dir.join("skipped.csv"), "path,reason\n").unwrap();
}

fn sklearn_data(file: &str) -> Option<PathBuf> {
    let lib = repo_root().join(".venv/lib");
    for e in std::fs::read_dir(lib).ok()?.flatten() {
        let p = e
            .path()
            .join("site-packages/sklearn/datasets/data")
            .join(file);
        if p.exists() {
            return Some(p);
        }
    }
    None
}

fn parse_rows(text: &str, skip: usize) -> (Array2<f32>, Vec<String>) {
    let mut vals = Vec::new();
    let mut labels = Vec::new();
    let mut d = 0;
    for line in text.lines().skip(skip).filter(|l| !l.trim().is_empty()) {
        let f: Vec<f32> = line.split(',').map(|v| v.trim().parse().unwrap()).collect();
        d = f.len() - 1;
        vals.extend_from_slice(&f[..d]);
        labels.push(format!("class{}", f[d] as usize));
    }
    (
        Array2::from_shape_vec((labels.len(), d), vals).unwrap(),
        labels,
    )
}

/// The UCI handwritten digits (1797 × 64) shipped by scikit-learn, or None (with a message).
pub fn digits() -> Option<(Array2<f32>, Vec<String>)> {
    let Some(p) = sklearn_data("digits.csv.gz") else {
        eprintln!("SKIP: scikit-learn's digits.csv.gz not found under .venv (run make venv)");
        return None;
    };
    let mut s = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(p).unwrap())
        .read_to_string(&mut s)
        .unwrap();
    Some(parse_rows(&s, 0))
}

/// Fisher's iris (150 × 4) shipped by scikit-learn, or None (with a message).
pub fn iris() -> Option<(Array2<f32>, Vec<String>)> {
    let Some(p) = sklearn_data("iris.csv") else {
        eprintln!("SKIP: scikit-learn's iris.csv not found under .venv (run make venv)");
        return None;
    };
    Some(parse_rows(&std::fs::read_to_string(p).unwrap(), 1))
}
