//! Selection over feature sets: which cut(s) of which backbone(s) a head is trained on, chosen
//! by cross-validation on the training part, one layer above the per-feature-set grid search of
//! `feature_set` (which it calls, unchanged, once per candidate feature set).
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
//!    C ∈ {0.1, 1} by default, standardised codes, no grid extension). A cut whose codes equal an
//!    earlier one's (`head_conv` average pooled is `features`) is not screened again. The top [`CutConfig::pair_top`] singles are
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
//! `BlockNorm`'s), the same at screen, full grid and final fit, and saved in the head's
//! transform so `eval` and `predict` apply it too.
//!
//! A head trained here on a concatenation records its parts (`FeaturePart`: name,
//! fingerprint, dimension and column offset) in `head.json` (a single cut is its `extractor`); `evaluate::assemble_for_head`
//! finds them again among the caches a user names for `eval`.

use crate::cache::FeatureCache;
use crate::head::HeadKind;
use crate::train::config::{CutConfig, HeadChoice, SelectRule, TrainConfig};
use crate::train::cv_file::{CutSelection, CvFile, CvResult, FeatureSet, Score};
use crate::train::feature_set::{train_with_views, FeatureSetOutcome};
use crate::train::inputs::{
    block_norm_of, check_same_images, concat, concat_views, parts_of, same_codes, CutInput,
    CutsError,
};
use crate::train::scenario::{paired, scenario};
use crate::train::training::TrainOutcome;
use crate::view_rows::TrainViews;
use anyhow::Result;
use std::time::Instant;

/// What the selection reports while it runs.
pub enum Event<'a> {
    /// A stage begins (in words).
    Stage(&'a str),
    /// One grid candidate of one feature set was cross-validated.
    Cv { set: &'a str, result: &'a CvResult },
    /// A set was not screened, and why.
    Skipped { set: &'a str, why: &'a str },
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

/// Runs one feature set's grid search on the inputs, checking every set is split alike.
struct Runner<'a> {
    inputs: &'a [CutInput],
    cfg: &'a CutConfig,
    split_rows: Option<Vec<usize>>,
}

impl Runner<'_> {
    fn run(
        &mut self,
        set: &FeatureSet,
        tc: &TrainConfig,
        progress: &mut dyn FnMut(Event),
    ) -> Result<FeatureSetOutcome> {
        let caches: Vec<&FeatureCache> =
            set.members.iter().map(|&m| &self.inputs[m].cache).collect();
        let cache = concat(&caches);
        let blocks = block_norm_of(self.cfg.block_norm, &caches);
        let views = match tc.train_views {
            TrainViews::Off => None,
            _ => concat_views(&caches)?,
        };
        let names = caches[0].meta.views.clone();
        let views = views.as_ref().map(|v| (v.view(), names.as_slice()));
        let out = train_with_views(&cache, views, blocks.as_ref(), tc, |r| {
            progress(Event::Cv {
                set: &set.name,
                result: r,
            })
        })?;
        match &self.split_rows {
            None => self.split_rows = Some(out.cv.split.train_rows.clone()),
            Some(rows) => anyhow::ensure!(
                *rows == out.cv.split.train_rows,
                "internal: the split of {} differs from the first candidate's",
                set.name
            ),
        }
        Ok(out)
    }
}

/// Refuse what cannot work before any CV: `--train-views on` needs every cut's views.
fn check(inputs: &[CutInput], cfg: &CutConfig) -> Result<()> {
    check_same_images(inputs)?;
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
    Ok(())
}

/// The one set `--cut` names (a cut, or the concatenation of several in order).
fn fixed_set(inputs: &[CutInput], names: &[String]) -> Result<FeatureSet> {
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
    Ok(if members.len() == 1 {
        let m = members[0];
        single(&inputs[m], m)
    } else {
        FeatureSet {
            name: names.join("+"),
            parts: names.to_vec(),
            dim: members.iter().map(|&m| inputs[m].cache.meta.dim).sum(),
            screen: None,
            full: None,
            same_codes_as: None,
            members,
        }
    })
}

