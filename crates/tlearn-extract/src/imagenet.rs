//! ImageNet-1k class names (`models/imagenet_classes.txt`, written by `models/fetch.py` from
//! Debian's `darknet` package, one name per line in output index order) and top-k with softmax.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The 1000 ILSVRC-2012 class names in network output order (0 = tench, 281 = tabby, ...).
#[derive(Debug, Clone)]
pub struct ImagenetLabels {
    names: Vec<String>,
}

impl ImagenetLabels {
    pub const FILE: &'static str = "imagenet_classes.txt";

    /// Load `<models_dir>/imagenet_classes.txt`.
    pub fn load(models_dir: &Path) -> Result<ImagenetLabels> {
        ImagenetLabels::from_file(&Self::path(models_dir))
    }

    pub fn path(models_dir: &Path) -> PathBuf {
        models_dir.join(Self::FILE)
    }

    pub fn from_file(path: &Path) -> Result<ImagenetLabels> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read ImageNet class names {} (run `make models`)",
                path.display()
            )
        })?;
        let names: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
        if names.len() != 1000 || names.iter().any(|n| n.is_empty()) {
            bail!(
                "{}: expected 1000 non-empty class names, found {} lines",
                path.display(),
                names.len()
            );
        }
        Ok(ImagenetLabels { names })
    }

    /// Class name for an output index ("?" when out of range).
    pub fn name(&self, index: usize) -> &str {
        self.names.get(index).map(|s| s.as_str()).unwrap_or("?")
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Numerically stable softmax.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|&x| ((x - max) as f64).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|&e| (e / sum) as f32).collect()
}

/// Scores as probabilities: already a distribution (a graph ending in Softmax) is kept,
/// anything else goes through softmax.
pub fn probabilities(scores: &[f32]) -> Vec<f32> {
    let sum: f32 = scores.iter().sum();
    if !scores.is_empty()
        && scores.iter().all(|&p| (0.0..=1.0).contains(&p))
        && (sum - 1.0).abs() < 1e-3
    {
        scores.to_vec()
    } else {
        softmax(scores)
    }
}

/// The k most probable classes (index, probability), best first; ties keep the lower index.
pub fn top_k(scores: &[f32], k: usize) -> Vec<(usize, f32)> {
    let p = probabilities(scores);
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
    idx.into_iter().take(k).map(|i| (i, p[i])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_and_normalises() {
        let t = top_k(&[1.0, 3.0, 2.0, 3.0], 3);
        assert_eq!(t.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 3, 2]);
        let total: f32 = softmax(&[1.0, 3.0, 2.0, 3.0]).iter().sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert!((t[0].1 - t[1].1).abs() < 1e-7 && t[0].1 > t[2].1);
        // already probabilities: kept as is
        assert_eq!(top_k(&[0.1, 0.7, 0.2], 1), vec![(1, 0.7)]);
    }
}
