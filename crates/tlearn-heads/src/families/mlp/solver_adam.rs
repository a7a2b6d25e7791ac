//! The dense network's training loop: mini-batch Adam on the softmax cross-entropy of
//! `codes → Dense(H, ReLU) → dropout → Dense(classes)`, with weight decay on the two weight
//! matrices and early stopping on a stratified inner validation split.
//!
//! It follows scikit-learn's `MLPClassifier(solver="adam")` step for step, so the two can be
//! compared on the same grid: Glorot-uniform initial weights (`sqrt(6 / (fan_in + fan_out))`),
//! the gradient of a batch `(Σ_batch ∇loss + weight_decay · W) / rows`, Adam with
//! `β = (0.9, 0.999)`, `ε = 1e-8` and the bias-corrected step, shuffled batches every epoch,
//! stopping after `patience` epochs without an improvement. Three differences, each measured on
//! Tux Paint (20 seeds) and Fashion-MNIST 3,000 in `bench/RESULTS.md` ("The dense head against
//! MLPClassifier"):
//! - the stopping test reads the validation *loss* (scikit-learn reads the validation accuracy,
//!   too coarse on a validation part of a dozen images, and stops after about 20 epochs of
//!   one step each on such a set, 5.6 points below);
//! - an improvement counts when it is at least 1% of the best loss so far (scikit-learn: 1e-4
//!   absolute, which a slowly falling loss crosses for 200 epochs; 1% keeps the accuracy and
//!   halves the epochs);
//! - the best epoch's weights are kept.
//!
//! Every random draw (initial weights, inner split, batch order, dropout masks) comes from one
//! ChaCha8 stream seeded by the fit's seed, and every product is an ndarray `dot` whose
//! summation order does not depend on threads: the same seed gives the same weights bit for bit.

use super::hyperparams::MlpValidParams;
use crate::error::HeadError;
use crate::fit_info::Convergence;
use ndarray::{Array1, Array2, ArrayView2, Axis, Zip};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Improvement of the stopping loss that counts as one, relative to the best loss so far.
const REL_TOL: f64 = 1e-2;
const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPS: f32 = 1e-8;

/// The network's parameters, each in the layout of an affine layer (`[out, in]`).
#[derive(Clone)]
pub(crate) struct Weights {
    pub w1: Array2<f32>,
    pub b1: Array1<f32>,
    pub w2: Array2<f32>,
    pub b2: Array1<f32>,
}

impl Weights {
    fn glorot(d: usize, h: usize, k: usize, rng: &mut ChaCha8Rng) -> Weights {
        let mut uniform = |out: usize, inp: usize| {
            let bound = (6.0 / (inp + out) as f64).sqrt() as f32;
            Array2::from_shape_simple_fn((out, inp), || rng.gen_range(-bound..bound))
        };
        let w1 = uniform(h, d);
        let b1 = uniform(h, 1).remove_axis(Axis(1));
        let w2 = uniform(k, h);
        let b2 = uniform(k, 1).remove_axis(Axis(1));
        Weights { w1, b1, w2, b2 }
    }

    fn zeros_like(o: &Weights) -> Weights {
        Weights {
            w1: Array2::zeros(o.w1.raw_dim()),
            b1: Array1::zeros(o.b1.raw_dim()),
            w2: Array2::zeros(o.w2.raw_dim()),
            b2: Array1::zeros(o.b2.raw_dim()),
        }
    }

    /// Hidden activations `relu(x · W1ᵀ + b1)` `[n, H]`.
    pub fn hidden(&self, x: ArrayView2<f32>) -> Array2<f32> {
        hidden(x, &self.w1, &self.b1)
    }

    /// Logits `[n, classes]`.
    pub fn logits(&self, x: ArrayView2<f32>) -> Array2<f32> {
        logits(x, &self.w1, &self.b1, &self.w2, &self.b2)
    }

    fn all_finite(&self) -> bool {
        [&self.w1, &self.w2].iter().all(|w| w.iter().all(|v| v.is_finite()))
            && [&self.b1, &self.b2]
                .iter()
                .all(|b| b.iter().all(|v| v.is_finite()))
    }
}

