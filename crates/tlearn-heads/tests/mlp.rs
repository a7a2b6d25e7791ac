//! The dense network head (`mlp`) on the real UCI digits (scikit-learn's copy, a fixture):
//! seeded training is deterministic, it reaches scikit-learn's accuracy, the saved head reloads
//! to the same probabilities, and a head.json whose arrays disagree is refused naming the field.

mod common;

use common::*;
use serde_json::{json, Value};
use tempfile::tempdir;
use tlearn_heads::transform::TransformKind;
use tlearn_heads::{evaluate, train, FeatureCache, HeadChoice, HeadKind, SavedHead, TrainConfig};

fn mlp_cfg(seed: u64) -> TrainConfig {
    let mut c = TrainConfig {
        heads: HeadChoice::Only(vec![HeadKind::Mlp]),
        transforms: vec![TransformKind::Standard],
        grid_extension: 0,
        c_patience: 0,
        folds: 3,
        seed,
        ..TrainConfig::default()
    };
    c.grids.mlp.hidden = vec![32, 64];
    c.grids.mlp.weight_decay = vec![1e-2];
    c
}

fn digits_cache(dir: &std::path::Path) -> FeatureCache {
    let (x, labels) = digits();
    write_cache(dir, &x, &labels, None, extractor("digits-pixels"));
    FeatureCache::load(dir).unwrap()
}

/// scikit-learn's `MLPClassifier(hidden_layer_sizes=(64,), alpha=1e-2, early_stopping=True)`
/// on standardised digits scores about 0.96-0.97 held out; we require 0.95.
#[test]
fn mlp_on_real_digits_is_seeded_accurate_and_reloads() {
    let tmp = tempdir().unwrap();
    let cache = digits_cache(tmp.path());
    let a = train(&cache, &mlp_cfg(7), |_| {}).unwrap();
    let b = train(&cache, &mlp_cfg(7), |_| {}).unwrap();
    assert_eq!(a.cv.candidates.len(), 2);
    let (pa, pb) = (tmp.path().join("a.json"), tmp.path().join("b.json"));
    a.saved.save(&pa).unwrap();
    b.saved.save(&pb).unwrap();
    let text = |p: &std::path::Path| {
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("created");
        v
    };
    assert_eq!(text(&pa), text(&pb), "same seed, same head.json");
    for (ra, rb) in a.cv.candidates.iter().zip(&b.cv.candidates) {
        assert_eq!(
            ra.mean_accuracy, rb.mean_accuracy,
            "same seed, same CV scores"
        );
    }
    // Another seed draws other initial weights (and another split).
    let c = train(&cache, &mlp_cfg(8), |_| {}).unwrap();
    let pc = tmp.path().join("c.json");
    c.saved.save(&pc).unwrap();
    assert_ne!(text(&pa)["head"], text(&pc)["head"]);

    let back = SavedHead::load(&pa).unwrap();
    assert_eq!(back.head.kind(), HeadKind::Mlp);
    let p0 = a.saved.predict_proba(cache.x.view()).unwrap();
    let p1 = back.predict_proba(cache.x.view()).unwrap();
    assert!(p0.iter().zip(p1.iter()).all(|(u, v)| (u - v).abs() < 1e-6));
    for r in p1.outer_iter() {
        assert!((r.sum() - 1.0).abs() < 1e-4);
    }
    let rep = evaluate(&back, &cache, false).unwrap();
    assert!(
        rep.metrics.accuracy > 0.95,
        "dense head held-out accuracy on digits {}",
        rep.metrics.accuracy
    );
    // Early stopping ended every fit before the epoch cap.
    let fit = a.saved.fit.expect("final fit recorded");
    assert!(fit.converged && fit.iterations < 200, "{fit:?}");
}

/// Drop the last entry (or column) of an ndarray-serde array `{"v":1,"dim":[..],"data":[..]}`.
fn shrink(a: &mut Value) {
    let dim: Vec<usize> = serde_json::from_value(a["dim"].clone()).unwrap();
    let last = *dim.last().unwrap();
    let data = a["data"].as_array().unwrap().clone();
    let kept: Vec<Value> = data
        .chunks(last)
        .flat_map(|r| r[..r.len() - 1].to_vec())
        .collect();
    let mut nd = dim.clone();
    *nd.last_mut().unwrap() -= 1;
    a["dim"] = json!(nd);
    a["data"] = json!(kept);
}

#[test]
fn malformed_mlp_heads_are_refused_naming_the_field() {
    let tmp = tempdir().unwrap();
    let cache = digits_cache(tmp.path());
    let mut c = mlp_cfg(1);
    c.grids.mlp.hidden = vec![16];
    let out = train(&cache, &c, |_| {}).unwrap();
    let good = tmp.path().join("head.json");
    out.saved.save(&good).unwrap();
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&good).unwrap()).unwrap();
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "head.hidden_weights",
            Box::new(|v| shrink(&mut v["head"]["hidden_weights"])),
        ),
        (
            "head.hidden_bias",
            Box::new(|v| shrink(&mut v["head"]["hidden_bias"])),
        ),
        (
            "head.output_weights",
            Box::new(|v| shrink(&mut v["head"]["output_weights"])),
        ),
        (
            "head.output_bias",
            Box::new(|v| shrink(&mut v["head"]["output_bias"])),
        ),
    ];
    for (field, edit) in cases {
        let mut v = saved.clone();
        edit(&mut v);
        let p = tmp.path().join("bad-head.json");
        std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
        let e = format!("{:#}", SavedHead::load(&p).unwrap_err());
        assert!(
            e.contains(&format!("`{field}`")) && e.contains("bad-head.json"),
            "a bad {field}: {e}"
        );
    }
    // A weight that is not a number: a parse error naming the file, not a panic.
    let mut v = saved.clone();
    v["head"]["output_bias"]["data"][0] = json!("x");
    let p = tmp.path().join("bad-head.json");
    std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
    let e = format!("{:#}", SavedHead::load(&p).unwrap_err());
    assert!(e.contains("bad-head.json") && e.contains("head"), "{e}");
}

/// The grid points of the dense head (no warm start) are fitted side by side, every (point,
/// fold) pair in parallel: each scores exactly as it does when it is the only point.
#[test]
fn points_fitted_side_by_side_score_as_when_fitted_alone() {
    let tmp = tempdir().unwrap();
    let cache = digits_cache(tmp.path());
    let mut together_cfg = mlp_cfg(3);
    together_cfg.grids.mlp.weight_decay = vec![1e-4, 1e-2];
    let together = train(&cache, &together_cfg, |_| {}).unwrap();
    assert_eq!(together.cv.candidates.len(), 4);
    for r in &together.cv.candidates {
        let mut alone_cfg = mlp_cfg(3);
        let hp = r.params.hyper_params();
        let get = |n: &str| hp.iter().find(|p| p.name == n).unwrap().value;
        alone_cfg.grids.mlp.hidden = vec![get("hidden") as usize];
        alone_cfg.grids.mlp.weight_decay = vec![get("weight_decay")];
        let alone = train(&cache, &alone_cfg, |_| {}).unwrap();
        assert_eq!(alone.cv.candidates.len(), 1);
        let a = &alone.cv.candidates[0];
        assert_eq!(a.params, r.params);
        assert_eq!(a.fold_accuracy, r.fold_accuracy, "{}", r.params);
        assert_eq!(a.mean_accuracy, r.mean_accuracy, "{}", r.params);
    }
}
