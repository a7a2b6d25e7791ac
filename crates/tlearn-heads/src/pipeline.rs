//! `train` (split → CV grid search → final fit → saved head) and `evaluate` (held-out report).

use crate::cache::FeatureCache;
use crate::calibrate::Temperature;
use crate::head::{Engine, HeadKind, HeadSpec};
use crate::metrics::{self, Metrics};
use crate::model_file::{CvSummary, SavedHead, SplitRecord, FORMAT, VERSION};
use crate::select::{self, Candidate, CvResult};
use crate::split::{stratified_folds, train_test_split, Split};
use crate::transform::{BlockNorm, Scaling, Transform, TransformKind, TransformSpec};
use crate::view_rows::{TrainViews, ViewRows};
use anyhow::{bail, Result};
use ndarray::{Array3, ArrayView3, Axis};
use serde::Serialize;
use std::collections::HashMap;
use std::time::Instant;

/// The default C grid: log-spaced 10⁻³ … 10³, as scikit-learn users search it.
pub const DEFAULT_C_GRID: [f64; 7] = [0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0];
/// The default RBF gamma grid, in multiples of `gamma="scale"` (see `TrainConfig::gamma_grid`).
pub const DEFAULT_GAMMA_MULTIPLES: [f64; 4] = [0.01, 0.1, 1.0, 10.0];

#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub heads: Vec<HeadKind>,
    pub seed: u64,
    pub test_size: f64,
    pub folds: usize,
    pub c_grid: Vec<f64>,
    /// Absolute gamma values; `None` = [`DEFAULT_GAMMA_MULTIPLES`] × scikit-learn's
    /// `gamma="scale"` (1 / (dimension × variance) of each transform's output on the training
    /// part; 1 / dimension for standardised codes).
    pub gamma_grid: Option<Vec<f64>>,
    /// The transforms to cross-validate (each a CV candidate with every head); one entry keeps a
    /// single transform. Default: [`TransformKind::AUTO`].
    pub transforms: Vec<TransformKind>,
    pub pca: Option<usize>,
    /// How many times the grid is extended by one step when CV picks a C or gamma at its edge
    /// (see [`select::extend_at_edge`]); 0 keeps the grid as given.
    pub grid_extension: usize,
    /// The early-stopping rule of the C paths (see [`select::cross_validate`]): stop a path
    /// after this many C values without improvement; 0 fits every grid point.
    pub c_patience: usize,
    pub linear_tol: f64,
    /// Solvers of logistic regression and the RBF SVM (tlearn's own or linfa's crates).
    pub engine: Engine,
    /// Training rows from kept augmentation views (`views.npy`): off, on, or both
    /// cross-validated on the same folds and the better kept (`auto`, a no-op on a cache
    /// without views). See [`crate::view_rows`].
    pub train_views: TrainViews,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            heads: vec![HeadKind::LinearSvm, HeadKind::Logistic, HeadKind::RbfSvm],
            seed: 42,
            test_size: 0.2,
            folds: 5,
            c_grid: DEFAULT_C_GRID.to_vec(),
            gamma_grid: None,
            transforms: TransformKind::AUTO.to_vec(),
            pca: None,
            grid_extension: 1,
            c_patience: 2,
            linear_tol: 0.01,
            engine: Engine::Tlearn,
            train_views: TrainViews::Auto,
        }
    }
}

impl TrainConfig {
    /// Refuse settings no candidate can use before any CV work, naming the option: the C and
    /// gamma grids (positive numbers) and the linear SVM's tolerance (positive).
    pub fn check(&self) -> Result<()> {
        check_grid("--c-grid", &self.c_grid)?;
        if let Some(g) = &self.gamma_grid {
            check_grid("--gamma-grid", g)?;
        }
        if !(self.linear_tol.is_finite() && self.linear_tol > 0.0) {
            bail!(
                "--linear-tol must be a positive number, got {}",
                self.linear_tol
            );
        }
        Ok(())
    }
}

/// A grid of C or gamma values: not empty, every value a positive finite number; `option`
/// names it in the error.
pub fn check_grid(option: &str, grid: &[f64]) -> Result<()> {
    if let Some(bad) = grid.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
        bail!("{option} must be a non-empty list of positive numbers, got {bad}");
    }
    if grid.is_empty() {
        bail!("{option} must be a non-empty list of positive numbers, got none");
    }
    Ok(())
}

