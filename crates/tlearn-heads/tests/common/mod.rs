//! Helpers for the heads tests: write feature caches (with `tlearn-cache`), read the real data
//! sets kept as fixtures (UCI digits, iris; scikit-learn's copies).
#![allow(dead_code)]

use ndarray::Array2;
use std::io::Read;
use std::path::{Path, PathBuf};
use tlearn_cache::{Fingerprint, IndexRow, Meta};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fingerprint as `tlearn extract` writes it, for the backbone `name`.
pub fn extractor(name: &str) -> Fingerprint {
    tlearn_cache::testing::fingerprint(name, "abc123")
}

/// Write a cache with `tlearn-cache`'s writer; `sha` defaults to a distinct hash per row. Row
/// i is the image `{label}/{i:05}.png`; the rows are written in path order, as the format
/// wants (a no-op for rows grouped by class in name order).
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
    let mut rows: Vec<(IndexRow, usize)> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let row = IndexRow {
                path: format!("{l}/{i:05}.png"),
                label: l.clone(),
                sha256: sha
                    .map(|s| s[i].clone())
                    .unwrap_or_else(|| format!("{i:064x}")),
            };
            (row, i)
        })
        .collect();
    rows.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    let meta = Meta::new(
        "/nowhere",
        x.ncols(),
        x.nrows(),
        classes,
        extractor,
        "2026-01-01T00:00:00Z",
    );
    let features: Vec<f32> = rows.iter().flat_map(|&(_, i)| x.row(i).to_vec()).collect();
    let index: Vec<IndexRow> = rows.into_iter().map(|(r, _)| r).collect();
    tlearn_cache::write(dir, &meta, &index, &features, &[]).unwrap();
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
