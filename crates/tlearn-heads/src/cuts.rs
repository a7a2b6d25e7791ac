//! Selection over feature sets: which cut(s) of which backbone(s) a head is trained on, chosen
//! by cross-validation on the training part, one layer above the per-cache CV of
//! [`pipeline::train`] (which it calls, unchanged, once per candidate feature set).
//!
//! Candidates ([`FeatureSet`]): every cut given (a cut set's `cuts.json`, optionally a second
//! backbone's cache or set of the same images), and concatenations of two of them (columns of
//! the first, then of the second). Every candidate is cut from the same rows, so the seeded
//! split (grouped by image content hash) and the folds are identical across candidates; this is
//! checked, not assumed.
//!
//! The rule, in two stages so that cost stays reasonable (MNIST, 8,000 training rows over
//! six cuts, in minutes on 2 cores):
//! 1. **screen**: every single cut is cross-validated with a cheap grid
//!    ([`CutConfig::screen_heads`] × [`CutConfig::screen_c_grid`]; logistic regression at
//!    C ∈ {0.1, 1} by default, standardised codes, no grid extension). A cut whose codes equal an earlier one's (`head_conv` average
//!    pooled is `features`) is not screened again. The top [`CutConfig::pair_top`] singles are
//!    then paired (every pair among them; with two backbones also the best of each), and the
//!    pairs screened the same way.
//! 2. **tune**: the [`CutConfig::finalists`] best screened sets get the full head grid
//!    ([`CutConfig::train`], what `--head`, `--c-grid`, ... ask for). The best full-grid CV
//!    accuracy wins; ties go to fewer dimensions, then to the better screen rank.
//!
//! The held-out part is touched by neither stage (it is only `eval`'s).
//!
//! Each block of a concatenation is normalised on its own before the join
//! ([`CutConfig::block_norm`], default signed square root then L2; the rule is
//! [`BlockNorm`]'s), the same at screen, full grid and final fit, and saved in the head's
//! transform so `eval` and `predict` apply it too.
//!
//! A head trained here on a concatenation records its parts ([`FeaturePart`]: name,
//! fingerprint, dimension and column offset) in `head.json` (a single cut is its `extractor`); [`assemble_for_head`] finds them again among the caches a
//! user names for `eval`.

use crate::cache::FeatureCache;
use crate::head::HeadKind;
use crate::model_file::{FeaturePart, SavedHead};
use crate::pipeline::{self, CvReport, TrainConfig, TrainOutcome};
use crate::select::CvResult;
use crate::transform::{BlockNorm, BlockRule};
use crate::view_rows::TrainViews;
use anyhow::Result;
use ndarray::{concatenate, Axis};
use serde::Serialize;
use std::time::Instant;
use thiserror::Error;
use tlearn_cache::NamedCache;

/// Problems with the caches given for a selection or an evaluation.
#[derive(Debug, Error)]
pub enum CutsError {
    #[error("no feature caches given")]
    Empty,
    #[error(
        "{a} and {b} do not hold the same images ({na} vs {nb} rows; {detail}); codes to \
         compare or concatenate must come from the same images (extract both from the same \
         folder)"
    )]
    DifferentImages {
        a: String,
        b: String,
        na: usize,
        nb: usize,
        detail: String,
    },
    #[error("the head's part '{part}' ({what}) is in none of the caches given: {searched}")]
    PartMissing {
        part: String,
        what: String,
        searched: String,
    },
    #[error("--cut {asked}: no cut named '{missing}' among the caches given ({available})")]
    UnknownCut {
        asked: String,
        missing: String,
        available: String,
    },
    #[error("--pair-top {0}: must be 0 (no concatenations) or at least 2")]
    PairTop(usize),
}

/// One cache taking part in the selection.
#[derive(Debug, Clone)]
pub struct CutInput {
    /// The name reports use: the cut name (`stage6`), prefixed by the backbone for a second
    /// backbone's cuts (`mobilenetv2/features`).
    pub name: String,
    /// 0 for the first path given, 1 for the second backbone's.
    pub backbone: usize,
    /// The backbone's bottleneck (its registry default cut): what "similar to ImageNet" means.
    pub bottleneck: bool,
    pub cache: FeatureCache,
}

