//! How long a search will take, said before it starts, and refused when it is out of reach.
//!
//! Multinomial logistic regression costs, per L-BFGS step, two products of the training rows
//! `[n, d + 1]` with the weights `[d + 1, k]` and `n × k` exponentials: it grows with the number
//! of classes k as no other part of a search does. Measured: 2,000 classes of 3 tiny images
//! (`pixels8`, 64 features, 2 training images per class, `--folds 2`): one step over a fold's
//! 2,000 rows took about 75 ms of CPU, fits took 2 to 112 steps (38 at C = 0.1, 112 at C = 1,
//! 60 at C = 10) and the final fit 178; five values of C took 75 s of CPU, and the default search
//! (4 transforms × 7 values of C × 2 folds, plus an extension and the final fit) about four times
//! that, so several minutes of two cores' time (a run did not finish in 300 s); with 1,280 features (the backbones' bottleneck) each step costs 20 times more and the
//! search takes hours. The same data set with 5 folds is refused at once (2 training images per
//! class are fewer than the folds).
//!
//! [`estimate`] times one step's work of the largest logistic fit on this machine (on a sample
//! of rows, scaled) and counts the fits the search will make, at [`STEPS_PER_FIT`] steps each;
//! [`check`] turns that into a note for a long search and a refusal, naming the sizes and how to
//! narrow the search, when it is over the limit (`train --max-minutes`, [`CutConfig::max_minutes`]). The other heads are not
//! counted: the RBF SVM is left out of `auto` for large sets, and the linear SVM's epochs cost
//! what one logistic step costs, over fewer of them.

use std::time::Instant;

use ndarray::Array2;

use super::{CutConfig, CutInput};
use crate::head::HeadKind;

/// L-BFGS steps a logistic fit takes, for the estimate (the measurements in the module doc:
/// 38-112 along the usual C values, 178 for a final fit).
pub const STEPS_PER_FIT: usize = 100;

/// Below this many multiply-adds in all the search is not timed (seconds at most).
const NOT_WORTH_TIMING: f64 = 2e10;

/// Rows the timing runs on (the cost is linear in the rows).
const SAMPLE_ROWS: usize = 256;

/// The logistic part of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Logistic fits in the search (cross-validation and final fits).
    pub fits: usize,
    pub classes: usize,
    /// Features of the largest fit.
    pub dim: usize,
    /// Training rows of a cross-validation fit.
    pub fold_rows: usize,
    /// Seconds one solver step over `fold_rows` rows takes on this machine.
    pub step_seconds: f64,
    /// Wall-clock seconds of the whole search (folds run in parallel).
    pub seconds: f64,
}

/// The fits the search over `inputs` under `cfg` makes, as (features, training rows, how many):
/// the screen of every cut, the full grid of each finalist (at the largest dimension a
/// finalist can have) and the final fit.
fn fits(inputs: &[CutInput], cfg: &CutConfig) -> Vec<(usize, usize, usize)> {
    let t = &cfg.train;
    let rows = inputs[0].cache.rows() as f64;
    let n_train = (rows * (1.0 - t.test_size)).round().max(1.0) as usize;
    let folds = t.folds.max(2);
    let fold_rows = n_train * (folds - 1) / folds;
    let dims: Vec<usize> = inputs.iter().map(|i| i.cache.meta.dim).collect();
    let logistic_full = t.heads.resolve(n_train).0.contains(&HeadKind::Logistic);
    let full_grid = t.transforms.len() * (t.c_grid.len() + t.grid_extension) * folds;
    let mut out = Vec::new();
    let selecting = inputs.len() > 1 && cfg.fixed.is_none();
    let final_dim = match &cfg.fixed {
        Some(names) => inputs
            .iter()
            .filter(|i| names.contains(&i.name))
            .map(|i| i.cache.meta.dim)
            .sum(),
        None if selecting && cfg.pair_top >= 2 => {
            let mut d = dims.clone();
            d.sort_unstable_by(|a, b| b.cmp(a));
            d.iter().take(2).sum()
        }
        None => dims.iter().copied().max().unwrap_or(0),
    };
    if selecting && cfg.screen_heads.contains(&HeadKind::Logistic) {
        for &d in &dims {
            out.push((d, fold_rows, cfg.screen_c_grid.len() * folds));
        }
    }
    if logistic_full {
        let sets = if selecting { cfg.finalists.max(1) } else { 1 };
        out.push((final_dim, fold_rows, sets * full_grid));
        out.push((final_dim, n_train, 1));
    }
    out
}

