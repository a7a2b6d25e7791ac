//! Probability calibration of SVM decision values.
//!
//! **The prediction rule.** An SVM head predicts the class with the largest decision value:
//! that is what cross-validation scores, and `eval` and `predict` apply the same rule. The
//! probabilities are a monotone function of the same scores, so their argmax (and their
//! ranking, used for top-k) is the decision-value argmax by construction:
//!
//!   P(class k | x) = softmax_k(t · s(x)),  t ≥ 0 fitted on out-of-fold CV decision values,
//!
//! one shared slope `t` ("temperature scaling", Guo et al. 2017) chosen to minimise the
//! multinomial log-loss (`Temperature`). A degenerate fit (best t = 0, which would make every
//! class equally probable and flatten the ranking, or a non-finite result) is detected, replaced
//! by t = 1 (the plain softmax of the decision values, so the ranking survives), recorded in
//! head.json and printed by `train` and `eval`.
//!
//! **Why not per-class Platt sigmoids** (LIBSVM's `-b 1`, and `linfa::composing::platt_scaling`,
//! which computes the same per-class fit as `Platt` below): measured on 5,000 MNIST digits with
//! EfficientNet-Lite0 codes (`train --head linear-svm --seed 42 --test-size 0.2`), three of the
//! ten one-vs-rest Platt fits came out with slope a = 0 (a constant 0.10 whatever the score),
//! and the argmax of the renormalised Platt probabilities gave held-out accuracy 0.871 where
//! the decision values (what CV had measured, 0.952) gave 0.951. Per-class sigmoids change the
//! ranking of the classes; one shared slope cannot. `Platt` is kept to read version-1 heads,
//! whose per-class slopes are converted to one shared slope on load (`Temperature::from_platt`).

use serde::{Deserialize, Serialize};

/// Softmax of scaled decision values: `P(k | s) = exp(t s_k) / Σ_j exp(t s_j)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Temperature {
    /// The shared slope `t` (inverse temperature), `>= 0`.
    pub slope: f64,
    /// Mean multinomial log-loss of the fitted probabilities on the scores they were fitted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_loss: Option<f64>,
    /// What the slope was fitted on.
    #[serde(default = "default_fitted_on")]
    pub fitted_on: String,
    /// Why the fit is not a regular one (`None` for a regular fit), e.g. "slope 0: the
    /// out-of-fold scores carry no information; probabilities are uniform".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degenerate: Option<String>,
}

fn default_fitted_on() -> String {
    OUT_OF_FOLD.into()
}

const OUT_OF_FOLD: &str = "out-of-fold CV decision values";

/// Mean multinomial log-loss of softmax(t · s) and its first two derivatives in `t`.
fn loss_and_derivatives(scores: &ndarray::Array2<f64>, y: &[usize], t: f64) -> (f64, f64, f64) {
    let (mut l, mut g, mut h) = (0.0, 0.0, 0.0);
    for (row, &yi) in scores.outer_iter().zip(y) {
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let mut z = 0.0;
        let mut e1 = 0.0; // E[s]
        let mut e2 = 0.0; // E[s²]
        for &v in row.iter() {
            let w = (t * (v - m)).exp();
            z += w;
            e1 += w * v;
            e2 += w * v * v;
        }
        e1 /= z;
        e2 /= z;
        l += z.ln() + t * m - t * row[yi];
        g += e1 - row[yi];
        h += e2 - e1 * e1;
    }
    let n = y.len().max(1) as f64;
    (l / n, g / n, h / n)
}

impl Temperature {
    /// Fit the slope on decision values `scores [n, classes]` and true classes `y` by Newton's
    /// method on the (convex) mean log-loss, projected onto `t >= 0`.
    pub fn fit(scores: &ndarray::Array2<f64>, y: &[usize]) -> Temperature {
        if scores.is_empty() || scores.iter().any(|v| !v.is_finite()) {
            return Temperature {
                slope: 1.0,
                log_loss: None,
                fitted_on: OUT_OF_FOLD.into(),
                degenerate: Some(
                    "no finite out-of-fold scores to fit on; slope 1 (softmax of the scores)"
                        .into(),
                ),
            };
        }
        let mut t: f64 = 1.0;
        let (mut l, _, _) = loss_and_derivatives(scores, y, t);
        for _ in 0..100 {
            let (_, g, h) = loss_and_derivatives(scores, y, t);
            if g.abs() < 1e-9 {
                break;
            }
            // Newton step where the curvature is usable, else a gradient step.
            let mut step = if h > 1e-12 {
                -g / h
            } else {
                -g.signum() * t.max(1.0)
            };
            let mut moved = false;
            for _ in 0..60 {
                let nt = (t + step).max(0.0);
                let (nl, _, _) = loss_and_derivatives(scores, y, nt);
                if nl < l {
                    moved = (nt - t).abs() > 1e-15;
                    t = nt;
                    l = nl;
                    break;
                }
                step /= 2.0;
            }
            if !moved {
                break;
            }
        }
        let degenerate = if !(t.is_finite() && l.is_finite()) {
            t = 1.0;
            l = loss_and_derivatives(scores, y, t).0;
            Some(
                "the fit did not converge to a finite slope; slope 1 (softmax of the scores)"
                    .into(),
            )
        } else if t < 1e-9 {
            // Uniform probabilities would tie every class and hide the decision values'
            // ranking; keep the ranking (slope 1) and say so.
            t = 1.0;
            l = loss_and_derivatives(scores, y, t).0;
            Some(
                "the best slope is 0 (the out-of-fold scores carry no information about the \
                 class); probabilities are the plain softmax of the decision values (slope 1), \
                 uncalibrated"
                    .into(),
            )
        } else {
            None
        };
        Temperature {
            slope: t,
            log_loss: Some(l),
            fitted_on: OUT_OF_FOLD.into(),
            degenerate,
        }
    }

