//! Helpers for the heads tests: write feature caches (with `tlearn-cache`), read scikit-learn's bundled
//! real data sets (UCI digits, iris) from the project's venv.
#![allow(dead_code)]

use ndarray::Array2;
use std::io::Read;
use std::path::{Path, PathBuf};
use tlearn_cache::{
    Augment, ChannelOrder, Fingerprint, IndexRow, Layout, Meta, Pooling, Preprocess,
};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fingerprint as `tlearn extract` writes it, for the backbone `name`.
pub fn extractor(name: &str) -> Fingerprint {
    Fingerprint {
        backbone: name.into(),
        sha256: "abc123".into(),
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
        },
        augment: Augment::None,
    }
}

/// Write a cache with `tlearn-cache`'s writer; `sha` defaults to a distinct hash per row.
pub fn write_cache(
    dir: &Path,
    x: &Array2<f32>,
    labels: &[String],
    sha: Option<&[String]>,
    extractor: Fingerprint,
) {
    let mut classes: Vec<String> = labels.to_vec();
    classes.sort();
    classes.dedup();
    let index: Vec<IndexRow> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| IndexRow {
            path: format!("{l}/{i:05}.png"),
            label: l.clone(),
            sha256: sha
                .map(|s| s[i].clone())
                .unwrap_or_else(|| format!("{i:064x}")),
        })
        .collect();
    let meta = Meta::new(
        "/nowhere",
        x.ncols(),
        x.nrows(),
        classes,
        extractor,
        "2026-01-01T00:00:00Z",
    );
    let features: Vec<f32> = x.iter().copied().collect();
    tlearn_cache::write(dir, &meta, &index, &features, &[]).unwrap();
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