/// Hidden activations `relu(x · W1ᵀ + b1)` `[n, H]`.
pub(crate) fn hidden(x: ArrayView2<f32>, w1: &Array2<f32>, b1: &Array1<f32>) -> Array2<f32> {
    let mut h = x.dot(&w1.t()) + b1;
    h.mapv_inplace(|v| v.max(0.0));
    h
}

/// The network's logits `relu(x · W1ᵀ + b1) · W2ᵀ + b2` `[n, classes]`, in float32: the one
/// definition of its decision values (training, CV, eval, predict).
pub(crate) fn logits(
    x: ArrayView2<f32>,
    w1: &Array2<f32>,
    b1: &Array1<f32>,
    w2: &Array2<f32>,
    b2: &Array1<f32>,
) -> Array2<f32> {
    hidden(x, w1, b1).dot(&w2.t()) + b2
}

/// In place: each row of logits becomes its softmax probabilities.
fn softmax_rows(z: &mut Array2<f32>) {
    for mut r in z.rows_mut() {
        let m = r.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        r.mapv_inplace(|v| (v - m).exp());
        let s = r.sum();
        r /= s;
    }
}

/// Mean cross-entropy of rows `x` with classes `y`, computed in f64.
fn mean_loss(w: &Weights, x: ArrayView2<f32>, y: &[usize]) -> f64 {
    let z = w.logits(x);
    let mut total = 0.0f64;
    for (r, &t) in z.rows().into_iter().zip(y) {
        let m = r.fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let lse = m + r.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
        total += lse - r[t] as f64;
    }
    total / y.len().max(1) as f64
}

/// Adam's moment estimates of one parameter array and its update.
fn adam_step<D: ndarray::Dimension>(
    p: &mut ndarray::Array<f32, D>,
    g: &ndarray::Array<f32, D>,
    m: &mut ndarray::Array<f32, D>,
    v: &mut ndarray::Array<f32, D>,
    step: f32,
) {
    Zip::from(p)
        .and(g)
        .and(m)
        .and(v)
        .for_each(|p, &g, m, v| {
            *m = BETA1 * *m + (1.0 - BETA1) * g;
            *v = BETA2 * *v + (1.0 - BETA2) * g * g;
            *p -= step * *m / (v.sqrt() + EPS);
        });
}

/// The gradient of one batch's objective, `Σ_batch cross-entropy + weight_decay / 2 · |W|²`
/// (both weight matrices), divided by the batch's rows, and the batch's summed cross-entropy.
/// With `dropout = Some((rng, keep))` each hidden unit of each row is kept with probability
/// `keep` and scaled by `1 / keep` (inverted dropout).
fn gradient(
    w: &Weights,
    xb: ArrayView2<f32>,
    yb: &[usize],
    decay: f32,
    dropout: Option<(&mut ChaCha8Rng, f32)>,
) -> (Weights, f64) {
    let b = yb.len();
    // Forward: hidden ReLU, inverted dropout, logits, softmax.
    let mut hid = w.hidden(xb);
    let keep = match dropout {
        Some((rng, keep)) => {
            hid.mapv_inplace(|v| {
                if rng.gen::<f32>() < keep {
                    v / keep
                } else {
                    0.0
                }
            });
            keep
        }
        None => 1.0,
    };
    let mut delta2 = hid.dot(&w.w2.t()) + &w.b2;
    softmax_rows(&mut delta2);
    let mut loss = 0.0f64;
    for (i, &c) in yb.iter().enumerate() {
        loss -= (delta2[[i, c]].max(1e-30) as f64).ln();
        // Backward: δ2 = p − onehot.
        delta2[[i, c]] -= 1.0;
    }
    // δ1 = δ2 · W2, zero where the unit was 0 (ReLU off or dropped), scaled as the kept units.
    let mut delta1 = delta2.dot(&w.w2);
    Zip::from(&mut delta1).and(&hid).for_each(|g, &a| {
        *g = if a <= 0.0 { 0.0 } else { *g / keep };
    });
    let inv_b = 1.0 / b as f32;
    let grad = Weights {
        w1: (delta1.t().dot(&xb) + &(&w.w1 * decay)) * inv_b,
        b1: delta1.sum_axis(Axis(0)) * inv_b,
        w2: (delta2.t().dot(&hid) + &(&w.w2 * decay)) * inv_b,
        b2: delta2.sum_axis(Axis(0)) * inv_b,
    };
    (grad, loss)
}