    /// One shared slope from version-1 per-class Platt sigmoids `1 / (1 + exp(a s + b))`: the
    /// median of the informative slopes `−a` (those with `a < 0`), so that a version-1 head
    /// predicts by its decision values, as CV measured it.
    pub fn from_platt(platt: &[Platt]) -> Temperature {
        let mut slopes: Vec<f64> = platt
            .iter()
            .map(|p| -p.a)
            .filter(|s| s.is_finite() && *s > 1e-9)
            .collect();
        slopes.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
        let flat = platt.len() - slopes.len();
        let (slope, mut note) = if slopes.is_empty() {
            (
                1.0,
                Some("version-1 Platt calibration: no informative slope; slope 1".to_string()),
            )
        } else {
            (slopes[slopes.len() / 2], None)
        };
        if flat > 0 && note.is_none() {
            note = Some(format!(
                "version-1 Platt calibration had {flat} flat class(es) (slope 0); replaced by \
                 the median slope of the others"
            ));
        }
        Temperature {
            slope,
            log_loss: None,
            fitted_on: "the median slope of a version-1 head's per-class Platt sigmoids".into(),
            degenerate: note,
        }
    }

    /// Probabilities `[n, classes]` (rows sum to one) from decision values.
    pub fn apply(&self, scores: &ndarray::Array2<f64>) -> ndarray::Array2<f64> {
        softmax_rows(scores, self.slope)
    }
}

/// Row-wise softmax of `t · scores`.
pub fn softmax_rows(scores: &ndarray::Array2<f64>, t: f64) -> ndarray::Array2<f64> {
    let mut p = scores.clone();
    for mut row in p.axis_iter_mut(ndarray::Axis(0)) {
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        row.mapv_inplace(|v| (t * (v - m)).exp());
        let s = row.sum();
        row /= s;
    }
    p
}

/// A version-1 per-class Platt sigmoid, `P(y=1|f) = 1 / (1 + exp(A f + B))`, fitted by the
/// Newton method with backtracking of Lin, Lin & Weng (2007) (the algorithm LIBSVM uses),
/// including Platt's target smoothing. Read from version-1 heads; see the module doc for why
/// new heads use `Temperature`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Platt {
    pub a: f64,
    pub b: f64,
}

impl Platt {
    /// Fit on decision values `f` and binary labels `y` (true = positive).
    pub fn fit(f: &[f64], y: &[bool]) -> Platt {
        let prior1 = y.iter().filter(|&&v| v).count() as f64;
        let prior0 = y.len() as f64 - prior1;
        let hi = (prior1 + 1.0) / (prior1 + 2.0);
        let lo = 1.0 / (prior0 + 2.0);
        let t: Vec<f64> = y.iter().map(|&v| if v { hi } else { lo }).collect();
        let (max_iter, min_step, sigma, eps) = (100, 1e-10, 1e-12, 1e-5);
        let mut a = 0.0;
        let mut b = ((prior0 + 1.0) / (prior1 + 1.0)).ln();
        let objective = |a: f64, b: f64| -> f64 {
            f.iter()
                .zip(&t)
                .map(|(&fi, &ti)| {
                    let fapb = fi * a + b;
                    if fapb >= 0.0 {
                        ti * fapb + (1.0 + (-fapb).exp()).ln()
                    } else {
                        (ti - 1.0) * fapb + (1.0 + fapb.exp()).ln()
                    }
                })
                .sum()
        };
        let mut fval = objective(a, b);
        for _ in 0..max_iter {
            let (mut h11, mut h22, mut h21, mut g1, mut g2) = (sigma, sigma, 0.0, 0.0, 0.0);
            for (&fi, &ti) in f.iter().zip(&t) {
                let fapb = fi * a + b;
                let (p, q) = if fapb >= 0.0 {
                    let e = (-fapb).exp();
                    (e / (1.0 + e), 1.0 / (1.0 + e))
                } else {
                    let e = fapb.exp();
                    (1.0 / (1.0 + e), e / (1.0 + e))
                };
                let d2 = p * q;
                h11 += fi * fi * d2;
                h22 += d2;
                h21 += fi * d2;
                let d1 = ti - p;
                g1 += fi * d1;
                g2 += d1;
            }
            if g1.abs() < eps && g2.abs() < eps {
                break;
            }
            let det = h11 * h22 - h21 * h21;
            let da = -(h22 * g1 - h21 * g2) / det;
            let db = -(-h21 * g1 + h11 * g2) / det;
            let gd = g1 * da + g2 * db;
            let mut step = 1.0;
            let mut moved = false;
            while step >= min_step {
                let (na, nb) = (a + step * da, b + step * db);
                let nf = objective(na, nb);
                if nf < fval + 1e-4 * step * gd {
                    a = na;
                    b = nb;
                    fval = nf;
                    moved = true;
                    break;
                }
                step /= 2.0;
            }
            if !moved {
                break;
            }
        }
        Platt { a, b }
    }