#[derive(Debug, Clone)]
pub struct CutConfig {
    /// The full grid, run on the finalists (and alone when there is one candidate).
    pub train: TrainConfig,
    pub screen_heads: Vec<HeadKind>,
    pub screen_c_grid: Vec<f64>,
    /// Pair every two of this many best singles (0: no concatenations).
    pub pair_top: usize,
    /// How many screened sets get the full grid.
    pub finalists: usize,
    /// Train on exactly these cuts (concatenated in this order) instead of selecting:
    /// `--cut stage6+features`.
    pub fixed: Option<Vec<String>>,
    /// How each block of a concatenation is normalised before it is joined (`None`: joined
    /// raw). The same rule at screen, full grid, final fit, and (saved in the head's transform)
    /// at `eval` and `predict`.
    pub block_norm: Option<BlockRule>,
    /// Refuse a search whose logistic fits are estimated to take longer than this
    /// ([`crate::search_cost`]); `None`: no limit.
    pub max_minutes: Option<f64>,
}

impl CutConfig {
    pub fn new(train: TrainConfig) -> CutConfig {
        CutConfig {
            train,
            screen_heads: vec![HeadKind::Logistic],
            screen_c_grid: vec![0.1, 1.0],
            pair_top: 3,
            finalists: 2,
            fixed: None,
            block_norm: Some(BlockRule::SqrtL2),
            max_minutes: Some(60.0),
        }
    }

    /// The rule in words, for the log and `cv.json`.
    pub fn rule(&self) -> String {
        let heads: Vec<&str> = self.screen_heads.iter().map(|h| h.name()).collect();
        let cs: Vec<String> = self.screen_c_grid.iter().map(|c| c.to_string()).collect();
        format!(
            "screen every cut with {} at C in {{{}}} (5-fold CV on the training part, same \
             split and folds for every cut); {}; the {} best screened sets get the full head \
             grid; best full-grid CV accuracy wins (ties: fewer dimensions, then screen rank)",
            heads.join(" + "),
            cs.join(", "),
            if self.pair_top >= 2 {
                format!(
                    "concatenate every pair of the {} best cuts (and the best cut of each \
                     backbone when two are given; {}) and screen those",
                    self.pair_top,
                    match self.block_norm {
                        Some(BlockRule::SqrtL2) => {
                            "each block signed-square-rooted and L2-normalised first"
                        }
                        Some(BlockRule::L2) => "each block L2-normalised first",
                        None => "blocks joined raw",
                    }
                )
            } else {
                "no concatenations".into()
            },
            self.finalists.max(1)
        )
    }
}

/// A CV score of a feature set: the best candidate of one grid.
#[derive(Debug, Clone, Serialize)]
pub struct Score {
    pub mean_accuracy: f64,
    pub std_accuracy: f64,
    /// The best head and hyper-parameters of that grid.
    pub head: String,
    /// Wall time of the grid's CV.
    pub seconds: f64,
}

impl Score {
    fn of(cv: &CvReport) -> Score {
        let r = &cv.candidates[cv.chosen];
        Score {
            mean_accuracy: r.mean_accuracy,
            std_accuracy: r.std_accuracy,
            head: if r.view_rows {
                format!("{} + view rows", r.params)
            } else {
                r.params.to_string()
            },
            seconds: cv.cv_seconds,
        }
    }
}

/// One candidate feature set and how CV judged it.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureSet {
    /// `stage6`, or `stage6+features` for a concatenation.
    pub name: String,
    pub parts: Vec<String>,
    pub dim: usize,
    /// The screen's score (`None`: not screened, see `same_codes_as`, or the only candidate).
    pub screen: Option<Score>,
    /// The full grid's score (finalists only).
    pub full: Option<Score>,
    /// Not screened: its codes equal this earlier cut's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub same_codes_as: Option<String>,
    #[serde(skip)]
    members: Vec<usize>,
}

/// The CS231n scenario the data and the chosen cut point to.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// "small" (under [`LARGE_PER_CLASS`] training images per class on average) or "large".
    pub size: String,
    /// "similar" (the chosen set holds a backbone's bottleneck cut), "different" (only earlier
    /// cuts), or "not inferred" (one cut only, or no bottleneck known).
    pub similarity: String,
    pub training_images: usize,
    pub classes: usize,
    /// The scenario in plain words.
    pub text: String,
}