/// Stratified inner split of row indices `0..y.len()`: about `fraction` of each class (at least
/// one row of a class with two or more) for validation, the rest for training. Empty validation
/// when `fraction` is 0.
fn inner_split(
    y: &[usize],
    k: usize,
    fraction: f64,
    rng: &mut ChaCha8Rng,
) -> (Vec<usize>, Vec<usize>) {
    let mut train = Vec::new();
    let mut valid = Vec::new();
    for c in 0..k {
        let mut rows: Vec<usize> = (0..y.len()).filter(|&i| y[i] == c).collect();
        rows.shuffle(rng);
        let n_valid = if fraction > 0.0 && rows.len() >= 2 {
            ((fraction * rows.len() as f64).round() as usize).clamp(1, rows.len() - 1)
        } else {
            0
        };
        valid.extend_from_slice(&rows[..n_valid]);
        train.extend_from_slice(&rows[n_valid..]);
    }
    train.sort_unstable();
    valid.sort_unstable();
    (train, valid)
}

/// Rows `idx` of `x` as a new array, and their classes.
fn take(x: ArrayView2<f32>, y: &[usize], idx: &[usize]) -> (Array2<f32>, Vec<usize>) {
    (x.select(Axis(0), idx), idx.iter().map(|&i| y[i]).collect())
}

