//! The grid's rules, below the grid search and above the folds: the grid points of a
//! transform, the early stopping of a path, the extension of the grid at an edge and the notes
//! on an edge pick, and the choice of the best candidate.
//!
//! A *path* is the candidates that differ only in their first hyper-parameter (C for the SVMs
//! and logistic regression: same transform, family, engine and gamma), met in ascending order.

use crate::head::{GridData, HeadGrids, HeadKind, HeadSpec, SharedGrid};
use crate::train::cv_file::CvResult;
use crate::transform::TransformSpec;
use anyhow::{bail, Result};

/// One grid point: a transform and a head with its hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub transform: TransformSpec,
    pub params: HeadSpec,
}

/// The grid of each family in `kinds` (in that order) for one transform.
pub fn grid(
    kinds: &[HeadKind],
    grids: &HeadGrids,
    shared: SharedGrid,
    data: &GridData,
) -> Result<Vec<HeadSpec>> {
    let mut out = Vec::new();
    for k in kinds {
        out.extend(k.grid(grids, shared, data)?);
    }
    Ok(out)
}

/// How far below its path's best a C value must score to count as a decline (half a point of
/// accuracy; about the CV noise of a few hundred validation rows).
pub const DECLINE: f64 = 0.005;

/// `a` and `b` differ at most in hyper-parameter `name` (and are of the same family).
fn same_but(a: &HeadSpec, b: &HeadSpec, name: &str) -> bool {
    a.kind() == b.kind() && a.with(name, 0.0) == b.with(name, 0.0)
}

/// `a` and `b` lie on one path (differ at most in their first hyper-parameter).
fn same_path(a: &HeadSpec, b: &HeadSpec) -> bool {
    match a.hyper_params().first() {
        Some(p) => same_but(a, b, p.name),
        None => a == b,
    }
}

/// Whether early stopping can never skip `cand`, whatever the earlier candidates score: with
/// `patience` > 0 a path stops only after a best value and `patience` declines, so its first
/// `patience + 1` points are always fitted (and every point with `patience` 0).
pub fn always_fitted(earlier: &[Candidate], cand: &Candidate, patience: usize) -> bool {
    patience == 0
        || earlier
            .iter()
            .filter(|c| c.transform == cand.transform && same_path(&c.params, &cand.params))
            .count()
            <= patience
}

/// Whether `cand`'s path (the earlier results with the same transform and the same
/// hyper-parameters but the first) has seen `patience` consecutive fitted values decline below
/// its best, or has been stopped.
pub fn path_stalled(results: &[CvResult], cand: &Candidate, patience: usize) -> bool {
    let mut best = f64::NEG_INFINITY;
    let mut since = 0;
    for r in results
        .iter()
        .filter(|r| r.transform == cand.transform && same_path(&r.params, &cand.params))
    {
        if r.skipped {
            return true;
        }
        if r.error.is_some() {
            continue;
        }
        if r.mean_accuracy > best {
            best = r.mean_accuracy;
            since = 0;
        } else if r.mean_accuracy < best - DECLINE {
            since += 1;
        } else {
            since = 0;
        }
    }
    since >= patience
}

/// For each hyper-parameter of the chosen candidate: the values tried (ascending, over the
/// scored results of the same transform) with every other hyper-parameter as chosen.
fn neighbourhood(results: &[CvResult], chosen: usize) -> Vec<Vec<f64>> {
    let r = &results[chosen];
    r.params
        .hyper_params()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut v: Vec<f64> = results
                .iter()
                .filter(|o| {
                    o.scored()
                        && o.transform == r.transform
                        && same_but(&o.params, &r.params, p.name)
                })
                .map(|o| o.params.hyper_params()[i].value)
                .collect();
            v.sort_by(|a, b| a.total_cmp(b));
            v.dedup();
            v
        })
        .collect()
}

/// Where `v` sits in the ascending grid `g` of at least two values: the next log-step beyond the
/// edge it is on (`Some(true, next)` at the top, `Some(false, next)` at the bottom), else None.
fn beyond_edge(g: &[f64], v: f64) -> Option<(bool, f64)> {
    if g.len() < 2 {
        return None;
    }
    let n = g.len();
    if v == g[n - 1] {
        Some((true, v * (g[n - 1] / g[n - 2])))
    } else if v == g[0] {
        Some((false, v / (g[1] / g[0])))
    } else {
        None
    }
}

