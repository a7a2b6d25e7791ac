//! The training object on real data (Fisher's iris, scikit-learn's copy): caches in, the head
//! and a typed `cv.json` out, written and read back as the same record.

mod common;

use common::*;
use tempfile::tempdir;
use tlearn_heads::train::{CutConfig, CvFile, HeadChoice, TrainConfig, Training};
use tlearn_heads::transform::TransformKind;
use tlearn_heads::{HeadKind, SavedHead};

fn iris_cache(dir: &std::path::Path) {
    let (x, labels) = iris();
    write_cache(dir, &x, &labels, None, extractor("iris-measures"));
}

/// A small grid with early stopping on, so some candidates are skipped (their accuracy is
/// `null` in the file, NaN in memory).
fn config() -> CutConfig {
    CutConfig::new(TrainConfig {
        c_grid: vec![1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0],
        transforms: vec![TransformKind::Standard],
        c_patience: 1,
        folds: 3,
        ..TrainConfig::default()
    })
}

/// Equal JSON, numbers within float parsing's last digit (serde_json reads a float to within
/// one unit in the last place).
fn same_json(a: &serde_json::Value, b: &serde_json::Value, at: &str) {
    use serde_json::Value::*;
    match (a, b) {
        (Number(x), Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-15 * x.abs().max(y.abs()),
                "{at}: {x} vs {y}"
            );
        }
        (Array(x), Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}");
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                same_json(u, v, &format!("{at}[{i}]"));
            }
        }
        (Object(x), Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{at}"
            );
            for (k, u) in x {
                same_json(u, &y[k], &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

#[test]
fn a_training_writes_its_head_and_a_cv_json_that_reads_back_as_written() {
    let tmp = tempdir().unwrap();
    let cache = tmp.path().join("cache");
    iris_cache(&cache);
    let layer = extractor("iris-measures").layer;
    let training = Training::open(
        std::slice::from_ref(&cache),
        &|_| Some(layer.clone()),
        config(),
    )
    .unwrap();
    // `auto` resolved from the training part's size: every family on 150 rows, no note.
    assert_eq!(
        training.config().train.heads,
        HeadChoice::Only(HeadKind::ALL.to_vec())
    );
    assert!(training.notes().is_empty());
    assert_eq!(training.inputs().len(), 1);
    assert!(training.inputs()[0].bottleneck);
    assert_eq!(training.selection_rule(), None);
    let mut seen = 0;
    let out = training.run(|_| seen += 1).unwrap();
    assert!(seen > 0);
    let files = out.write(&tmp.path().join("run")).unwrap();
    assert_eq!(files.head, tmp.path().join("run/head.json"));
    let back = CvFile::read(&files.cv).unwrap();
    same_json(
        &serde_json::to_value(&back).unwrap(),
        &serde_json::to_value(&out.cv).unwrap(),
        "cv",
    );
    let r = &back.report;
    assert!(r
        .candidates
        .iter()
        .any(|c| c.skipped && c.mean_accuracy.is_nan()));
    assert_eq!(r.chosen().params, out.saved.params);
    assert_eq!(r.chosen_params, out.saved.params);
    let cuts = back.cuts.as_ref().expect("cuts recorded");
    assert_eq!(cuts.sets.len(), 1);
    assert_eq!(cuts.scenario.similarity, "not inferred");
    // The head beside it loads and its cv.json is the one beside it.
    let head = SavedHead::load(&files.head).unwrap();
    assert_eq!(head.params, out.saved.params);
    assert_eq!(CvFile::beside(&files.head), files.cv);
}

#[test]
fn a_malformed_cv_json_is_refused_naming_the_file_and_the_field() {
    let tmp = tempdir().unwrap();
    let cache = tmp.path().join("cache");
    iris_cache(&cache);
    let mut cfg = config();
    cfg.train.heads = HeadChoice::Only(vec![HeadKind::Logistic]);
    let out = Training::open(&[cache], &|_| None, cfg)
        .unwrap()
        .run(|_| {})
        .unwrap();
    let files = out.write(tmp.path()).unwrap();
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files.cv).unwrap()).unwrap();
    v["split"]["test_rows"] = serde_json::json!("not a list");
    std::fs::write(&files.cv, v.to_string()).unwrap();
    let e = format!("{:#}", CvFile::read(&files.cv).unwrap_err());
    assert!(
        e.contains("cv.json") && e.contains("split.test_rows"),
        "{e}"
    );
}

#[test]
fn a_bad_test_size_and_no_caches_are_refused_before_any_work() {
    let mut cfg = config();
    cfg.train.test_size = 1.0;
    let e = Training::open(&["/nowhere".into()], &|_| None, cfg)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("--test-size"), "{e}");
    let e = Training::new(Vec::new(), config())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no feature caches"), "{e}");
}
