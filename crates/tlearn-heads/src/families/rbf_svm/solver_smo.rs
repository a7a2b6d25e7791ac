//! One-vs-rest RBF-kernel SVMs (C-SVC) solved by SMO with LIBSVM's second-order working-set
//! selection (Fan, Chen & Lin 2005) and its shrinking heuristic, on a Gram matrix computed once
//! per training set and shared by all classes. Cross-validation walks each gamma's C values in
//! ascending order and starts each fit from the previous C's dual solution
//! ([`fit_on_kernel`]'s warm start).
//!
//! Why not linfa-svm: it recomputes the n×n kernel element by element for every binary problem
//! (74% of the time in `KernelMethod::distance` by `perf`), ten times per fold for ten classes,
//! which made 5-fold CV of one (C, gamma) on 1,438 digits take ~5 s against scikit-learn's
//! fraction of a second. Here the Gram matrix comes from one matrix product.
//! The kernel matrix is dense (8·n² bytes), so this head is for small training sets.
//!
//! The binary solver; `classification` runs one per class on the shared kernel.

use ndarray::Array2;

pub(crate) struct Solution {
    pub(crate) alpha: Vec<f64>,
    pub(crate) rho: f64,
    pub(crate) iterations: usize,
    pub(crate) converged: bool,
}

/// `G_t = y_t Σ_s y_s α_s K_ts − 1` for the rows `rows` (the gradient of ½αᵀQα − eᵀα), over the
/// non-zero α only.
fn gradient_rows(k: &Array2<f64>, ys: &[f64], alpha: &[f64], rows: &[usize], g: &mut [f64]) {
    let nz: Vec<(usize, f64)> = alpha
        .iter()
        .enumerate()
        .filter(|(_, &a)| a > 0.0)
        .map(|(s, &a)| (s, ys[s] * a))
        .collect();
    for &t in rows {
        let kt = k.row(t);
        let kt = kt.as_slice().expect("standard layout");
        let mut acc = 0.0;
        for &(s, ya) in &nz {
            acc += ya * kt[s];
        }
        g[t] = ys[t] * acc - 1.0;
    }
}