/// The grid-extension rule: when a hyper-parameter of the chosen candidate (C, the RBF SVM's
/// gamma) is the largest or smallest value tried for its head and transform, the candidates one
/// log-step beyond that edge (same ratio as the last step of the grid; every combination when
/// several sit at an edge, the last hyper-parameter varying fastest: gamma alone, C alone,
/// both). Empty when the pick is inside the grid, or its grid has a single value (nothing was
/// searched).
pub fn extend_at_edge(results: &[CvResult], chosen: usize) -> Vec<Candidate> {
    let r = &results[chosen];
    let params = r.params.hyper_params();
    let beyond: Vec<Option<f64>> = neighbourhood(results, chosen)
        .iter()
        .zip(&params)
        .map(|(g, p)| beyond_edge(g, p.value).map(|e| e.1))
        .collect();
    let n = params.len();
    let mut out = Vec::new();
    // Subsets of the hyper-parameters at an edge, by a bit mask whose lowest bit is the last.
    for mask in 1usize..(1 << n) {
        let members: Vec<usize> = (0..n).filter(|&i| mask & (1 << (n - 1 - i)) != 0).collect();
        if members.iter().any(|&i| beyond[i].is_none()) {
            continue;
        }
        let p = members.iter().fold(r.params.clone(), |p, &i| {
            p.with(params[i].name, beyond[i].expect("checked"))
        });
        out.push(p);
    }
    out.into_iter()
        .filter(|p| {
            !results
                .iter()
                .any(|o| o.transform == r.transform && o.params == *p)
        })
        .map(|params| Candidate {
            transform: r.transform,
            params,
        })
        .collect()
}

/// Notes for a chosen hyper-parameter at an edge of the grid searched, e.g. "C at top of grid
/// (1000)", for the CV table, cv.json and the report.
pub fn edge_notes(results: &[CvResult], chosen: usize) -> Vec<String> {
    let r = &results[chosen];
    let side = |top: bool| if top { "top" } else { "bottom" };
    neighbourhood(results, chosen)
        .iter()
        .zip(r.params.hyper_params())
        .filter_map(|(g, p)| {
            beyond_edge(g, p.value)
                .map(|(top, _)| format!("{} at {} of grid ({})", p.name, side(top), p.shown()))
        })
        .collect()
}