    pub fn prob(&self, f: f64) -> f64 {
        let fapb = f * self.a + self.b;
        if fapb >= 0.0 {
            let e = (-fapb).exp();
            e / (1.0 + e)
        } else {
            1.0 / (1.0 + fapb.exp())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array2};

    #[test]
    fn temperature_keeps_the_decision_argmax_and_calibrates() {
        // Three classes; the true class gets score 1 + noise, others noise. Half the rows are
        // ambiguous, so the fitted probabilities must be far from 0/1.
        let n = 300;
        let mut s = Array2::zeros((n, 3));
        let mut y = Vec::new();
        for i in 0..n {
            let k = i % 3;
            for j in 0..3 {
                s[[i, j]] = ((i * 7 + j * 13) % 17) as f64 / 17.0 - 0.5;
            }
            s[[i, k]] += if i % 2 == 0 { 1.0 } else { 0.2 };
            y.push(k);
        }
        let t = Temperature::fit(&s, &y);
        assert!(t.degenerate.is_none() && t.slope > 0.0, "{t:?}");
        // The slope minimises the log-loss: small moves either way do not lower it.
        let l = |v: f64| loss_and_derivatives(&s, &y, v).0;
        assert!(l(t.slope) <= l(t.slope * 1.01) && l(t.slope) <= l(t.slope * 0.99));
        let p = t.apply(&s);
        for (pr, sr) in p.outer_iter().zip(s.outer_iter()) {
            assert!((pr.sum() - 1.0).abs() < 1e-12);
            let am = |v: ndarray::ArrayView1<f64>| {
                (0..3).fold(0, |b, j| if v[j] > v[b] { j } else { b })
            };
            assert_eq!(am(pr), am(sr));
        }
    }

    #[test]
    fn uninformative_scores_give_a_reported_degenerate_fit() {
        // Scores that point to the wrong class as often as to the right one.
        let s = array![[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]];
        let y = vec![0, 0, 1, 1];
        // The log-loss is smallest at slope 0 ...
        let l = |v: f64| loss_and_derivatives(&s, &y, v).0;
        assert!(l(0.0) < l(0.1) && l(0.1) < l(1.0));
        // ... which would tie every class; the fit is reported and keeps the ranking.
        let t = Temperature::fit(&s, &y);
        assert_eq!(t.slope, 1.0, "{t:?}");
        assert!(
            t.degenerate.as_deref().unwrap().contains("slope is 0"),
            "{t:?}"
        );
        let p = t.apply(&s);
        assert!(p[[0, 0]] > p[[0, 1]] && p[[1, 1]] > p[[1, 0]]);
    }

    #[test]
    fn version_1_platt_slopes_become_one_shared_slope() {
        let pl = [
            Platt { a: -2.0, b: 0.1 },
            Platt { a: 0.0, b: 2.2 },
            Platt { a: -3.0, b: 0.0 },
            Platt { a: -4.0, b: 0.3 },
        ];
        let t = Temperature::from_platt(&pl);
        assert_eq!(t.slope, 3.0);
        assert!(t.degenerate.unwrap().contains("1 flat"));
    }

    #[test]
    fn larger_scores_mean_higher_probability() {
        // Overlapping scores: positives centred at +1, negatives at -1.
        let mut f = Vec::new();
        let mut y = Vec::new();
        for i in 0..200 {
            let noise = ((i * 37 % 100) as f64 / 50.0) - 1.0;
            f.push(1.0 + noise);
            y.push(true);
            f.push(-1.0 + noise);
            y.push(false);
        }
        let p = Platt::fit(&f, &y);
        assert!(p.a < 0.0, "{p:?}");
        assert!(p.prob(2.0) > 0.9 && p.prob(-2.0) < 0.1);
        assert!((p.prob(0.0) - 0.5).abs() < 0.05);
        // Calibrated: the mean predicted probability on the data is close to the positive rate.
        let mean: f64 = f.iter().map(|&v| p.prob(v)).sum::<f64>() / f.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
    }
}
