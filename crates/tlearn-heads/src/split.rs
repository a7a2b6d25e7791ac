//! Seeded stratified train / held-out split and stratified k-fold, both grouped by content hash
//! so that duplicate images (same sha256) never straddle a split or a fold.

use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// A group of rows sharing one content hash; its class is the label of its first row.
#[derive(Debug, Clone)]
struct Group {
    class: usize,
    rows: Vec<usize>,
}

fn groups(y: &[usize], sha256: &[String], rows: &[usize]) -> Vec<Group> {
    // BTreeMap keyed by hash keeps the order deterministic.
    let mut by_hash: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for &r in rows {
        by_hash.entry(sha256[r].as_str()).or_default().push(r);
    }
    let mut gs: Vec<Group> = by_hash
        .into_values()
        .map(|rows| Group {
            class: y[rows[0]],
            rows,
        })
        .collect();
    // Order by first row so the result does not depend on the hash values.
    gs.sort_by_key(|g| g.rows[0]);
    gs
}

fn per_class(gs: Vec<Group>, n_classes: usize) -> Vec<Vec<Group>> {
    let mut out: Vec<Vec<Group>> = vec![Vec::new(); n_classes];
    for g in gs {
        out[g.class].push(g);
    }
    out
}

/// Train / held-out split: row indices into the cache, each sorted ascending.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

/// Stratified, seeded split. For each class, `round(test_size * groups)` of its hash groups go
/// to the held-out part, at least one if the class has two or more groups and never all of them.
/// A class with a single distinct image stays entirely in training.
pub fn train_test_split(
    y: &[usize],
    sha256: &[String],
    n_classes: usize,
    test_size: f64,
    seed: u64,
) -> Result<Split> {
    if !(test_size > 0.0 && test_size < 1.0) {
        bail!("--test-size must be strictly between 0 and 1, got {test_size}");
    }
    let all: Vec<usize> = (0..y.len()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut train = Vec::new();
    let mut test = Vec::new();
    for mut cg in per_class(groups(y, sha256, &all), n_classes) {
        cg.shuffle(&mut rng);
        let n = cg.len();
        let mut n_test = (test_size * n as f64).round() as usize;
        if n >= 2 {
            n_test = n_test.clamp(1, n - 1);
        } else {
            n_test = 0;
        }
        for (i, g) in cg.into_iter().enumerate() {
            if i < n_test {
                test.extend(g.rows);
            } else {
                train.extend(g.rows);
            }
        }
    }
    train.sort_unstable();
    test.sort_unstable();
    Ok(Split { train, test })
}

/// Stratified k-fold over `rows` (row indices into the cache). Returns, for each position in
/// `rows`, its fold number in `0..k`. Hash groups are dealt to folds whole, class by class,
/// continuing round-robin across classes so fold sizes stay balanced.
///
/// Every class must have at least `k` distinct images among `rows`; otherwise some training fold
/// would have no example of it, and this is reported as an error that names the class.
pub fn stratified_folds(
    y: &[usize],
    sha256: &[String],
    rows: &[usize],
    class_names: &[String],
    k: usize,
    seed: u64,
) -> Result<Vec<usize>> {
    if k < 2 {
        bail!("--folds must be at least 2, got {k}");
    }
    let mut pos = vec![usize::MAX; y.len()];
    for (p, &r) in rows.iter().enumerate() {
        pos[r] = p;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut fold_of = vec![0usize; rows.len()];
    let mut next = 0usize;
    for (c, mut cg) in per_class(groups(y, sha256, rows), class_names.len())
        .into_iter()
        .enumerate()
    {
        if cg.is_empty() {
            continue;
        }
        if cg.len() < 2 {
            bail!(
                "class {:?} has {} distinct training image(s): cross-validation needs at least 2 \
                 per class (add images, or lower --test-size so fewer are held out)",
                class_names[c],
                cg.len()
            );
        }
        if cg.len() < k {
            bail!(
                "class {:?} has {} distinct training image(s), fewer than the {} folds: \
                 use --folds {} or fewer, or add images to that class",
                class_names[c],
                cg.len(),
                k,
                cg.len().max(2)
            );
        }
        cg.shuffle(&mut rng);
        for g in cg {
            for r in g.rows {
                fold_of[pos[r]] = next % k;
            }
            next += 1;
        }
    }
    Ok(fold_of)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("h{i}")).collect()
    }

    #[test]
    fn split_is_stratified_seeded_and_disjoint() {
        let y: Vec<usize> = (0..100).map(|i| i % 3).collect();
        let h = hashes(100);
        let a = train_test_split(&y, &h, 3, 0.2, 7).unwrap();
        let b = train_test_split(&y, &h, 3, 0.2, 7).unwrap();
        let c = train_test_split(&y, &h, 3, 0.2, 8).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.test, c.test);
        assert_eq!(a.train.len() + a.test.len(), 100);
        assert!(a.train.iter().all(|r| !a.test.contains(r)));
        for k in 0..3 {
            let n = a.test.iter().filter(|&&r| y[r] == k).count();
            let total = y.iter().filter(|&&v| v == k).count();
            assert_eq!(n, (0.2 * total as f64).round() as usize);
        }
    }

    #[test]
    fn duplicates_never_straddle_split_or_folds() {
        // 60 rows, each image present twice (rows 2i and 2i+1 share a hash).
        let y: Vec<usize> = (0..60).map(|i| (i / 2) % 2).collect();
        let h: Vec<String> = (0..60).map(|i| format!("h{}", i / 2)).collect();
        for seed in 0..20 {
            let s = train_test_split(&y, &h, 2, 0.3, seed).unwrap();
            for i in 0..30 {
                assert_eq!(
                    s.test.contains(&(2 * i)),
                    s.test.contains(&(2 * i + 1)),
                    "seed {seed}: duplicate pair {i} straddles the split"
                );
            }
            let names = vec!["a".to_string(), "b".to_string()];
            let folds = stratified_folds(&y, &h, &s.train, &names, 3, seed).unwrap();
            for (p, &r) in s.train.iter().enumerate() {
                if let Some(q) = s.train.iter().position(|&o| o != r && h[o] == h[r]) {
                    assert_eq!(folds[p], folds[q]);
                }
            }
        }
    }

    #[test]
    fn folds_are_stratified_and_balanced() {
        let y: Vec<usize> = (0..50).map(|i| usize::from(i >= 30)).collect();
        let h = hashes(50);
        let rows: Vec<usize> = (0..50).collect();
        let names = vec!["a".to_string(), "b".to_string()];
        let f = stratified_folds(&y, &h, &rows, &names, 5, 1).unwrap();
        for k in 0..5 {
            let a = (0..50).filter(|&i| f[i] == k && y[i] == 0).count();
            let b = (0..50).filter(|&i| f[i] == k && y[i] == 1).count();
            assert_eq!((a, b), (6, 4), "fold {k}");
        }
    }

    #[test]
    fn class_smaller_than_folds_is_a_clear_error() {
        let y = vec![0, 0, 0, 0, 0, 0, 1, 1];
        let h = hashes(8);
        let rows: Vec<usize> = (0..8).collect();
        let names = vec!["big".to_string(), "tiny".to_string()];
        let e = stratified_folds(&y, &h, &rows, &names, 5, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"tiny\"") && e.contains("--folds 2"), "{e}");
    }

    #[test]
    fn bad_test_size_is_rejected() {
        assert!(train_test_split(&[0, 1], &hashes(2), 2, 1.0, 0).is_err());
        assert!(train_test_split(&[0, 1], &hashes(2), 2, 0.0, 0).is_err());
    }
}
