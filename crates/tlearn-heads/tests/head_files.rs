//! Saved heads: real version-1 files (written by tlearn before format version 2) still load
//! and predict by the rule CV scored; files whose arrays disagree in shape are refused naming
//! the field, never a panic.

mod common;

use common::*;
use serde_json::{json, Value};
use tempfile::tempdir;
use tlearn_heads::{evaluate, FeatureCache, SavedHead};

const V1: [&str; 3] = [
    "v1-iris-linear-svm.json",
    "v1-iris-rbf-svm.json",
    "v1-iris-logistic.json",
];

fn argmax(r: impl Iterator<Item = f64>) -> usize {
    let v: Vec<f64> = r.collect();
    (0..v.len()).fold(0, |b, j| if v[j] > v[b] { j } else { b })
}

#[test]
fn version_1_heads_still_load_and_predict_by_decision_values() {
    let (x, labels) = iris();
    for name in V1 {
        let text = std::fs::read_to_string(fixture(name)).unwrap();
        let raw: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(raw["version"], 1, "{name} is a version-1 file");
        let head = SavedHead::load(&fixture(name)).unwrap();
        assert_eq!(head.classes(), ["class0", "class1", "class2"]);
        // SVM heads: the per-class Platt sigmoids became one shared slope.
        let is_svm = raw.get("platt").is_some();
        assert_eq!(head.calibration.is_some(), is_svm, "{name}");
        if let Some(t) = &head.calibration {
            assert!(t.slope > 0.0, "{name}: {t:?}");
        }
        // The cache the head was trained on (same rows, paths and extractor fingerprint).
        let tmp = tempdir().unwrap();
        write_cache(tmp.path(), &x, &labels, None, head.extractor().clone());
        let cache = FeatureCache::load(tmp.path()).unwrap();
        let rep = evaluate(&head, &cache, false).unwrap();
        assert_eq!(rep.metrics.n, 30, "{name}");
        // One-vs-rest linear iris is weak (versicolor is not linearly separable from the rest):
        // 25 of 30 held out, the same with version 1's Platt rule.
        assert!(
            rep.metrics.accuracy > 0.8,
            "{name}: {}",
            rep.metrics.accuracy
        );
        // One rule: the most probable class is the decision-value argmax, on every row.
        let s = head.decision(x.view()).unwrap();
        let p = head.predict_proba(x.view()).unwrap();
        for (sr, pr) in s.outer_iter().zip(p.outer_iter()) {
            assert_eq!(
                argmax(sr.iter().copied()),
                argmax(pr.iter().map(|&v| v as f64)),
                "{name}"
            );
            assert!((pr.sum() - 1.0).abs() < 1e-5);
        }
        // Saved again, it is a version-2 file with the same predictions.
        let out = tmp.path().join("again.json");
        head.save(&out).unwrap();
        let again: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(again["version"], 2);
        assert!(again.get("platt").is_none());
        let back = SavedHead::load(&out).unwrap();
        assert_eq!(back.predict_proba(x.view()).unwrap(), p);
    }
}

/// A copy of a fixture with one change made by `edit`, written to `dir/name`.
fn edited(
    dir: &std::path::Path,
    fixture_name: &str,
    edit: impl Fn(&mut Value),
) -> std::path::PathBuf {
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture(fixture_name)).unwrap()).unwrap();
    edit(&mut v);
    let p = dir.join("bad-head.json");
    std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
    p
}

/// Drop the last entry (or row) of an ndarray-serde array `{"v":1,"dim":[..],"data":[..]}`.
fn shrink(a: &mut Value) {
    let dim: Vec<u64> = a["dim"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap())
        .collect();
    let last = *dim.last().unwrap();
    let rows = dim.iter().rev().skip(1).product::<u64>().max(1);
    let data = a["data"].as_array().unwrap().clone();
    let kept: Vec<Value> = data
        .chunks(last as usize)
        .take(rows as usize)
        .flat_map(|r| r[..r.len() - 1].to_vec())
        .collect();
    let mut nd = dim.clone();
    *nd.last_mut().unwrap() -= 1;
    a["dim"] = json!(nd);
    a["data"] = json!(kept);
}

/// `parts` of (dim, offset) entries, each with the head's own fingerprint.
fn parts(v: &Value, dims: &[(u64, u64)]) -> Value {
    json!(dims
        .iter()
        .enumerate()
        .map(|(i, (d, o))| json!({"name": format!("cut{i}"), "cache": "c", "extractor": v["extractor"], "dim": d, "offset": o}))
        .collect::<Vec<_>>())
}

