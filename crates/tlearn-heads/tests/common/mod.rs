//! Helpers for the heads tests: write feature caches (format v1), read the real data sets kept
//! as fixtures (UCI digits, iris; scikit-learn's copies).
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

/// A fixture under `tests/fixtures/`; a missing one fails the test with its path.
pub fn fixture(file: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(file);
    assert!(p.exists(), "test fixture {} is missing", p.display());
    p
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

/// The UCI handwritten digits (1797 × 64), scikit-learn's copy kept as a fixture.
pub fn digits() -> (Array2<f32>, Vec<String>) {
    let mut s = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(fixture("digits.csv.gz")).unwrap())
        .read_to_string(&mut s)
        .unwrap();
    parse_rows(&s, 0)
}

/// Fisher's iris (150 × 4), scikit-learn's copy kept as a fixture.
pub fn iris() -> (Array2<f32>, Vec<String>) {
    parse_rows(&std::fs::read_to_string(fixture("iris.csv")).unwrap(), 1)
}