/// Train the network on rows `x` `[n, d]` with classes `y` in `0..k`.
pub(crate) fn fit(
    x: ArrayView2<f32>,
    y: &[usize],
    k: usize,
    p: &MlpValidParams,
) -> Result<(Weights, Convergence), HeadError> {
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let (d, h) = (x.ncols(), p.hidden);
    let mut w = Weights::glorot(d, h, k, &mut rng);
    let (train_idx, valid_idx) = inner_split(y, k, p.validation_fraction, &mut rng);
    let (xt, yt) = take(x, y, &train_idx);
    let (xv, yv) = take(x, y, &valid_idx);
    let n = yt.len();
    let batch = p.batch_size.min(n);

    let (mut gm, mut gv) = (Weights::zeros_like(&w), Weights::zeros_like(&w));
    let mut order: Vec<usize> = (0..n).collect();
    let keep = 1.0 - p.dropout as f32;
    let decay = p.weight_decay as f32;
    let mut t = 0i32;
    let mut best = (f64::INFINITY, w.clone());
    let mut stale = 0usize;
    let mut epochs = 0usize;
    let mut stopped = false;
    for _ in 0..p.max_epochs {
        epochs += 1;
        order.shuffle(&mut rng);
        let mut epoch_loss = 0.0f64;
        for chunk in order.chunks(batch) {
            let xb = xt.select(Axis(0), chunk);
            let yb: Vec<usize> = chunk.iter().map(|&r| yt[r]).collect();
            let dropout = (p.dropout > 0.0).then_some((&mut rng, keep));
            let (grad, loss) = gradient(&w, xb.view(), &yb, decay, dropout);
            epoch_loss += loss;
            t += 1;
            let step = (p.learning_rate as f32) * (1.0 - BETA2.powi(t)).sqrt()
                / (1.0 - BETA1.powi(t));
            adam_step(&mut w.w1, &grad.w1, &mut gm.w1, &mut gv.w1, step);
            adam_step(&mut w.b1, &grad.b1, &mut gm.b1, &mut gv.b1, step);
            adam_step(&mut w.w2, &grad.w2, &mut gm.w2, &mut gv.w2, step);
            adam_step(&mut w.b2, &grad.b2, &mut gm.b2, &mut gv.b2, step);
        }
        if !w.all_finite() {
            return Err(HeadError::Solver {
                head: "dense network",
                reason: format!(
                    "non-finite weights after {epochs} epochs (learning rate {} too large?)",
                    p.learning_rate
                ),
            });
        }
        // Early stopping: the validation loss when there is a validation part, else the
        // training loss of the epoch.
        let watched = if yv.is_empty() {
            epoch_loss / n as f64
        } else {
            mean_loss(&w, xv.view(), &yv)
        };
        // The first epoch always counts (`∞ - 1% of ∞` is NaN).
        if !best.0.is_finite() || watched < best.0 - REL_TOL * best.0.abs() {
            best.0 = watched;
            if !yv.is_empty() {
                best.1 = w.clone();
            }
            stale = 0;
        } else {
            stale += 1;
            if stale >= p.patience {
                stopped = true;
                break;
            }
        }
    }
    let weights = if yv.is_empty() { w } else { best.1 };
    Ok((
        weights,
        Convergence {
            iterations: epochs,
            converged: stopped,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_split_is_stratified_and_keeps_a_training_row_per_class() {
        let y: Vec<usize> = (0..40).map(|i| i % 4).chain([4, 4, 5]).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (tr, va) = inner_split(&y, 6, 0.2, &mut rng);
        assert_eq!(tr.len() + va.len(), y.len());
        for c in 0..4 {
            assert_eq!(va.iter().filter(|&&i| y[i] == c).count(), 2, "class {c}");
        }
        // Two rows: one each side; one row: training only.
        assert_eq!(va.iter().filter(|&&i| y[i] == 4).count(), 1);
        assert_eq!(va.iter().filter(|&&i| y[i] == 5).count(), 0);
        let (tr0, va0) = inner_split(&y, 6, 0.0, &mut rng);
        assert_eq!((tr0.len(), va0.len()), (y.len(), 0));
    }

    /// The analytic gradient of the batch loss (mean cross-entropy + weight decay / 2 / rows ·
    /// |W|²) agrees with central differences.
    #[test]
    fn gradient_matches_finite_differences() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (n, d, h, k) = (7, 5, 4, 3);
        let w = Weights::glorot(d, h, k, &mut rng);
        let x = Array2::from_shape_fn((n, d), |(i, j)| ((i * 3 + j * 5) % 7) as f32 * 0.3 - 0.9);
        let y: Vec<usize> = (0..n).map(|i| i % k).collect();
        let decay = 0.5f32;
        let objective = |w: &Weights| {
            mean_loss(w, x.view(), &y)
                + 0.5 * decay as f64 / n as f64
                    * (w.w1.iter().chain(w.w2.iter()))
                        .map(|&v| (v as f64).powi(2))
                        .sum::<f64>()
        };
        let (g, _) = gradient(&w, x.view(), &y, decay, None);
        let (g_w1, g_w2) = (g.w1, g.w2);
        let eps = 1e-3f32;
        for (r, c) in [(0, 0), (2, 3), (3, 1)] {
            let mut a = w.clone();
            let mut b = w.clone();
            a.w1[[r, c]] += eps;
            b.w1[[r, c]] -= eps;
            let num = (objective(&a) - objective(&b)) / (2.0 * eps as f64);
            assert!((num - g_w1[[r, c]] as f64).abs() < 2e-3, "w1 {num} vs {}", g_w1[[r, c]]);
        }
        for (r, c) in [(0, 0), (2, 3), (1, 2)] {
            let mut a = w.clone();
            let mut b = w.clone();
            a.w2[[r, c]] += eps;
            b.w2[[r, c]] -= eps;
            let num = (objective(&a) - objective(&b)) / (2.0 * eps as f64);
            assert!((num - g_w2[[r, c]] as f64).abs() < 2e-3, "w2 {num} vs {}", g_w2[[r, c]]);
        }
    }
}
