//! Between one feature set's grid search and the folds: the grid cross-validated on each kind
//! of training rows asked for (one averaged row per image, one row per kept augmentation view,
//! or both on the same folds with `--train-views auto`), the grid extended one step at an edge
//! pick, and the better kind kept.

use crate::train::config::TrainConfig;
use crate::train::cross_validation::{cross_validate, CvRows};
use crate::train::cv_file::{CvResult, ViewRowsCv};
use crate::train::grid::{self, Candidate};
use crate::view_rows::TrainViews;
use anyhow::{bail, Result};

/// Candidates cross-validated for one kind of training rows, the best of them and the grid
/// points added at an edge.
struct ModeCv {
    /// Trained on view rows.
    on: bool,
    results: Vec<CvResult>,
    chosen: usize,
    grid_extended: Vec<String>,
}

/// One kind of training rows cross-validated: the grid, then up to `grid_extension` steps
/// beyond an edge pick.
fn cross_validate_mode(
    rows: CvRows,
    on: bool,
    candidates: Vec<Candidate>,
    cfg: &TrainConfig,
    progress: &mut impl FnMut(&CvResult),
) -> Result<ModeCv> {
    let mut results = cross_validate(rows, &candidates, cfg.seed, cfg.c_patience, &mut *progress)?;
    let mut chosen = grid::choose(&results)?;
    let mut grid_extended = Vec::new();
    for _ in 0..cfg.grid_extension {
        let more = grid::extend_at_edge(&results, chosen);
        if more.is_empty() {
            break;
        }
        grid_extended.extend(more.iter().map(|c| {
            format!(
                "{} ({}{})",
                c.params,
                c.transform,
                if on { ", view rows" } else { "" }
            )
        }));
        results.extend(cross_validate(rows, &more, cfg.seed, 0, &mut *progress)?);
        chosen = grid::choose(&results)?;
    }
    Ok(ModeCv {
        on,
        results,
        chosen,
        grid_extended,
    })
}

/// The CV of every kind of training rows asked for, merged: all results (averaged rows first),
/// the chosen one's index and kind of rows, notes on its grid edges.
pub(crate) struct MergedCv {
    pub(crate) results: Vec<CvResult>,
    pub(crate) chosen: usize,
    /// The chosen candidate trained on view rows.
    pub(crate) on: bool,
    pub(crate) grid_edge: Vec<String>,
    pub(crate) grid_extended: Vec<String>,
    pub(crate) view_rows_cv: Option<ViewRowsCv>,
}

/// Cross-validate averaged rows, view rows, or both on the same folds (`--train-views auto`),
/// and keep the better (ties go to the averaged rows: fewer rows, a cheaper fit). `rows.views`
/// are the training images' kept views (`None`: the cache keeps none, or they are not used).
pub(crate) fn cross_validate_row_modes(
    rows: CvRows,
    candidates: &[Candidate],
    cfg: &TrainConfig,
    progress: &mut impl FnMut(&CvResult),
) -> Result<MergedCv> {
    let modes: Vec<bool> = match (cfg.train_views, &rows.views) {
        (TrainViews::Auto, Some(_)) => vec![false, true],
        (_, Some(_)) => vec![true],
        (_, None) => vec![false],
    };
    let mut done: Vec<ModeCv> = Vec::with_capacity(modes.len());
    for &on in &modes {
        let views = if on { rows.views } else { None };
        let n_rows = rows.y.len() * views.map_or(1, |v| v.dim().1);
        // A family with a row limit (the RBF SVM's dense kernel) is not tried on view rows
        // above it.
        let mode_candidates: Vec<Candidate> = candidates
            .iter()
            .filter(|c| !(on && c.params.kind().row_limit().is_some_and(|l| n_rows > l.rows)))
            .cloned()
            .collect();
        if mode_candidates.is_empty() {
            continue;
        }
        done.push(cross_validate_mode(
            CvRows { views, ..rows },
            on,
            mode_candidates,
            cfg,
            progress,
        )?);
    }
    if done.is_empty() {
        bail!("no candidate to cross-validate");
    }
    let best = |m: &ModeCv| m.results[m.chosen].mean_accuracy;
    let keep = (1..done.len()).fold(0, |k, i| {
        if best(&done[i]) > best(&done[k]) + 1e-9 {
            i
        } else {
            k
        }
    });
    let view_rows_cv = (done.len() == 2).then(|| ViewRowsCv {
        averaged_rows: best(&done[0]),
        view_rows: best(&done[1]),
        kept: if done[keep].on {
            "view rows"
        } else {
            "averaged rows"
        }
        .into(),
    });
    let on = done[keep].on;
    let offset: usize = done[..keep].iter().map(|m| m.results.len()).sum();
    let grid_edge = grid::edge_notes(&done[keep].results, done[keep].chosen);
    let chosen = offset + done[keep].chosen;
    let mut grid_extended = Vec::new();
    let mut results = Vec::new();
    for m in done {
        grid_extended.extend(m.grid_extended);
        results.extend(m.results);
    }
    Ok(MergedCv {
        results,
        chosen,
        on,
        grid_edge,
        grid_extended,
        view_rows_cv,
    })
}