/// Training images per class from which a set counts as large.
pub const LARGE_PER_CLASS: usize = 1000;

/// What `cv.json` says about the selection over cuts.
#[derive(Debug, Clone, Serialize)]
pub struct CutSelection {
    pub rule: String,
    pub sets: Vec<FeatureSet>,
    /// Name of the chosen set.
    pub chosen: String,
    pub scenario: Scenario,
    /// Wall time of the whole selection (screen + full grids + final fit).
    pub seconds: f64,
}

pub struct CutsOutcome {
    /// The chosen set's head (with its parts recorded).
    pub saved: SavedHead,
    /// The chosen set's full-grid CV report.
    pub cv: CvReport,
    pub cuts: CutSelection,
}

/// `cv.json`: the chosen set's CV report with the selection over cuts beside it.
#[derive(Serialize)]
pub struct CvFile<'a> {
    #[serde(flatten)]
    pub cv: &'a CvReport,
    pub cuts: &'a CutSelection,
}

/// What the selection reports while it runs.
pub enum Event<'a> {
    /// A stage begins (in words).
    Stage(&'a str),
    /// One grid candidate of one feature set was cross-validated.
    Cv { set: &'a str, result: &'a CvResult },
    /// A set was not screened, and why.
    Skipped { set: &'a str, why: &'a str },
}

/// Refuse caches that do not hold the same images in the same rows (paths, labels and content
/// hashes; caches list their rows sorted by path, so the same images give the same order).
pub fn check_same_images(inputs: &[CutInput]) -> Result<(), CutsError> {
    let Some(first) = inputs.first() else {
        return Err(CutsError::Empty);
    };
    let a = &first.cache;
    for other in &inputs[1..] {
        let b = &other.cache;
        let name = |c: &FeatureCache| c.dir.display().to_string();
        if a.paths != b.paths {
            let only = |x: &[String], y: &[String]| -> Vec<String> {
                let y: std::collections::HashSet<&String> = y.iter().collect();
                let mut v: Vec<String> = x.iter().filter(|p| !y.contains(p)).cloned().collect();
                v.sort();
                v.truncate(3);
                v
            };
            let (oa, ob) = (only(&a.paths, &b.paths), only(&b.paths, &a.paths));
            let detail = if oa.is_empty() && ob.is_empty() {
                "same paths in another order".to_string()
            } else {
                format!("only in the first: {oa:?}; only in the second: {ob:?}")
            };
            return Err(CutsError::DifferentImages {
                a: name(a),
                b: name(b),
                na: a.rows(),
                nb: b.rows(),
                detail,
            });
        }
        if let Some(i) = (0..a.rows()).find(|&i| a.sha256[i] != b.sha256[i] || a.y[i] != b.y[i]) {
            return Err(CutsError::DifferentImages {
                a: name(a),
                b: name(b),
                na: a.rows(),
                nb: b.rows(),
                detail: format!(
                    "'{}' has other content (sha256) or class in the second; re-run `tlearn \
                     extract` on both",
                    a.paths[i]
                ),
            });
        }
    }
    Ok(())
}

/// The caches side by side as one cache: columns of the first, then of the second, ...; the
/// rows, classes and dataset are the first's (all are checked equal), the fingerprint is the
/// first's (a head records every part's in [`FeaturePart`]).
fn concat(caches: &[&FeatureCache]) -> FeatureCache {
    let mut out = caches[0].clone();
    if caches.len() > 1 {
        let views: Vec<_> = caches.iter().map(|c| c.x.view()).collect();
        out.x = concatenate(Axis(1), &views).expect("same rows checked");
        out.meta.dim = out.x.ncols();
    }
    out
}

/// The per-block normalisation of a concatenation of `caches` (none for a single cache).
pub fn block_norm_of(rule: Option<BlockRule>, caches: &[&FeatureCache]) -> Option<BlockNorm> {
    let rule = rule?;
    (caches.len() > 1).then(|| BlockNorm::new(rule, caches.iter().map(|c| c.meta.dim).collect()))
}