/// The time the logistic fits of a search will take on this machine; `None` when they are
/// cheap (not worth timing) or there are none.
pub fn estimate(inputs: &[CutInput], cfg: &CutConfig) -> Option<Estimate> {
    let classes = inputs.first()?.cache.classes().len();
    let fits = fits(inputs, cfg);
    let work: f64 = fits
        .iter()
        .map(|&(d, n, count)| (2 * n * (d + 1) * classes * count * STEPS_PER_FIT) as f64)
        .sum();
    if fits.is_empty() || work < NOT_WORTH_TIMING {
        return None;
    }
    let dim = fits.iter().map(|f| f.0).max()?;
    let fold_rows = fits[0].1;
    // One step's work on a sample of rows: two products and the softmax's exponentials.
    let sample = SAMPLE_ROWS.min(fold_rows.max(1));
    let x = Array2::<f64>::from_elem((sample, dim + 1), 0.5);
    let w = Array2::<f64>::from_elem((dim + 1, classes), 0.01);
    let mut best = f64::INFINITY;
    for _ in 0..2 {
        let t0 = Instant::now();
        let mut z = x.dot(&w);
        z.mapv_inplace(f64::exp);
        let g = x.t().dot(&z);
        std::hint::black_box(&g);
        best = best.min(t0.elapsed().as_secs_f64());
    }
    let per_row = best / sample as f64;
    let parallel = cfg
        .train
        .folds
        .max(1)
        .min(rayon::current_num_threads().max(1)) as f64;
    let seconds: f64 = fits
        .iter()
        .map(|&(d, n, count)| {
            let scale = (d + 1) as f64 / (dim + 1) as f64;
            let fit = per_row * scale * n as f64 * STEPS_PER_FIT as f64;
            // Cross-validation fits run a fold per thread; the final fit alone.
            if count > 1 {
                fit * count as f64 / parallel
            } else {
                fit
            }
        })
        .sum();
    Some(Estimate {
        fits: fits.iter().map(|f| f.2).sum(),
        classes,
        dim,
        fold_rows,
        step_seconds: per_row * fold_rows as f64,
        seconds,
    })
}

fn minutes(seconds: f64) -> String {
    if seconds < 120.0 {
        format!("{seconds:.0} s")
    } else if seconds < 7200.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

/// A note for a search estimated to take over a minute (`Ok(Some)`), or a refusal naming the
/// sizes and how to narrow it when the estimate is over `max_minutes`.
pub fn check(est: &Estimate, max_minutes: Option<f64>) -> anyhow::Result<Option<String>> {
    let what = format!(
        "{} fits of multinomial logistic regression on {} classes × {} features (one solver \
         step over {} rows takes {:.2} s here, a fit about {STEPS_PER_FIT} steps)",
        est.fits, est.classes, est.dim, est.fold_rows, est.step_seconds
    );
    if let Some(limit) = max_minutes.filter(|&m| est.seconds > m * 60.0) {
        anyhow::bail!(
            "this search would take about {}, over --max-minutes {limit}: {what}. Narrow it \
             (--transform standard with two or three --c-grid values), or raise --max-minutes",
            minutes(est.seconds)
        );
    }
    Ok((est.seconds > 60.0).then(|| {
        format!(
            "note: about {} of solver work: {what}",
            minutes(est.seconds)
        )
    }))
}
