//! Classification metrics from true labels and predicted class probabilities.

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClassMetrics {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metrics {
    pub n: usize,
    /// Rows predicted right (`accuracy` = `correct / n`).
    #[serde(default)]
    pub correct: usize,
    pub accuracy: f64,
    /// 95% Wilson score interval of the accuracy over these `n` rows: how far the held-out
    /// figure may be from the accuracy on images like them, from the number of images alone.
    #[serde(default)]
    pub accuracy_interval: (f64, f64),
    /// Mean recall over the classes that have support.
    pub balanced_accuracy: f64,
    pub macro_f1: f64,
    /// (k, accuracy) for k = 1, 3, 5 (those not above the number of classes).
    pub top_k_accuracy: Vec<(usize, f64)>,
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

/// The 95% Wilson score interval of a proportion `k / n` (`(0, 1)` when `n` is 0). Unlike the
/// normal approximation it stays inside [0, 1] and keeps a sensible width at 0 or `n` successes,
/// which small held-out sets hit often.
pub fn wilson_interval(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    const Z: f64 = 1.959_963_984_540_054;
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = Z * Z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Index of the largest value (first on ties).
pub fn argmax_f32(v: impl IntoIterator<Item = f32>) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, x) in v.into_iter().enumerate() {
        if x > best.1 {
            best = (i, x);
        }
    }
    best.0
}

/// Is `y` among the `k` largest entries of `p`? Ties count against (strictly greater values).
fn in_top_k(p: &[f32], y: usize, k: usize) -> bool {
    p.iter().filter(|&&v| v > p[y]).count() < k
}

pub fn compute(classes: &[String], y: &[usize], proba: ArrayView2<f32>) -> Metrics {
    let c = classes.len();
    let n = y.len();
    let mut confusion = vec![vec![0usize; c]; c];
    let rows: Vec<Vec<f32>> = proba.outer_iter().map(|r| r.to_vec()).collect();
    for (t, p) in y.iter().zip(&rows) {
        confusion[*t][argmax_f32(p.iter().copied())] += 1;
    }
    let correct: usize = (0..c).map(|k| confusion[k][k]).sum();
    let mut per_class = Vec::with_capacity(c);
    let mut recalls = Vec::new();
    let mut f1s = Vec::new();
    for k in 0..c {
        let tp = confusion[k][k] as f64;
        let support: usize = confusion[k].iter().sum();
        let predicted: usize = (0..c).map(|t| confusion[t][k]).sum();
        let precision = if predicted > 0 {
            tp / predicted as f64
        } else {
            0.0
        };
        let recall = if support > 0 {
            tp / support as f64
        } else {
            0.0
        };
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        if support > 0 {
            recalls.push(recall);
            f1s.push(f1);
        }
        per_class.push(ClassMetrics {
            class: classes[k].clone(),
            precision,
            recall,
            f1,
            support,
        });
    }
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let top_k_accuracy = [1usize, 3, 5]
        .iter()
        .filter(|&&k| k == 1 || k < c)
        .map(|&k| {
            let hits = y
                .iter()
                .zip(&rows)
                .filter(|(t, p)| in_top_k(p, **t, k))
                .count();
            (k, hits as f64 / n.max(1) as f64)
        })
        .collect();
    Metrics {
        n,
        correct,
        accuracy: correct as f64 / n.max(1) as f64,
        accuracy_interval: wilson_interval(correct, n),
        balanced_accuracy: mean(&recalls),
        macro_f1: mean(&f1s),
        top_k_accuracy,
        per_class,
        confusion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_interval_matches_published_values() {
        // Newcombe (1998), Statistics in Medicine 17, table I: 81/263 -> 0.2553-0.3662,
        // 15/148 -> 0.0624-0.1605, 0/10 -> 0-0.2775, 1/29 -> 0.0061-0.1718.
        for (k, n, lo, hi) in [
            (81, 263, 0.2553, 0.3662),
            (15, 148, 0.0624, 0.1605),
            (0, 10, 0.0, 0.2775),
            (1, 29, 0.0061, 0.1718),
        ] {
            let (a, b) = wilson_interval(k, n);
            assert!(
                (a - lo).abs() < 6e-5 && (b - hi).abs() < 6e-5,
                "{k}/{n}: {a} {b}"
            );
        }
        assert_eq!(wilson_interval(0, 0), (0.0, 1.0));
        let (a, b) = wilson_interval(10, 10);
        assert!(
            (b - 1.0).abs() < 1e-12 && (a - 0.7225).abs() < 6e-5,
            "10/10: {a} {b}"
        );
    }
    use ndarray::array;

    #[test]
    fn hand_checked_example() {
        let classes: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        // true: a a a b c ; predicted: a a b b a ; second choices make top-3 always right.
        let y = vec![0, 0, 0, 1, 2];
        let p = array![
            [0.8f32, 0.1, 0.1],
            [0.6, 0.3, 0.1],
            [0.3, 0.6, 0.1],
            [0.2, 0.7, 0.1],
            [0.5, 0.1, 0.4],
        ];
        let m = compute(&classes, &y, p.view());
        assert_eq!(
            m.confusion,
            vec![vec![2, 1, 0], vec![0, 1, 0], vec![1, 0, 0]]
        );
        assert!((m.accuracy - 0.6).abs() < 1e-12);
        // recalls: a 2/3, b 1, c 0 -> balanced 5/9
        assert!((m.balanced_accuracy - 5.0 / 9.0).abs() < 1e-12);
        assert_eq!(m.per_class[0].support, 3);
        assert!((m.per_class[0].precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.per_class[1].precision - 0.5).abs() < 1e-12);
        assert!((m.per_class[1].f1 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(m.per_class[2].f1, 0.0);
        assert_eq!(m.top_k_accuracy, vec![(1, 0.6)]);
    }

    #[test]
    fn top_k() {
        assert!(in_top_k(&[0.1, 0.2, 0.3, 0.4], 1, 3));
        assert!(!in_top_k(&[0.1, 0.2, 0.3, 0.4], 0, 3));
    }
}