/// The caches' kept views side by side (within each view, columns of the first cache, then of
/// the second, as [`concat`]); `None` unless every cache keeps the same views.
fn concat_views(caches: &[&FeatureCache]) -> Result<Option<ndarray::Array3<f32>>> {
    let names = &caches[0].meta.views;
    if caches.iter().any(|c| c.meta.views != *names) {
        return Ok(None);
    }
    let mut parts = Vec::with_capacity(caches.len());
    for c in caches {
        match c.read_views()? {
            Some(v) => parts.push(v),
            None => return Ok(None),
        }
    }
    if parts.len() == 1 {
        return Ok(parts.pop());
    }
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    Ok(Some(
        concatenate(Axis(2), &views)?
            .as_standard_layout()
            .into_owned(),
    ))
}

/// The parts a head trained on `members` records.
fn parts_of(inputs: &[CutInput], members: &[usize]) -> Vec<FeaturePart> {
    let mut offset = 0;
    members
        .iter()
        .map(|&m| {
            let c = &inputs[m].cache;
            let p = FeaturePart {
                name: inputs[m].name.clone(),
                cache: c.dir.display().to_string(),
                extractor: c.meta.extractor.clone(),
                dim: c.meta.dim,
                offset,
            };
            offset += c.meta.dim;
            p
        })
        .collect()
}

/// The candidate made of input `i` alone.
fn single(inp: &CutInput, i: usize) -> FeatureSet {
    FeatureSet {
        name: inp.name.clone(),
        parts: vec![inp.name.clone()],
        dim: inp.cache.meta.dim,
        screen: None,
        full: None,
        same_codes_as: None,
        members: vec![i],
    }
}

/// Equal codes (within float rounding): `head_conv` average-pooled is `features`.
fn same_codes(a: &FeatureCache, b: &FeatureCache) -> bool {
    if a.x.dim() != b.x.dim() {
        return false;
    }
    let scale = a.x.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.x.iter()
        .zip(b.x.iter())
        .all(|(u, v)| (u - v).abs() <= 1e-5 * scale)
}

/// The plain-words scenario: size from training images per class, similarity from whether the
/// chosen set holds a bottleneck cut.
pub fn scenario(
    training_images: usize,
    classes: usize,
    chosen: Option<(&str, bool)>,
    single_cut: bool,
) -> Scenario {
    let large = training_images >= LARGE_PER_CLASS * classes.max(1);
    let size = if large { "large" } else { "small" };
    let similarity = match chosen {
        _ if single_cut => "not inferred",
        None => "not inferred",
        Some((_, true)) => "similar",
        Some((_, false)) => "different",
    };
    let per_class = training_images as f64 / classes.max(1) as f64;
    let size_words = format!(
        "{size} data set ({training_images} training images, {per_class:.0} per class; large \
         from {LARGE_PER_CLASS} per class)"
    );
    let text = match (large, similarity, chosen) {
        (_, "not inferred", _) => format!(
            "{size_words}; similarity to ImageNet not inferred ({}): give a cut set (`tlearn \
             extract --layer all`) so CV can compare cuts",
            if single_cut {
                "one cut only"
            } else {
                "the backbone's bottleneck cut is not known"
            }
        ),
        (false, "similar", Some((c, _))) => format!(
            "{size_words}, similar to ImageNet: codes holding the bottleneck ({c}) are best, so \
             a linear classifier on them (CS231n: small data, similar data)"
        ),
        (false, _, Some((c, _))) => format!(
            "{size_words}, different from ImageNet: codes from earlier in the network ({c}) beat \
             the bottleneck (CS231n: small data, very different data: a classifier on \
             activations from somewhere earlier in the network)"
        ),
        (true, "similar", Some((c, _))) => format!(
            "{size_words}, similar to ImageNet: codes holding the bottleneck ({c}) are best; with this \
             much data CS231n would fine-tune the network, which tlearn does not do"
        ),
        (true, _, Some((c, _))) => format!(
            "{size_words}, different from ImageNet: earlier codes ({c}) beat the bottleneck; \
             with this much data CS231n would fine-tune or train from scratch, which tlearn \
             does not do"
        ),
        _ => size_words,
    };
    Scenario {
        size: size.into(),
        similarity: similarity.into(),
        training_images,
        classes,
        text,
    }
}

