//! The middle of the training stack: one feature set (one cache, or a concatenation of cuts
//! given as one) from its codes to a saved head: the seeded split and folds, the grid of
//! transforms × heads × hyper-parameters cross-validated (with averaged rows, view rows, or
//! both on the same folds), the grid extended at an edge, the best candidate fitted on the
//! whole training part and calibrated. `cut_selection` calls it once per candidate feature set;
//! `row_modes` below it cross-validates the grid on each kind of training rows.

use crate::cache::FeatureCache;
use crate::calibrate::Temperature;
use crate::head::{prediction_rule, GridData, HeadKind, HeadSpec, SharedGrid};
use crate::model_file::{CvSummary, SavedHead, SplitRecord, FORMAT, VERSION};
use crate::split::{stratified_folds, train_test_split, Split};
use crate::train::config::TrainConfig;
use crate::train::cross_validation::CvRows;
use crate::train::cv_file::{CvReport, CvResult, SplitExport};
use crate::train::grid::{self, Candidate};
use crate::train::row_modes::{cross_validate_row_modes, MergedCv};
use crate::transform::{BlockNorm, Transform, TransformSpec};
use crate::view_rows::{TrainViews, ViewRows};
use anyhow::{bail, Result};
use ndarray::{Array2, Array3, ArrayView3, Axis};
use std::time::Instant;

/// One feature set's head and its CV report.
pub struct FeatureSetOutcome {
    pub saved: SavedHead,
    pub cv: CvReport,
}

/// Split the cache, run the CV grid, fit the chosen head on the whole training part.
/// `progress` is called after each candidate's CV. The cache's kept views (`views.npy`) are
/// read when `cfg.train_views` may use them.
pub fn train(
    cache: &FeatureCache,
    cfg: &TrainConfig,
    progress: impl FnMut(&CvResult),
) -> Result<FeatureSetOutcome> {
    let views = match cfg.train_views {
        TrainViews::Off => None,
        _ => cache.read_views()?,
    };
    train_with_views(
        cache,
        views
            .as_ref()
            .map(|v| (v.view(), cache.meta.views.as_slice())),
        None,
        cfg,
        progress,
    )
}

/// The training part of one feature set, ready for CV: block-normalised rows, classes, folds.
struct TrainingPart {
    split: Split,
    fold_of: Vec<usize>,
    n_classes: usize,
    x_train: Array2<f32>,
    y_train: Vec<usize>,
    /// The training images' kept views `[rows, views, dim]`, block-normalised like the rows.
    views_train: Option<Array3<f32>>,
    view_names: Vec<String>,
}

/// [`train`] with the kept views given (`[rows, views, dim]` aligned with `cache.x`, and their
/// names) and, for a concatenation, the per-block normalisation of its blocks (`blocks`, see
/// [`BlockNorm`]): the selection over cuts uses it. The block rule is applied to every row (and
/// every view row) once, before the split (it fits nothing, so this equals applying it per
/// fold); CV and the final fit see its output, and the saved transform records it so `eval` and
/// `predict` apply it to raw codes first.
pub fn train_with_views(
    cache: &FeatureCache,
    views: Option<(ArrayView3<f32>, &[String])>,
    blocks: Option<&BlockNorm>,
    cfg: &TrainConfig,
    mut progress: impl FnMut(&CvResult),
) -> Result<FeatureSetOutcome> {
    let part = training_part(cache, views, blocks, cfg)?;
    let (heads, _) = cfg.heads.resolve(part.split.train.len());
    if heads.is_empty() {
        bail!("no head kinds to try");
    }
    let (specs, fitted, candidates) = candidates(&part, &heads, cfg)?;
    let t0 = Instant::now();
    let rows = CvRows {
        x: part.x_train.view(),
        views: part.views_train.as_ref().map(|v| v.view()),
        y: &part.y_train,
        n_classes: part.n_classes,
        fold_of: &part.fold_of,
        folds: cfg.folds,
    };
    let cv = cross_validate_row_modes(rows, &candidates, cfg, &mut progress)?;
    let cv_seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let chosen = &cv.results[cv.chosen];
    let fit = final_fit(&part, chosen, cv.on, fitted, &specs, blocks, cfg)?;
    let final_fit_seconds = t1.elapsed().as_secs_f64();
    Ok(outcome(
        cache,
        cfg,
        part,
        specs,
        cv,
        fit,
        cv_seconds,
        final_fit_seconds,
    ))
}