/// Binary C-SVC on a precomputed kernel `k` with labels `y` (true = +1), LIBSVM's SMO with its
/// shrinking heuristic (`-h 1`): rows bounded at 0 or C whose gradient says they will stay
/// there leave the active set, so selection and gradient updates touch fewer rows; before
/// stopping, the gradient of the shrunk rows is rebuilt and optimality is checked on all rows.
/// `init`: the solution at a smaller C on the same kernel and labels, and C / C_prev. Both it
/// and it scaled by C / C_prev are feasible at C (0 ≤ α ≤ C, Σ y α = 0); SMO starts from the
/// one with the lower dual objective (the scaled one where the smaller C under-fitted and most
/// α sat at the bound, the unscaled one on a plateau where no α did) instead of from zero. The
/// stopping test is the same, so the optimum reached is the same within `eps`.
pub(crate) fn smo(
    k: &Array2<f64>,
    y: &[bool],
    c: f64,
    eps: f64,
    shrinking: bool,
    init: Option<(&[f64], f64)>,
) -> Solution {
    let n = y.len();
    let ys: Vec<f64> = y.iter().map(|&v| if v { 1.0 } else { -1.0 }).collect();
    let mut alpha = vec![0.0f64; n];
    let mut g = vec![-1.0f64; n]; // gradient of ½αᵀQα − eᵀα
    if let Some((prev, scale)) = init.filter(|(a, _)| a.len() == n) {
        let all: Vec<usize> = (0..n).collect();
        let mut best = 0.0; // the objective at α = 0
        for s in [1.0, scale] {
            let a: Vec<f64> = prev.iter().map(|v| (v * s).clamp(0.0, c)).collect();
            let mut ga = vec![0.0; n];
            gradient_rows(k, &ys, &a, &all, &mut ga);
            // ½αᵀQα − eᵀα = ½ Σ α_t (G_t − 1)
            let obj: f64 = 0.5 * a.iter().zip(&ga).map(|(a, g)| a * (g - 1.0)).sum::<f64>();
            if obj < best {
                best = obj;
                alpha = a;
                g = ga;
            }
        }
    }
    let tau = 1e-12;
    let max_iter = (100 * n).max(10_000_000);
    let diag: Vec<f64> = (0..n).map(|t| k[[t, t]]).collect();
    let upper = |a: f64| a >= c;
    let lower = |a: f64| a <= 0.0;
    // perm[..active] are the rows still in the problem.
    let mut perm: Vec<usize> = (0..n).collect();
    let mut active = n;
    let mut unshrunk = false;
    let shrink_every = n.min(1000);
    let mut counter = shrink_every + 1;
    let mut iterations = 0;
    let mut converged = false;
    // Rebuild the gradient of the shrunk rows and make every row active again.
    let reactivate = |perm: &[usize], active: &mut usize, alpha: &[f64], g: &mut [f64]| {
        if *active < n {
            gradient_rows(k, &ys, alpha, &perm[*active..], g);
            *active = n;
        }
    };
    // Working-set selection over the active rows: (i, j), or None when optimal within eps.
    let select = |perm: &[usize], active: usize, alpha: &[f64], g: &[f64]| {
        // i: maximal violating −y_t G_t over I_up.
        let mut gmax = f64::NEG_INFINITY;
        let mut i = usize::MAX;
        for &t in &perm[..active] {
            let in_up = if ys[t] > 0.0 {
                !upper(alpha[t])
            } else {
                !lower(alpha[t])
            };
            if in_up && -ys[t] * g[t] >= gmax {
                gmax = -ys[t] * g[t];
                i = t;
            }
        }
        if i == usize::MAX {
            return None;
        }
        // j by the second-order gain.
        let ki = k.row(i);
        let ki = ki.as_slice().expect("standard layout");
        let kii = ki[i];
        let mut gmax2 = f64::NEG_INFINITY;
        let mut j = usize::MAX;
        let mut best = f64::INFINITY;
        for &t in &perm[..active] {
            let in_low = if ys[t] > 0.0 {
                !lower(alpha[t])
            } else {
                !upper(alpha[t])
            };
            if !in_low {
                continue;
            }
            let v = ys[t] * g[t];
            if v >= gmax2 {
                gmax2 = v;
            }
            let grad_diff = gmax + v;
            if grad_diff > 0.0 {
                let mut quad = kii + diag[t] - 2.0 * ki[t];
                if quad <= 0.0 {
                    quad = tau;
                }
                let obj = -(grad_diff * grad_diff) / quad;
                if obj <= best {
                    best = obj;
                    j = t;
                }
            }
        }
        if gmax + gmax2 < eps || j == usize::MAX {
            None
        } else {
            Some((i, j))
        }
    };
    while iterations < max_iter {
        if shrinking {
            counter -= 1;
            if counter == 0 {
                counter = shrink_every;
                // LIBSVM's do_shrinking: the largest violations on each side...
                let (mut gm1, mut gm2) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
                for &t in &perm[..active] {
                    if ys[t] > 0.0 {
                        if !upper(alpha[t]) {
                            gm1 = gm1.max(-g[t]);
                        }
                        if !lower(alpha[t]) {
                            gm2 = gm2.max(g[t]);
                        }
                    } else {
                        if !upper(alpha[t]) {
                            gm2 = gm2.max(-g[t]);
                        }
                        if !lower(alpha[t]) {
                            gm1 = gm1.max(g[t]);
                        }
                    }
                }
                // ...once close to the optimum, one full gradient rebuild...
                if !unshrunk && gm1 + gm2 <= eps * 10.0 {
                    unshrunk = true;
                    reactivate(&perm, &mut active, &alpha, &mut g);
                }
                // ...then rows at a bound that the gradient pushes further out leave.
                let be_shrunk = |t: usize| {
                    if upper(alpha[t]) {
                        -g[t] > if ys[t] > 0.0 { gm1 } else { gm2 }
                    } else if lower(alpha[t]) {
                        g[t] > if ys[t] > 0.0 { gm2 } else { gm1 }
                    } else {
                        false
                    }
                };
                let mut s = 0;
                while s < active {
                    if be_shrunk(perm[s]) {
                        active -= 1;
                        perm.swap(s, active);
                    } else {
                        s += 1;
                    }
                }
            }
        }
        let (i, j) = match select(&perm, active, &alpha, &g) {
            Some(ij) => ij,
            None if active == n => {
                converged = true;
                break;
            }
            None => {
                // Optimal on the active rows: check on all of them.
                reactivate(&perm, &mut active, &alpha, &mut g);
                match select(&perm, active, &alpha, &g) {
                    Some(ij) => {
                        counter = 1; // shrink again at the next iteration
                        ij
                    }
                    None => {
                        converged = true;
                        break;
                    }
                }
            }
        };
        iterations += 1;
        let ki = k.row(i);
        let ki = ki.as_slice().expect("standard layout");
        let kj = k.row(j);
        let kj = kj.as_slice().expect("standard layout");
        let kii = ki[i];
        let (yi, yj) = (ys[i], ys[j]);
        let qij = yi * yj * ki[j];
        let (oi, oj) = (alpha[i], alpha[j]);
        if yi != yj {
            let mut quad = kii + kj[j] + 2.0 * qij;
            if quad <= 0.0 {
                quad = tau;
            }
            let delta = (-g[i] - g[j]) / quad;
            let diff = alpha[i] - alpha[j];
            alpha[i] += delta;
            alpha[j] += delta;
            if diff > 0.0 {
                if alpha[j] < 0.0 {
                    alpha[j] = 0.0;
                    alpha[i] = diff;
                }
            } else if alpha[i] < 0.0 {
                alpha[i] = 0.0;
                alpha[j] = -diff;
            }
            if diff > 0.0 {
                if alpha[i] > c {
                    alpha[i] = c;
                    alpha[j] = c - diff;
                }
            } else if alpha[j] > c {
                alpha[j] = c;
                alpha[i] = c + diff;
            }
        } else {
            let mut quad = kii + kj[j] - 2.0 * qij;
            if quad <= 0.0 {
                quad = tau;
            }
            let delta = (g[i] - g[j]) / quad;
            let sum = alpha[i] + alpha[j];
            alpha[i] -= delta;
            alpha[j] += delta;
            if sum > c {
                if alpha[i] > c {
                    alpha[i] = c;
                    alpha[j] = sum - c;
                }
            } else if alpha[j] < 0.0 {
                alpha[j] = 0.0;
                alpha[i] = sum;
            }
            if sum > c {
                if alpha[j] > c {
                    alpha[j] = c;
                    alpha[i] = sum - c;
                }
            } else if alpha[i] < 0.0 {
                alpha[i] = 0.0;
                alpha[j] = sum;
            }
        }
        let (di, dj) = (alpha[i] - oi, alpha[j] - oj);
        // G_t += Q_ti Δα_i + Q_tj Δα_j with Q_ts = y_t y_s K_ts, on the active rows.
        let (ci, cj) = (yi * di, yj * dj);
        for &t in &perm[..active] {
            g[t] += ys[t] * (ci * ki[t] + cj * kj[t]);
        }
    }
    // Stopped by max_iter with rows shrunk: their gradient is stale.
    reactivate(&perm, &mut active, &alpha, &mut g);
    // rho: mean of y G over free variables, else the middle of the feasible interval.
    let (mut ub, mut lb, mut sum, mut nfree) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0usize);
    for t in 0..n {
        let yg = ys[t] * g[t];
        if upper(alpha[t]) {
            if ys[t] < 0.0 {
                ub = ub.min(yg);
            } else {
                lb = lb.max(yg);
            }
        } else if lower(alpha[t]) {
            if ys[t] > 0.0 {
                ub = ub.min(yg);
            } else {
                lb = lb.max(yg);
            }
        } else {
            nfree += 1;
            sum += yg;
        }
    }
    let rho = if nfree > 0 {
        sum / nfree as f64
    } else {
        (ub + lb) / 2.0
    };
    Solution {
        alpha,
        rho,
        iterations,
        converged,
    }
}