/// Choose the feature set and its head by CV (the rule in the module doc) and fit the winner
/// on the whole training part.
pub fn select(
    inputs: &[CutInput],
    cfg: &CutConfig,
    mut progress: impl FnMut(Event),
) -> Result<CutsOutcome> {
    // Options no candidate can use are refused before any CV work, by their own names.
    cfg.train.check()?;
    pipeline::check_grid("--screen-c-grid", &cfg.screen_c_grid)?;
    if let Some(names) = &cfg.fixed {
        if let Some((i, n)) = names
            .iter()
            .enumerate()
            .find(|(i, n)| names[..*i].contains(n))
        {
            anyhow::bail!(
                "--cut {}: '{n}' is named twice (part {} and part {}); a concatenation joins \
                 different cuts",
                names.join("+"),
                names.iter().position(|m| m == n).unwrap_or(0) + 1,
                i + 1
            );
        }
    }
    check_same_images(inputs)?;
    if let Some(est) = crate::search_cost::estimate(inputs, cfg) {
        if let Some(note) = crate::search_cost::check(&est, cfg.max_minutes)? {
            progress(Event::Stage(note));
        }
    }
    // `--train-views on` needs every cut's views: refused before any CV work.
    if cfg.train.train_views == TrainViews::On {
        if let Some(i) = inputs.iter().find(|i| i.cache.meta.views.is_empty()) {
            return Err(crate::error::HeadError::NoViews {
                cache: i.cache.dir.display().to_string(),
            }
            .into());
        }
    }
    if cfg.pair_top == 1 {
        return Err(CutsError::PairTop(1).into());
    }
    let t0 = Instant::now();
    let mut sets: Vec<FeatureSet> = Vec::new();
    for (i, inp) in inputs.iter().enumerate() {
        let dup = (0..i).find(|&j| same_codes(&inputs[j].cache, &inp.cache));
        sets.push(FeatureSet {
            same_codes_as: dup.map(|j| inputs[j].name.clone()),
            ..single(inp, i)
        });
    }
    let screen_cfg = TrainConfig {
        heads: cfg.screen_heads.clone(),
        c_grid: cfg.screen_c_grid.clone(),
        gamma_grid: None,
        // The screen ranks cuts: one transform and the grid as given keep it cheap; the
        // finalists get every transform and the extended grid.
        transforms: vec![crate::transform::TransformKind::Standard],
        grid_extension: 0,
        // The screen ranks cuts on averaged rows; the finalists get the view rows too.
        train_views: TrainViews::Off,
        ..cfg.train.clone()
    };
    let mut split_rows: Option<Vec<usize>> = None;
    let mut run = |set: &FeatureSet,
                   tc: &TrainConfig,
                   progress: &mut dyn FnMut(Event)|
     -> Result<TrainOutcome> {
        let caches: Vec<&FeatureCache> = set.members.iter().map(|&m| &inputs[m].cache).collect();
        let cache = concat(&caches);
        let blocks = block_norm_of(cfg.block_norm, &caches);
        let views = match tc.train_views {
            TrainViews::Off => None,
            _ => concat_views(&caches)?,
        };
        let names = caches[0].meta.views.clone();
        let views = views.as_ref().map(|v| (v.view(), names.as_slice()));
        let out = pipeline::train_with_views(&cache, views, blocks.as_ref(), tc, |r| {
            progress(Event::Cv {
                set: &set.name,
                result: r,
            })
        })?;
        match &split_rows {
            None => split_rows = Some(out.cv.split.train_rows.clone()),
            Some(rows) => anyhow::ensure!(
                *rows == out.cv.split.train_rows,
                "internal: the split of {} differs from the first candidate's",
                set.name
            ),
        }
        Ok(out)
    };

    if let Some(names) = &cfg.fixed {
        let mut members = Vec::new();
        for n in names {
            match inputs.iter().position(|i| &i.name == n) {
                Some(m) => members.push(m),
                None => {
                    let available: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
                    return Err(CutsError::UnknownCut {
                        asked: names.join("+"),
                        missing: n.clone(),
                        available: available.join(", "),
                    }
                    .into());
                }
            }
        }
        if members.len() == 1 {
            sets.truncate(0);
            let m = members[0];
            sets.push(FeatureSet {
                same_codes_as: None,
                ..single(&inputs[m], m)
            });
        } else {
            sets = vec![FeatureSet {
                name: names.join("+"),
                parts: names.clone(),
                dim: members.iter().map(|&m| inputs[m].cache.meta.dim).sum(),
                screen: None,
                full: None,
                same_codes_as: None,
                members,
            }];
        }
    }
    let candidates: Vec<usize> = (0..sets.len())
        .filter(|&i| sets[i].same_codes_as.is_none())
        .collect();
    for s in sets.iter().filter(|s| s.same_codes_as.is_some()) {
        let why = format!(
            "same codes as {}",
            s.same_codes_as.as_deref().unwrap_or("?")
        );
        progress(Event::Skipped {
            set: &s.name,
            why: &why,
        });
    }
    let winner: TrainOutcome;
    let chosen_set: usize;
    if candidates.len() == 1 {
        progress(Event::Stage("one feature set: full head grid"));
        let i = candidates[0];
        let out = run(&sets[i], &cfg.train, &mut progress)?;
        sets[i].full = Some(Score::of(&out.cv));
        winner = out;
        chosen_set = i;
    } else {
        progress(Event::Stage("screening every cut"));
        for &i in &candidates {
            let out = run(&sets[i], &screen_cfg, &mut progress)?;
            sets[i].screen = Some(Score::of(&out.cv));
        }
        let screened = |sets: &[FeatureSet], pool: &[usize]| -> Vec<usize> {
            let mut v: Vec<usize> = pool
                .iter()
                .copied()
                .filter(|&i| sets[i].screen.is_some())
                .collect();
            // Stable: ties keep the input order (the set's cut order).
            v.sort_by(|&a, &b| {
                let sa = sets[a].screen.as_ref().map(|s| s.mean_accuracy);
                let sb = sets[b].screen.as_ref().map(|s| s.mean_accuracy);
                sb.partial_cmp(&sa).unwrap_or(std::cmp::Ordering::Equal)
            });
            v
        };
        // Pairs.
        let ranked = screened(&sets, &candidates);
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        if cfg.pair_top >= 2 {
            let top: Vec<usize> = ranked.iter().copied().take(cfg.pair_top).collect();
            for a in 0..top.len() {
                for b in a + 1..top.len() {
                    pairs.push((top[a], top[b]));
                }
            }
            let best_of = |bb: usize| {
                ranked
                    .iter()
                    .copied()
                    .find(|&i| inputs[sets[i].members[0]].backbone == bb)
            };
            if let (Some(a), Some(b)) = (best_of(0), best_of(1)) {
                if !pairs.contains(&(a, b)) && !pairs.contains(&(b, a)) {
                    pairs.push((a, b));
                }
            }
        }
        if !pairs.is_empty() {
            progress(Event::Stage("screening concatenations"));
        }
        for (a, b) in pairs {
            let members = vec![sets[a].members[0], sets[b].members[0]];
            let set = FeatureSet {
                name: format!("{}+{}", sets[a].name, sets[b].name),
                parts: vec![sets[a].name.clone(), sets[b].name.clone()],
                dim: sets[a].dim + sets[b].dim,
                screen: None,
                full: None,
                same_codes_as: None,
                members,
            };
            let out = run(&set, &screen_cfg, &mut progress)?;
            let mut set = set;
            set.screen = Some(Score::of(&out.cv));
            sets.push(set);
        }
        let all: Vec<usize> = (0..sets.len()).collect();
        let finalists: Vec<usize> = screened(&sets, &all)
            .into_iter()
            .take(cfg.finalists.max(1))
            .collect();
        progress(Event::Stage("full head grid on the best screened sets"));
        let mut best: Option<(usize, usize, TrainOutcome)> = None; // (rank, set, outcome)
        for (rank, &i) in finalists.iter().enumerate() {
            let out = run(&sets[i], &cfg.train, &mut progress)?;
            let score = Score::of(&out.cv);
            let better = match &best {
                None => true,
                Some((_, j, b)) => {
                    let bs = &b.cv.candidates[b.cv.chosen];
                    let d = score.mean_accuracy - bs.mean_accuracy;
                    d > 1e-9 || (d.abs() <= 1e-9 && sets[i].dim < sets[*j].dim)
                }
            };
            sets[i].full = Some(score);
            if better {
                best = Some((rank, i, out));
            }
        }
        let (_, i, out) = best.expect("at least one finalist");
        winner = out;
        chosen_set = i;
    }

    let mut saved = winner.saved;
    // A single cut is described by `extractor` alone, as before; a concatenation lists its
    // parts.
    if sets[chosen_set].members.len() > 1 {
        saved.parts = parts_of(inputs, &sets[chosen_set].members);
    }
    let classes = saved.classes.len();
    let singles = inputs.iter().filter(|i| i.backbone == 0).count();
    let any_bottleneck = inputs.iter().any(|i| i.bottleneck);
    let chosen = &sets[chosen_set];
    let holds_bottleneck = chosen.members.iter().any(|&m| inputs[m].bottleneck);
    let scen = scenario(
        winner.cv.split.train_rows.len(),
        classes,
        any_bottleneck.then_some((chosen.name.as_str(), holds_bottleneck)),
        singles < 2 || cfg.fixed.is_some(),
    );
    let cuts = CutSelection {
        rule: if cfg.fixed.is_some() {
            "the cut(s) given by --cut: the full head grid only".into()
        } else if sets.len() == 1 {
            "one feature set: the full head grid only".into()
        } else {
            cfg.rule()
        },
        chosen: chosen.name.clone(),
        sets,
        scenario: scen,
        seconds: t0.elapsed().as_secs_f64(),
    };
    Ok(CutsOutcome {
        saved,
        cv: winner.cv,
        cuts,
    })
}