/// The split and fold assignment, exported so other tools (the scikit-learn bench) can use the
/// very same rows.
#[derive(Debug, Clone, Serialize)]
pub struct SplitExport {
    /// Cache row indices of the training part, ascending.
    pub train_rows: Vec<usize>,
    /// Cache row indices of the held-out part, ascending.
    pub test_rows: Vec<usize>,
    /// Fold number of each entry of `train_rows`.
    pub fold_of_train_row: Vec<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CvReport {
    pub classes: Vec<String>,
    /// The transforms cross-validated.
    pub transforms: Vec<TransformSpec>,
    /// The chosen candidate's transform.
    pub chosen_transform: TransformSpec,
    /// The fitted transform in words (e.g. "signed sqrt → standard").
    pub chosen_transform_steps: String,
    pub pca: Option<usize>,
    /// `--train-views` as asked.
    pub train_views: TrainViews,
    /// The chosen head's training rows came from every kept view of each training image
    /// (`None`: one averaged row per image).
    pub view_rows: Option<ViewRows>,
    /// With `--train-views auto` on a cache with views: the best CV accuracy with averaged
    /// rows and with view rows, on the same folds, and which was kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view_rows_cv: Option<ViewRowsCv>,
    pub folds: usize,
    pub seed: u64,
    pub test_size: f64,
    pub candidates: Vec<CvResult>,
    pub chosen: usize,
    pub chosen_params: HeadSpec,
    /// The chosen C or gamma sits at an edge of the grid searched (after any extension), e.g.
    /// "C at top of grid (1000)": the optimum may lie beyond it.
    pub grid_edge: Vec<String>,
    /// The grid points added because CV first picked an edge (empty when none was).
    pub grid_extended: Vec<String>,
    /// The early-stopping patience along C (0: every grid point fitted).
    pub c_patience: usize,
    /// How the final fit's solver stopped.
    pub final_fit: crate::fit_info::Convergence,
    /// How the chosen head predicts (the rule CV scored) and turns scores into probabilities.
    pub prediction_rule: String,
    /// The SVM probability calibration fitted on the out-of-fold scores.
    pub calibration: Option<Temperature>,
    pub cv_seconds: f64,
    pub final_fit_seconds: f64,
    pub split: SplitExport,
}

/// `--train-views auto`: both kinds of training rows cross-validated on the same folds.
#[derive(Debug, Clone, Serialize)]
pub struct ViewRowsCv {
    /// Best mean CV accuracy training on one averaged row per image.
    pub averaged_rows: f64,
    /// Best mean CV accuracy training on one row per view.
    pub view_rows: f64,
    /// "view rows" or "averaged rows" (ties go to the averaged rows: fewer rows, faster).
    pub kept: String,
}

/// Candidates cross-validated for one kind of training rows, the best of them and the grid
/// points added at an edge.
struct ModeCv {
    results: Vec<CvResult>,
    chosen: usize,
    grid_extended: Vec<String>,
}

pub struct TrainOutcome {
    pub saved: SavedHead,
    pub cv: CvReport,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Split the cache, run the CV grid, fit the chosen head on the whole training part.
/// `progress` is called after each candidate's CV. The cache's kept views (`views.npy`) are
/// read when `cfg.train_views` may use them.
pub fn train(
    cache: &FeatureCache,
    cfg: &TrainConfig,
    progress: impl FnMut(&CvResult),
) -> Result<TrainOutcome> {
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
    progress: impl FnMut(&CvResult),
) -> Result<TrainOutcome> {
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
    if cfg.heads.is_empty() {
        bail!("no head kinds to try");
    }
    cfg.check()?;
    // Ascending and without repeats: the order the C paths are walked (early stopping, edges).
    let mut c_grid = cfg.c_grid.clone();
    c_grid.sort_by(|a, b| a.total_cmp(b));
    c_grid.dedup();
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
    let view_names: Vec<String> = views.map(|(_, n)| n.to_vec()).unwrap_or_default();

    if cfg.transforms.is_empty() {
        bail!("no transforms to try");
    }
    // Each transform fitted on the whole training part: the default gamma grid is scaled to its
    // output, and the chosen one is the final model's transform.
    let specs: Vec<TransformSpec> = cfg
        .transforms
        .iter()
        .map(|&k| TransformSpec::new(k, cfg.pca))
        .collect();
    let mut fitted: Vec<Transform> = Vec::with_capacity(specs.len());
    let mut candidates = Vec::new();
    for &spec in &specs {
        let t = Transform::fit_spec(x_train.view(), spec)?;
        let gammas = match &cfg.gamma_grid {
            Some(g) => g.clone(),
            None => {
                let scale = gamma_scale(&t.apply(x_train.view())?);
                DEFAULT_GAMMA_MULTIPLES.iter().map(|m| m * scale).collect()
            }
        };
        candidates.extend(
            select::grid(&cfg.heads, &c_grid, &gammas, cfg.linear_tol, cfg.engine)
                .into_iter()
                .map(|params| Candidate {
                    transform: spec,
                    params,
                }),
        );
        fitted.push(t);
    }
    let t0 = Instant::now();
    let mut progress = progress;
    // Which kinds of training rows to cross-validate: averaged rows, view rows, or both on
    // the same folds (`auto`).
    let modes: Vec<bool> = match (cfg.train_views, &views_train) {
        (TrainViews::Auto, Some(_)) => vec![false, true],
        (_, Some(_)) => vec![true],
        (_, None) => vec![false],
    };
    let mut done: Vec<(bool, ModeCv)> = Vec::with_capacity(modes.len());
    for &on in &modes {
        let v = if on {
            views_train.as_ref().map(|v| v.view())
        } else {
            None
        };
        let rows = y_train.len() * v.map_or(1, |v| v.dim().1);
        // The RBF SVM's dense kernel does not fit above kernel_svm::MAX_ROWS training rows.
        let mode_candidates: Vec<Candidate> = candidates
            .iter()
            .copied()
            .filter(|c| {
                !(on && c.params.kind() == HeadKind::RbfSvm && rows > crate::kernel_svm::MAX_ROWS)
            })
            .collect();
        if mode_candidates.is_empty() {
            continue;
        }
        let mut results = select::cross_validate(
            x_train.view(),
            v,
            &y_train,
            n_classes,
            &fold_of,
            cfg.folds,
            &mode_candidates,
            cfg.seed,
            cfg.c_patience,
            &mut progress,
        )?;
        let mut chosen = select::choose(&results)?;
        let mut grid_extended = Vec::new();
        for _ in 0..cfg.grid_extension {
            let more = select::extend_at_edge(&results, chosen);
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
            results.extend(select::cross_validate(
                x_train.view(),
                v,
                &y_train,
                n_classes,
                &fold_of,
                cfg.folds,
                &more,
                cfg.seed,
                0,
                &mut progress,
            )?);
            chosen = select::choose(&results)?;
        }
        done.push((
            on,
            ModeCv {
                results,
                chosen,
                grid_extended,
            },
        ));
    }
    if done.is_empty() {
        bail!("no candidate to cross-validate");
    }
    let best = |m: &ModeCv| m.results[m.chosen].mean_accuracy;
    // Ties go to the averaged rows (listed first): fewer rows, a cheaper fit.
    let keep = (1..done.len()).fold(0, |k, i| {
        if best(&done[i].1) > best(&done[k].1) + 1e-9 {
            i
        } else {
            k
        }
    });
    let view_rows_cv = (done.len() == 2).then(|| ViewRowsCv {
        averaged_rows: best(&done[0].1),
        view_rows: best(&done[1].1),
        kept: if done[keep].0 {
            "view rows"
        } else {
            "averaged rows"
        }
        .into(),
    });
    let on = done[keep].0;
    let offset: usize = done[..keep].iter().map(|(_, m)| m.results.len()).sum();
    let grid_edge = select::edge_notes(&done[keep].1.results, done[keep].1.chosen);
    let chosen = offset + done[keep].1.chosen;
    let mut grid_extended = Vec::new();
    let mut results = Vec::new();
    for (_, m) in done {
        grid_extended.extend(m.grid_extended);
        results.extend(m.results);
    }
    let cv_seconds = t0.elapsed().as_secs_f64();
    let params = results[chosen].params;
    let chosen_transform = results[chosen].transform;

    let t1 = Instant::now();
    let views_fit = if on {
        views_train.as_ref().map(|v| v.view())
    } else {
        None
    };
    let all_train: Vec<usize> = (0..split.train.len()).collect();
    let (x_fit, y_fit) =
        crate::view_rows::training_rows(x_train.view(), views_fit, &all_train, &y_train);
    let mut transform = if on {
        // Fitted on the rows the head is trained on, as in each CV fold.
        Transform::fit_spec(x_fit.view(), chosen_transform)?
    } else {
        fitted
            .into_iter()
            .zip(&specs)
            .find(|(_, s)| **s == chosen_transform)
            .map(|(t, _)| t)
            .expect("the chosen transform is one of the specs")
    };
    let z = transform.apply(x_fit.view())?;
    // From here on the transform takes raw codes (x_train is already block-normalised).
    transform.blocks = blocks.cloned();
    let head = params.fit(z.view(), &y_fit, n_classes, cfg.seed)?;
    let view_rows = on.then(|| ViewRows {
        views: view_names.clone(),
        training_rows: x_fit.nrows(),
    });
    let fit = head.convergence();
    // SVM probabilities: one shared slope on the out-of-fold CV decision values, so the most
    // probable class is the decision-value argmax that CV scored (see `calibrate`).
    let calibration = match params.kind() {
        HeadKind::Logistic => None,
        _ => {
            let oof = results[chosen]
                .oof_scores
                .as_ref()
                .expect("successful candidates keep their scores");
            Some(Temperature::fit(oof, &y_train))
        }
    };
    let final_fit_seconds = t1.elapsed().as_secs_f64();
    for r in &mut results {
        r.oof_scores = None;
    }
    let r = &results[chosen];
    let saved = SavedHead {
        format: FORMAT.into(),
        version: VERSION,
        tlearn_version: env!("CARGO_PKG_VERSION").into(),
        created: unix_now(),
        classes: cache.classes().to_vec(),
        extractor: cache.meta.extractor.clone(),
        dim: cache.meta.dim,
        transform,
        params,
        head,
        fit: Some(fit),
        calibration: calibration.clone(),
        platt: None,
        cv: CvSummary {
            mean_accuracy: r.mean_accuracy,
            std_accuracy: r.std_accuracy,
            fold_accuracy: r.fold_accuracy.clone(),
            grid_edge: grid_edge.clone(),
        },
        split: SplitRecord {
            cache: cache.dir.display().to_string(),
            seed: cfg.seed,
            test_size: cfg.test_size,
            folds: cfg.folds,
            train_rows: split.train.len(),
            held_out: split.test.iter().map(|&i| cache.paths[i].clone()).collect(),
        },
        parts: Vec::new(),
        view_rows: view_rows.clone(),
    };
    let cv = CvReport {
        classes: cache.classes().to_vec(),
        transforms: specs,
        chosen_transform,
        chosen_transform_steps: saved.transform.describe(),
        pca: cfg.pca,
        train_views: cfg.train_views,
        view_rows,
        view_rows_cv,
        folds: cfg.folds,
        seed: cfg.seed,
        test_size: cfg.test_size,
        candidates: results,
        chosen,
        chosen_params: params,
        grid_edge,
        grid_extended,
        c_patience: cfg.c_patience,
        final_fit: fit,
        prediction_rule: prediction_rule(&params).into(),
        calibration,
        cv_seconds,
        final_fit_seconds,
        split: SplitExport {
            train_rows: split.train,
            test_rows: split.test,
            fold_of_train_row: fold_of,
        },
    };
    Ok(TrainOutcome { saved, cv })
}

/// scikit-learn's `gamma="scale"` for rows `z`: 1 / (dimension × variance of all entries).
fn gamma_scale(z: &ndarray::Array2<f32>) -> f64 {
    let n = z.len().max(1) as f64;
    let mean = z.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = z.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let d = z.ncols().max(1) as f64;
    if var > 0.0 {
        1.0 / (d * var)
    } else {
        1.0 / d
    }
}

/// The one prediction rule, as words for reports: CV, `eval` and `predict` all take the class
/// with the largest decision value (for logistic regression, the largest softmax probability,
/// the same thing).
pub fn prediction_rule(params: &HeadSpec) -> &'static str {
    match params.kind() {
        HeadKind::Logistic => {
            "argmax of the decision values (= argmax of the softmax probabilities)"
        }
        _ => "argmax of the decision values (= argmax of the calibrated probabilities)",
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Misclassified {
    pub path: String,
    pub truth: String,
    pub predicted: String,
    /// Probability given to the predicted class.
    pub p_predicted: f32,
    /// Probability given to the true class.
    pub p_truth: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub cache: String,
    /// "held-out" (the rows recorded in the head) or "all".
    pub rows: String,
    pub params: HeadSpec,
    /// How the final fit's solver stopped (absent for version-1 heads).
    pub fit: Option<crate::fit_info::Convergence>,
    pub scaling: Scaling,
    /// The fitted transform in words (e.g. "signed sqrt → standard").
    pub transform: String,
    pub pca_components: Option<usize>,
    pub cv: CvSummary,
    /// The rule that turned scores into the predicted class (the one CV scored).
    pub prediction_rule: String,
    pub calibration: Option<Temperature>,
    pub metrics: Metrics,
    pub misclassified: Vec<Misclassified>,
}

/// Evaluate a saved head on the held-out rows it records (or on every row with `all`).
pub fn evaluate(head: &SavedHead, cache: &FeatureCache, all: bool) -> Result<EvalReport> {
    head.check_extractor(
        &cache.meta.extractor,
        &format!("feature cache {}", cache.dir.display()),
    )?;
    if cache.meta.dim != head.dim {
        bail!(
            "feature cache {} has dim {} but the head expects {}",
            cache.dir.display(),
            cache.meta.dim,
            head.dim
        );
    }
    // Map the cache's classes to the head's by name.
    let mut class_map = Vec::with_capacity(cache.classes().len());
    for c in cache.classes() {
        match head.classes().iter().position(|h| h == c) {
            Some(k) => class_map.push(k),
            None => bail!(
                "feature cache {} has class {:?}, which the head was not trained on (its classes: {:?})",
                cache.dir.display(),
                c,
                head.classes()
            ),
        }
    }
    let rows: Vec<usize> = if all {
        (0..cache.rows()).collect()
    } else {
        let by_path: HashMap<&str, usize> = cache
            .paths
            .iter()
            .enumerate()
            .map(|(i, p)| (p.as_str(), i))
            .collect();
        let mut rows = Vec::with_capacity(head.split.held_out.len());
        let mut missing = Vec::new();
        for p in &head.split.held_out {
            match by_path.get(p.as_str()) {
                Some(&i) => rows.push(i),
                None => missing.push(p.as_str()),
            }
        }
        if !missing.is_empty() {
            bail!(
                "{} held-out image(s) recorded in the head are not in feature cache {} (e.g. {:?}); \
                 evaluate on the cache the head was trained on ({}), or use --all for a separate test cache",
                missing.len(),
                cache.dir.display(),
                &missing[..missing.len().min(3)],
                head.split.cache
            );
        }
        rows
    };
    if rows.is_empty() {
        bail!(
            "nothing to evaluate: 0 rows selected from {}",
            cache.dir.display()
        );
    }
    let x = cache.x.select(Axis(0), &rows);
    let y: Vec<usize> = rows.iter().map(|&i| class_map[cache.y[i]]).collect();
    let proba = head.predict_proba(x.view())?;
    let m = metrics::compute(head.classes(), &y, proba.view());
    let mut misclassified = Vec::new();
    for (j, &i) in rows.iter().enumerate() {
        let p = proba.row(j);
        let pred = metrics::argmax_f32(p.iter().copied());
        if pred != y[j] {
            misclassified.push(Misclassified {
                path: cache.paths[i].clone(),
                truth: head.classes()[y[j]].clone(),
                predicted: head.classes()[pred].clone(),
                p_predicted: p[pred],
                p_truth: p[y[j]],
            });
        }
    }
    misclassified.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(EvalReport {
        cache: cache.dir.display().to_string(),
        rows: if all { "all" } else { "held-out" }.into(),
        params: head.params,
        fit: head.fit,
        scaling: head.transform.scaling,
        transform: head.transform.describe(),
        pca_components: head.transform.pca.as_ref().map(|p| p.components.nrows()),
        cv: head.cv.clone(),
        prediction_rule: prediction_rule(&head.params).into(),
        calibration: head.calibration.clone(),
        metrics: m,
        misclassified,
    })
}