/// Check the inputs, split the cache, assign folds, normalise the blocks of a concatenation.
fn training_part(
    cache: &FeatureCache,
    views: Option<(ArrayView3<f32>, &[String])>,
    blocks: Option<&BlockNorm>,
    cfg: &TrainConfig,
) -> Result<TrainingPart> {
    cache.check_trainable()?;
    if let Some((v, names)) = views {
        let want = (cache.rows(), names.len(), cache.meta.dim);
        if v.dim() != want {
            bail!(
                "the kept views of {} have shape {:?}, expected {:?} (rows, views, dim)",
                cache.dir.display(),
                v.shape(),
                want
            );
        }
    }
    let views = match (cfg.train_views, views) {
        (TrainViews::Off, _) => None,
        (TrainViews::On, None) => {
            return Err(crate::error::HeadError::NoViews {
                cache: cache.dir.display().to_string(),
            }
            .into())
        }
        (_, v) => v,
    };
    if cfg.heads == crate::train::config::HeadChoice::Only(Vec::new()) {
        bail!("no head kinds to try");
    }
    if cfg.c_grid.is_empty() || cfg.c_grid.iter().any(|c| !(c.is_finite() && *c > 0.0)) {
        bail!("--c-grid must be a non-empty list of positive numbers");
    }
    let n_classes = cache.classes().len();
    let split: Split =
        train_test_split(&cache.y, &cache.sha256, n_classes, cfg.test_size, cfg.seed)?;
    let fold_of = stratified_folds(
        &cache.y,
        &cache.sha256,
        &split.train,
        cache.classes(),
        cfg.folds,
        cfg.seed,
    )?;
    let normalised = blocks.map(|b| b.apply(cache.x.view())).transpose()?;
    let x_all = normalised.as_ref().map_or(cache.x.view(), |n| n.view());
    let x_train = x_all.select(Axis(0), &split.train);
    let y_train: Vec<usize> = split.train.iter().map(|&i| cache.y[i]).collect();
    // The training images' views (held-out images never get view rows), block-normalised
    // like the rows.
    let views_train: Option<Array3<f32>> = match views {
        None => None,
        Some((v, _)) => {
            let v = v.select(Axis(0), &split.train);
            match blocks {
                None => Some(v),
                Some(b) => {
                    let (n, k, d) = v.dim();
                    let flat = v.into_shape_with_order((n * k, d))?;
                    Some(b.apply(flat.view())?.into_shape_with_order((n, k, d))?)
                }
            }
        }
    };
    Ok(TrainingPart {
        split,
        fold_of,
        n_classes,
        x_train,
        y_train,
        views_train,
        view_names: views.map(|(_, n)| n.to_vec()).unwrap_or_default(),
    })
}

/// Each transform fitted on the whole training part (a family's grid may be scaled to its
/// output, and the chosen one is the final model's transform) and the grid of candidates: for
/// each transform, each family's grid points.
fn candidates(
    part: &TrainingPart,
    heads: &[HeadKind],
    cfg: &TrainConfig,
) -> Result<(Vec<TransformSpec>, Vec<Transform>, Vec<Candidate>)> {
    if cfg.transforms.is_empty() {
        bail!("no transforms to try");
    }
    // Ascending and without repeats: the order the C paths are walked (early stopping, edges).
    let mut c_grid = cfg.c_grid.clone();
    c_grid.sort_by(|a, b| a.total_cmp(b));
    c_grid.dedup();
    let shared = SharedGrid {
        c: &c_grid,
        engine: cfg.engine,
    };
    let specs: Vec<TransformSpec> = cfg
        .transforms
        .iter()
        .map(|&k| TransformSpec::new(k, cfg.pca))
        .collect();
    let mut fitted: Vec<Transform> = Vec::with_capacity(specs.len());
    let mut candidates = Vec::new();
    for &spec in &specs {
        let t = Transform::fit_spec(part.x_train.view(), spec)?;
        let data = GridData::new(part.x_train.view(), &t);
        candidates.extend(
            grid::grid(heads, &cfg.grids, shared, &data)?
                .into_iter()
                .map(|params| Candidate {
                    transform: spec,
                    params,
                }),
        );
        fitted.push(t);
    }
    Ok((specs, fitted, candidates))
}

/// The chosen candidate fitted on the whole training part, with its calibration.
struct FinalFit {
    transform: Transform,
    params: HeadSpec,
    head: crate::head::Head,
    view_rows: Option<ViewRows>,
    calibration: Option<Temperature>,
}