#[test]
fn a_head_on_two_cuts_records_its_column_layout() {
    let tmp = tempdir().unwrap();
    let p = edited(tmp.path(), "v1-iris-linear-svm.json", |v| {
        v["parts"] = parts(v, &[(1, 0), (3, 1)]);
    });
    let h = SavedHead::load(&p).unwrap();
    assert!(h.is_concatenation());
    let got: Vec<(usize, usize)> = h.parts().iter().map(|p| (p.dim, p.offset)).collect();
    assert_eq!(got, vec![(1, 0), (3, 1)]);
    // A head that records none has one part: its own extractor, all columns.
    let h = SavedHead::load(&fixture("v1-iris-linear-svm.json")).unwrap();
    assert!(!h.is_concatenation());
    assert_eq!(h.parts().len(), 1);
    assert_eq!(&h.parts()[0].extractor, h.extractor());
}

#[test]
fn heads_whose_arrays_disagree_are_refused_naming_the_field() {
    let tmp = tempdir().unwrap();
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, &str, Edit)> = vec![
        (
            "v1-iris-linear-svm.json",
            "head.bias",
            Box::new(|v| shrink(&mut v["head"]["bias"])),
        ),
        (
            "v1-iris-logistic.json",
            "head.bias",
            Box::new(|v| shrink(&mut v["head"]["bias"])),
        ),
        (
            "v1-iris-linear-svm.json",
            "head.weights",
            Box::new(|v| shrink(&mut v["head"]["weights"])),
        ),
        (
            "v1-iris-linear-svm.json",
            "transform.inv_std",
            Box::new(|v| shrink(&mut v["transform"]["inv_std"])),
        ),
        (
            "v1-iris-logistic.json",
            "transform.mean",
            Box::new(|v| shrink(&mut v["transform"]["mean"])),
        ),
        (
            "v1-iris-rbf-svm.json",
            "head.coef",
            Box::new(|v| shrink(&mut v["head"]["coef"])),
        ),
        (
            "v1-iris-rbf-svm.json",
            "head.rho",
            Box::new(|v| shrink(&mut v["head"]["rho"])),
        ),
        (
            "v1-iris-rbf-svm.json",
            "head.support_vectors",
            Box::new(|v| shrink(&mut v["head"]["support_vectors"])),
        ),
        (
            "v1-iris-rbf-svm.json",
            "head.gamma",
            Box::new(|v| v["head"]["gamma"] = json!(-1.0)),
        ),
        (
            "v1-iris-rbf-svm.json",
            "platt",
            Box::new(|v| {
                v["platt"].as_array_mut().unwrap().pop();
            }),
        ),
        (
            "v1-iris-linear-svm.json",
            "transform.input_dim",
            Box::new(|v| v["dim"] = json!(5)),
        ),
        (
            "v1-iris-linear-svm.json",
            "classes",
            Box::new(|v| v["classes"] = json!(["a"])),
        ),
        (
            "v1-iris-linear-svm.json",
            "parts[1]",
            Box::new(|v| v["parts"] = parts(v, &[(2, 0), (2, 1)])),
        ),
        (
            "v1-iris-linear-svm.json",
            "parts",
            Box::new(|v| v["parts"] = parts(v, &[(1, 0), (2, 1)])),
        ),
        (
            "v1-iris-linear-svm.json",
            "parts[0].extractor",
            Box::new(|v| {
                v["parts"] = parts(v, &[(1, 0), (3, 1)]);
                v["parts"][0]["extractor"]["layer"] = json!("stage6");
            }),
        ),
    ];
    for (fx, field, edit) in cases {
        let p = edited(tmp.path(), fx, edit);
        let e = format!("{:#}", SavedHead::load(&p).unwrap_err());
        assert!(
            e.contains(&format!("`{field}`")) && e.contains("bad-head.json"),
            "{fx} with a bad {field}: {e}"
        );
    }
    // An array whose data does not fill its declared shape: a parse error, not a panic.
    let p = edited(tmp.path(), "v1-iris-linear-svm.json", |v| {
        v["head"]["bias"]["dim"] = json!([7]);
    });
    let e = format!("{:#}", SavedHead::load(&p).unwrap_err());
    assert!(
        e.contains("malformed") && e.contains("bad-head.json"),
        "{e}"
    );
}