/// The screen's grid: the cheap heads and C values, one transform, averaged rows.
fn screen_config(cfg: &CutConfig) -> TrainConfig {
    TrainConfig {
        heads: HeadChoice::Only(cfg.screen_heads.clone()),
        c_grid: cfg.screen_c_grid.clone(),
        // The screen ranks cuts: one transform and the grid as given keep it cheap; the
        // finalists get every transform and the extended grid.
        transforms: vec![crate::transform::TransformKind::Standard],
        grid_extension: 0,
        // The screen ranks cuts on averaged rows; the finalists get the view rows too.
        train_views: TrainViews::Off,
        ..cfg.train.clone()
    }
}

/// Indices of the screened sets among `pool`, best screen score first (stable: ties keep the
/// input order, the set's cut order).
fn ranked(sets: &[FeatureSet], pool: &[usize]) -> Vec<usize> {
    let mut v: Vec<usize> = pool
        .iter()
        .copied()
        .filter(|&i| sets[i].screen.is_some())
        .collect();
    v.sort_by(|&a, &b| {
        let sa = sets[a].screen.as_ref().map(|s| s.mean_accuracy);
        let sb = sets[b].screen.as_ref().map(|s| s.mean_accuracy);
        sb.partial_cmp(&sa).unwrap_or(std::cmp::Ordering::Equal)
    });
    v
}

/// The pairs to screen: every two of the `pair_top` best singles, and the best single of each
/// backbone when two are given.
fn pairs(
    inputs: &[CutInput],
    sets: &[FeatureSet],
    ranked: &[usize],
    pair_top: usize,
) -> Vec<(usize, usize)> {
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    if pair_top < 2 {
        return pairs;
    }
    let top: Vec<usize> = ranked.iter().copied().take(pair_top).collect();
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
    pairs
}

/// Stage 1 and 2 of the rule: screen the singles and the pairs, run the full grid on the
/// finalists, keep the best. Returns the winning set's index and outcome.
fn screen_and_tune(
    runner: &mut Runner,
    sets: &mut Vec<FeatureSet>,
    candidates: &[usize],
    progress: &mut dyn FnMut(Event),
) -> Result<(usize, FeatureSetOutcome)> {
    let cfg = runner.cfg;
    let screen_cfg = screen_config(cfg);
    progress(Event::Stage("screening every cut"));
    for &i in candidates {
        let out = runner.run(&sets[i], &screen_cfg, progress)?;
        sets[i].screen = Some(Score::of(&out.cv));
    }
    let ranked_singles = ranked(sets, candidates);
    let pairs = pairs(runner.inputs, sets, &ranked_singles, cfg.pair_top);
    if !pairs.is_empty() {
        progress(Event::Stage("screening concatenations"));
    }
    for (a, b) in pairs {
        let mut set = FeatureSet {
            name: format!("{}+{}", sets[a].name, sets[b].name),
            parts: vec![sets[a].name.clone(), sets[b].name.clone()],
            dim: sets[a].dim + sets[b].dim,
            screen: None,
            full: None,
            same_codes_as: None,
            members: vec![sets[a].members[0], sets[b].members[0]],
        };
        let out = runner.run(&set, &screen_cfg, progress)?;
        set.screen = Some(Score::of(&out.cv));
        sets.push(set);
    }
    let all: Vec<usize> = (0..sets.len()).collect();
    let finalists: Vec<usize> = ranked(sets, &all)
        .into_iter()
        .take(cfg.finalists.max(1))
        .collect();
    progress(Event::Stage("full head grid on the best screened sets"));
    let mut done: Vec<(usize, FeatureSetOutcome)> = Vec::new();
    for &i in &finalists {
        let out = runner.run(&sets[i], &cfg.train, progress)?;
        sets[i].full = Some(Score::of(&out.cv));
        done.push((i, out));
    }
    let best = pick(runner.inputs, sets, &done, cfg.select);
    Ok(done.swap_remove(best))
}