/// Fit the chosen candidate on the whole training part (view rows when it was chosen on
/// them) and, for a family whose softmax is not calibrated, one shared slope on the out-of-fold
/// CV decision values, so the most probable class is the decision-value argmax that CV scored
/// (see `calibrate`).
fn final_fit(
    part: &TrainingPart,
    chosen: &CvResult,
    on: bool,
    fitted: Vec<Transform>,
    specs: &[TransformSpec],
    blocks: Option<&BlockNorm>,
    cfg: &TrainConfig,
) -> Result<FinalFit> {
    let views_fit = if on {
        part.views_train.as_ref().map(|v| v.view())
    } else {
        None
    };
    let all_train: Vec<usize> = (0..part.split.train.len()).collect();
    let (x_fit, y_fit) =
        crate::view_rows::training_rows(part.x_train.view(), views_fit, &all_train, &part.y_train);
    let mut transform = if on {
        // Fitted on the rows the head is trained on, as in each CV fold.
        Transform::fit_spec(x_fit.view(), chosen.transform)?
    } else {
        fitted
            .into_iter()
            .zip(specs)
            .find(|(_, s)| **s == chosen.transform)
            .map(|(t, _)| t)
            .expect("the chosen transform is one of the specs")
    };
    let z = transform.apply(x_fit.view())?;
    // From here on the transform takes raw codes (x_train is already block-normalised).
    transform.blocks = blocks.cloned();
    let params = chosen.params.clone();
    let head = params.fit(z.view(), &y_fit, part.n_classes, cfg.seed)?;
    let calibration = if params.kind().calibrated() {
        None
    } else {
        let oof = chosen
            .oof_scores
            .as_ref()
            .expect("successful candidates keep their scores");
        Some(Temperature::fit(oof, &part.y_train))
    };
    Ok(FinalFit {
        transform,
        params,
        head,
        view_rows: on.then(|| ViewRows {
            views: part.view_names.clone(),
            training_rows: x_fit.nrows(),
        }),
        calibration,
    })
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The saved head and the CV report of one feature set.
#[allow(clippy::too_many_arguments)]
fn outcome(
    cache: &FeatureCache,
    cfg: &TrainConfig,
    part: TrainingPart,
    specs: Vec<TransformSpec>,
    cv: MergedCv,
    fit: FinalFit,
    cv_seconds: f64,
    final_fit_seconds: f64,
) -> FeatureSetOutcome {
    let mut results = cv.results;
    for r in &mut results {
        r.oof_scores = None;
    }
    let r = &results[cv.chosen];
    let convergence = fit.head.convergence();
    let saved = SavedHead {
        format: FORMAT.into(),
        version: VERSION,
        tlearn_version: env!("CARGO_PKG_VERSION").into(),
        created: unix_now(),
        classes: cache.classes().to_vec(),
        extractor: cache.meta.extractor.clone(),
        dim: cache.meta.dim,
        transform: fit.transform,
        params: fit.params.clone(),
        head: fit.head,
        fit: Some(convergence),
        calibration: fit.calibration.clone(),
        platt: None,
        cv: CvSummary {
            mean_accuracy: r.mean_accuracy,
            std_accuracy: r.std_accuracy,
            fold_accuracy: r.fold_accuracy.clone(),
            grid_edge: cv.grid_edge.clone(),
        },
        split: SplitRecord {
            cache: cache.dir.display().to_string(),
            seed: cfg.seed,
            test_size: cfg.test_size,
            folds: cfg.folds,
            train_rows: part.split.train.len(),
            held_out: part
                .split
                .test
                .iter()
                .map(|&i| cache.paths[i].clone())
                .collect(),
        },
        parts: Vec::new(),
        view_rows: fit.view_rows.clone(),
    };
    let chosen_transform = r.transform;
    let report = CvReport {
        classes: cache.classes().to_vec(),
        transforms: specs,
        chosen_transform,
        chosen_transform_steps: saved.transform.describe(),
        pca: cfg.pca,
        train_views: cfg.train_views,
        view_rows: fit.view_rows,
        view_rows_cv: cv.view_rows_cv,
        folds: cfg.folds,
        seed: cfg.seed,
        test_size: cfg.test_size,
        chosen: cv.chosen,
        chosen_params: fit.params.clone(),
        candidates: results,
        grid_edge: cv.grid_edge,
        grid_extended: cv.grid_extended,
        c_patience: cfg.c_patience,
        final_fit: convergence,
        prediction_rule: prediction_rule(fit.params.kind()).into(),
        calibration: fit.calibration,
        cv_seconds,
        final_fit_seconds,
        split: SplitExport {
            train_rows: part.split.train,
            test_rows: part.split.test,
            fold_of_train_row: part.fold_of,
        },
    };
    FeatureSetOutcome { saved, cv: report }
}