/// The one cache (columns laid out as the head's parts) that `eval` scores a head on, from the
/// caches `named` (a set's cuts and/or plain caches, possibly of two backbones). Each part is
/// found by its fingerprint, compared by value; a part in none of them is refused, naming it
/// and what was searched. A head with one part given one cache gets that cache as it is (the
/// fingerprint check, with its field-by-field reason, is then `evaluate`'s).
pub fn assemble_for_head(head: &SavedHead, named: &[NamedCache]) -> Result<FeatureCache> {
    let parts = head.parts();
    if named.is_empty() {
        return Err(CutsError::Empty.into());
    }
    if parts.len() == 1 && named.len() == 1 {
        return Ok(FeatureCache::load(&named[0].dir)?);
    }
    let mut caches = Vec::with_capacity(parts.len());
    for p in &parts {
        let found = named.iter().find(|n| {
            tlearn_cache::existing_fingerprint(&n.dir)
                .is_some_and(|f| f.compare(&p.extractor, "", "").is_none())
        });
        match found {
            Some(n) => caches.push(FeatureCache::load(&n.dir)?),
            None => {
                let searched: Vec<String> = named
                    .iter()
                    .map(|n| match tlearn_cache::existing_fingerprint(&n.dir) {
                        Some(f) => match f.compare(&p.extractor, "cache", "head") {
                            Some(d) => format!("{} ({d})", n.dir.display()),
                            None => n.dir.display().to_string(),
                        },
                        None => format!("{} (no meta.json)", n.dir.display()),
                    })
                    .collect();
                return Err(CutsError::PartMissing {
                    part: p.name.clone(),
                    what: format!(
                        "{} layer {} {} pooling, {} dims",
                        p.extractor.backbone, p.extractor.layer, p.extractor.pool, p.dim
                    ),
                    searched: searched.join("; "),
                }
                .into());
            }
        }
    }
    let inputs: Vec<CutInput> = caches
        .into_iter()
        .zip(&parts)
        .map(|(cache, p)| CutInput {
            name: p.name.clone(),
            backbone: 0,
            bottleneck: false,
            cache,
        })
        .collect();
    check_same_images(&inputs)?;
    let refs: Vec<&FeatureCache> = inputs.iter().map(|i| &i.cache).collect();
    Ok(concat(&refs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_words_follow_size_and_where_the_best_cut_sits() {
        let s = scenario(150, 10, Some(("features", true)), false);
        assert_eq!(
            (s.size.as_str(), s.similarity.as_str()),
            ("small", "similar")
        );
        assert!(s.text.contains("similar to ImageNet"), "{}", s.text);
        let s = scenario(2100, 10, Some(("stage6", false)), false);
        assert_eq!(s.similarity, "different");
        assert!(s.text.contains("earlier in the network"), "{}", s.text);
        let s = scenario(50_000, 10, Some(("stage5", false)), false);
        assert_eq!(s.size, "large");
        assert!(s.text.contains("fine-tune"), "{}", s.text);
        let s = scenario(150, 10, Some(("features", true)), true);
        assert_eq!(s.similarity, "not inferred");
    }
}