/// Pick the best candidate by mean CV accuracy; ties (within 1e-9) go to the simpler model:
/// the earlier family in the registration order (linear SVM, logistic, RBF), then the simpler
/// transform (standard first), then smaller hyper-parameters (C, then gamma).
pub fn choose(results: &[CvResult]) -> Result<usize> {
    let ok: Vec<usize> = (0..results.len())
        .filter(|&i| results[i].scored())
        .collect();
    if ok.is_empty() {
        let errs: Vec<String> = results
            .iter()
            .filter_map(|r| r.error.as_ref().map(|e| format!("{}: {e}", r.params)))
            .collect();
        bail!("every candidate failed:\n  {}", errs.join("\n  "));
    }
    let key = |r: &CvResult| {
        (
            r.params.kind().complexity(),
            r.transform.kind.complexity(),
            r.params
                .hyper_params()
                .iter()
                .map(|p| p.value)
                .collect::<Vec<f64>>(),
        )
    };
    let best = ok
        .into_iter()
        .min_by(|&a, &b| {
            let (ra, rb) = (&results[a], &results[b]);
            let d = rb.mean_accuracy - ra.mean_accuracy;
            if d.abs() > 1e-9 {
                return d.partial_cmp(&0.0).unwrap_or(std::cmp::Ordering::Equal);
            }
            key(ra)
                .partial_cmp(&key(rb))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .expect("non-empty");
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::linear_svm::LinearSvmSpec;
    use crate::families::logistic::LogisticSpec;
    use crate::families::rbf_svm::{RbfSvmGrid, RbfSvmSpec};
    use crate::head::Engine;
    use crate::transform::{Transform, TransformKind};

    fn spec(kind: HeadKind, c: f64, gamma: f64) -> HeadSpec {
        let engine = Engine::Tlearn;
        match kind {
            HeadKind::LinearSvm => HeadSpec::LinearSvm(LinearSvmSpec { c, tol: 0.01 }),
            HeadKind::Logistic => HeadSpec::Logistic(LogisticSpec { c, engine }),
            HeadKind::RbfSvm => HeadSpec::RbfSvm(RbfSvmSpec { c, gamma, engine }),
            HeadKind::Mlp => panic!("these grid tests use the C families only"),
        }
    }

    fn res_g(kind: HeadKind, c: f64, gamma: f64, acc: f64) -> CvResult {
        CvResult {
            transform: TransformSpec::new(TransformKind::Standard, None),
            params: spec(kind, c, gamma),
            view_rows: false,
            convergence: None,
            fold_accuracy: vec![acc],
            mean_accuracy: acc,
            std_accuracy: 0.0,
            seconds: 0.0,
            error: None,
            skipped: false,
            oof_scores: None,
        }
    }

    fn res(kind: HeadKind, c: f64, acc: f64) -> CvResult {
        res_g(kind, c, 1.0, acc)
    }

    #[test]
    fn best_score_wins_and_ties_go_to_simpler() {
        let r = vec![
            res(HeadKind::RbfSvm, 1.0, 0.9),
            res(HeadKind::Logistic, 10.0, 0.9),
            res(HeadKind::Logistic, 0.1, 0.9),
            res(HeadKind::LinearSvm, 1.0, 0.8),
        ];
        assert_eq!(choose(&r).unwrap(), 2);
        let mut r2 = r.clone();
        r2[3].mean_accuracy = 0.95;
        assert_eq!(choose(&r2).unwrap(), 3);
    }

    #[test]
    fn all_failed_is_an_error() {
        let mut r = res(HeadKind::Logistic, 1.0, 0.0);
        r.error = Some("boom".into());
        let e = choose(&[r]).unwrap_err().to_string();
        assert!(e.contains("boom"));
    }

    #[test]
    fn grid_expands_gamma_for_rbf_only() {
        let x = ndarray::array![[0.0f32, 1.0], [1.0, 0.0], [2.0, 2.0]];
        let t = Transform::fit_spec(x.view(), TransformSpec::new(TransformKind::Standard, None))
            .unwrap();
        let grids = HeadGrids {
            rbf_svm: RbfSvmGrid {
                gamma: Some(vec![0.01, 0.1, 1.0]),
            },
            ..HeadGrids::default()
        };
        let shared = SharedGrid {
            c: &[0.1, 1.0],
            engine: Engine::Tlearn,
        };
        let g = grid(
            &[HeadKind::Logistic, HeadKind::RbfSvm],
            &grids,
            shared,
            &GridData::new(x.view(), &t),
        )
        .unwrap();
        assert_eq!(g.len(), 2 + 6);
        // RBF points gamma by gamma, every C of one gamma together.
        assert_eq!(g[2], spec(HeadKind::RbfSvm, 0.1, 0.01));
        assert_eq!(g[3], spec(HeadKind::RbfSvm, 1.0, 0.01));
    }

    #[test]
    fn a_pick_at_two_edges_extends_gamma_then_c_then_both_and_notes_both() {
        let mut r = Vec::new();
        for g in [0.1, 1.0] {
            for c in [1.0, 10.0] {
                r.push(res_g(HeadKind::RbfSvm, c, g, 0.5));
            }
        }
        r[3].mean_accuracy = 0.9; // C = 10, gamma = 1: the top of both grids
        let chosen = choose(&r).unwrap();
        assert_eq!(chosen, 3);
        let more: Vec<HeadSpec> = extend_at_edge(&r, chosen)
            .into_iter()
            .map(|c| c.params)
            .collect();
        assert_eq!(
            more,
            [
                spec(HeadKind::RbfSvm, 10.0, 10.0),
                spec(HeadKind::RbfSvm, 100.0, 1.0),
                spec(HeadKind::RbfSvm, 100.0, 10.0)
            ]
        );
        assert_eq!(
            edge_notes(&r, chosen),
            ["C at top of grid (10)", "gamma at top of grid (1.000e0)"]
        );
    }

    #[test]
    fn a_path_stops_after_patience_declines() {
        let r = vec![
            res(HeadKind::Logistic, 0.1, 0.9),
            res(HeadKind::Logistic, 1.0, 0.8),
            res(HeadKind::Logistic, 10.0, 0.7),
        ];
        let next = Candidate {
            transform: r[0].transform,
            params: spec(HeadKind::Logistic, 100.0, 0.0),
        };
        assert!(path_stalled(&r, &next, 2));
        assert!(!path_stalled(&r[..2], &next, 2));
        // Another family's path is its own.
        let other = Candidate {
            params: spec(HeadKind::LinearSvm, 100.0, 0.0),
            ..next
        };
        assert!(!path_stalled(&r, &other, 2));
    }
}
