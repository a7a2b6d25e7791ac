//! Platt scaling: map an SVM decision value `f` to `P(y=1|f) = 1 / (1 + exp(A f + B))`, fitted
//! by the Newton method with backtracking of Lin, Lin & Weng (2007), "A note on Platt's
//! probabilistic outputs for support vector machines" (the algorithm LIBSVM uses), including
//! Platt's target smoothing.

use serde::{Deserialize, Serialize};

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