/// The winner among the finalists (`done`: set index and its full-grid outcome), by `rule`;
/// returns its position in `done`.
fn pick(
    inputs: &[CutInput],
    sets: &[FeatureSet],
    done: &[(usize, FeatureSetOutcome)],
    rule: SelectRule,
) -> usize {
    let mean = |k: usize| done[k].1.cv.chosen().mean_accuracy;
    // The best mean; ties within 1e-9 go to fewer dimensions, then to the earlier (better
    // screened) finalist.
    let mut best = 0;
    for k in 1..done.len() {
        let d = mean(k) - mean(best);
        if d > 1e-9 || (d.abs() <= 1e-9 && sets[done[k].0].dim < sets[done[best].0].dim) {
            best = k;
        }
    }
    if rule == SelectRule::Best {
        return best;
    }
    let folds = |k: usize| &done[k].1.cv.chosen().fold_accuracy;
    // Simplest first: one cut before a concatenation, holding the bottleneck, fewer
    // dimensions, a linear head; then the better mean.
    let key = |k: usize| {
        let set = &sets[done[k].0];
        let bottleneck = set.members.iter().any(|&m| inputs[m].bottleneck);
        let linear = matches!(
            done[k].1.saved.params.kind(),
            HeadKind::Logistic | HeadKind::LinearSvm
        );
        (set.members.len(), !bottleneck, set.dim, !linear)
    };
    (0..done.len())
        .filter(|&k| {
            k == best
                || paired(folds(best), folds(k), "")
                    .is_some_and(|e| e.difference <= e.standard_error)
        })
        .min_by(|&a, &b| key(a).cmp(&key(b)).then(mean(b).total_cmp(&mean(a))))
        .unwrap_or(best)
}

/// Choose the feature set and its head by CV (the rule in the module doc) and fit the winner
/// on the whole training part.
pub fn select(
    inputs: &[CutInput],
    cfg: &CutConfig,
    mut progress: impl FnMut(Event),
) -> Result<TrainOutcome> {
    check(inputs, cfg)?;
    // A search out of reach (many classes make each logistic fit slow) is refused before any
    // fit; a long one is announced.
    if let Some(est) = super::search_cost::estimate(inputs, cfg) {
        if let Some(note) = super::search_cost::check(&est, cfg.max_minutes)? {
            progress(Event::Stage(&note));
        }
    }
    let t0 = Instant::now();
    let mut sets: Vec<FeatureSet> = match &cfg.fixed {
        Some(names) => vec![fixed_set(inputs, names)?],
        None => (0..inputs.len())
            .map(|i| {
                let dup = (0..i).find(|&j| same_codes(&inputs[j].cache, &inputs[i].cache));
                FeatureSet {
                    same_codes_as: dup.map(|j| inputs[j].name.clone()),
                    ..single(&inputs[i], i)
                }
            })
            .collect(),
    };
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
    let mut runner = Runner {
        inputs,
        cfg,
        split_rows: None,
    };
    let (chosen_set, winner) = if candidates.len() == 1 {
        progress(Event::Stage("one feature set: full head grid"));
        let i = candidates[0];
        let out = runner.run(&sets[i], &cfg.train, &mut progress)?;
        sets[i].full = Some(Score::of(&out.cv));
        (i, out)
    } else {
        screen_and_tune(&mut runner, &mut sets, &candidates, &mut progress)?
    };
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
    // The best screened set on the other side of the bottleneck question, paired fold by fold
    // with the chosen set on the screen's grid (the same folds for every set).
    let holds = |set: &FeatureSet| set.members.iter().any(|&m| inputs[m].bottleneck);
    let evidence = chosen.screen.as_ref().and_then(|mine| {
        let all: Vec<usize> = (0..sets.len()).collect();
        ranked(&sets, &all)
            .into_iter()
            .find(|&i| holds(&sets[i]) != holds_bottleneck)
            .and_then(|i| {
                let rival = sets[i].screen.as_ref()?;
                paired(&mine.fold_accuracy, &rival.fold_accuracy, &sets[i].name)
            })
    });
    let scen = scenario(
        winner.cv.split.train_rows.len(),
        classes,
        any_bottleneck.then_some((chosen.name.as_str(), holds_bottleneck)),
        singles < 2 || cfg.fixed.is_some(),
        evidence,
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
    Ok(TrainOutcome {
        saved,
        cv: CvFile {
            report: winner.cv,
            cuts: Some(cuts),
            finetune: None,
        },
    })
}
