//! Augmented training codes: `extract --keep-views` keeps every view's codes
//! (`views.npy`, `[N, V, D]`, their mean is the `features.npy` row) for plain caches and cut
//! sets, through the journal (resume) and the repair of damaged rows; `train --train-views`
//! trains on each training image's views while validation and held-out images are scored on
//! their averaged rows, and a view never crosses the split from its image.
//!
//! The real EfficientNet-Lite0 on the smoke photos (ignored in a plain `cargo test`: it needs
//! `make models data`; `make test` runs them), plus a fast refusal test on the raw-pixels
//! pseudo-backbone.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{ok, read_json, run_ok, tlearn};
use ndarray::{Array2, Array3, Axis};

fn extract(data: &Path, out: &Path, extra: &[&str]) -> Output {
    tlearn()
        .args(["extract", "--model", "efficientnet-lite0", "--quiet"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(extra)
        .env("CI", "1")
        .output()
        .expect("spawn tlearn")
}

fn npy2(path: &Path) -> Array2<f32> {
    ndarray_npy::read_npy(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn npy3(path: &Path) -> Array3<f32> {
    ndarray_npy::read_npy(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn worst(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim());
    (a - b).iter().fold(0f32, |m, d| m.max(d.abs()))
}

/// `views.npy` of `cache` has `views` views of `dim` values for every row of `features.npy`,
/// and their mean is that row.
fn assert_views_average_to_features(cache: &Path, views: usize, dim: usize) -> Array3<f32> {
    let v = npy3(&cache.join("views.npy"));
    let f = npy2(&cache.join("features.npy"));
    assert_eq!(v.dim(), (f.nrows(), views, dim), "{}", cache.display());
    let mean = v.mean_axis(Axis(1)).unwrap();
    let scale = f.iter().fold(1e-6f32, |m, x| m.max(x.abs()));
    let w = worst(&mean, &f);
    assert!(
        w <= 1e-6 * scale,
        "{}: features.npy is not the mean of views.npy (worst {w}, scale {scale})",
        cache.display()
    );
    v
}

fn smoke() -> PathBuf {
    common::dataset("smoke")
}

#[test]
#[ignore = "needs make models/data (EfficientNet-Lite0, smoke photos); run by make test"]
fn kept_views_average_to_features_for_a_cache_and_a_cut_set_and_survive_resume_and_repair() {
    common::require_model("efficientnet-lite0");
    let tmp = tempfile::tempdir().unwrap();

    // A plain cache: every view's codes, named in meta.json, their mean the features row.
    let views = tmp.path().join("views");
    ok(extract(
        &smoke(),
        &views,
        &["--augment", "flip", "--keep-views"],
    ));
    let meta = read_json(&views.join("meta.json"));
    assert_eq!(meta["views"], serde_json::json!(["centre", "centre-flip"]));
    let v = assert_views_average_to_features(&views, 2, 1280);
    let rows = v.dim().0;
    assert!(rows >= 10, "the smoke photos: {rows} rows");
    // The averaged rows are those of an extraction that keeps no views, bit for bit, and view 0
    // is the plain centre crop.
    let plain = tmp.path().join("plain");
    ok(extract(&smoke(), &plain, &["--augment", "flip"]));
    assert!(!plain.join("views.npy").exists());
    assert_eq!(
        fs::read(plain.join("features.npy")).unwrap(),
        fs::read(views.join("features.npy")).unwrap()
    );
    let centre = tmp.path().join("centre");
    ok(extract(&smoke(), &centre, &[]));
    let w = worst(
        &v.index_axis(Axis(1), 0).to_owned(),
        &npy2(&centre.join("features.npy")),
    );
    assert!(w <= 1e-5, "view 0 is the centre crop (worst {w})");
    let out = extract(&smoke(), &centre, &["--keep-views"]);
    assert!(!out.status.success(), "--keep-views without --augment");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--keep-views"));

    // An update without the flag keeps the views and reuses every row.
    let before = fs::read(views.join("views.npy")).unwrap();
    ok(extract(&smoke(), &views, &["--augment", "flip"]));
    let s = read_json(&views.join("summary.json"));
    assert_eq!(
        (s["reused"].as_u64(), s["extracted"].as_u64()),
        (Some(rows as u64), Some(0)),
        "{s}"
    );
    assert_eq!(fs::read(views.join("views.npy")).unwrap(), before);
    // A cache without views gets them with the flag (every image encoded again).
    ok(extract(
        &smoke(),
        &plain,
        &["--augment", "flip", "--keep-views"],
    ));
    assert_eq!(fs::read(plain.join("views.npy")).unwrap(), before);

    // Repair: a damaged row of views.npy is refused by train, naming the file and the fix, and
    // the next extract re-extracts exactly that row.
    let mut damaged = v.clone();
    damaged[[3, 1, 7]] = f32::NAN;
    ndarray_npy::write_npy(views.join("views.npy"), &damaged).unwrap();
    let out = tlearn()
        .args(["train", "--head", "logistic", "--folds", "3"])
        .args(["--train-views", "on"])
        .arg(&views)
        .arg("--out")
        .arg(tmp.path().join("refused"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("views.npy") && err.contains("tlearn extract"),
        "{err}"
    );
    ok(extract(&smoke(), &views, &["--augment", "flip"]));
    let s = read_json(&views.join("summary.json"));
    assert_eq!(
        (s["reused"].as_u64(), s["extracted"].as_u64()),
        (Some(rows as u64 - 1), Some(1)),
        "{s}"
    );
    assert_eq!(fs::read(views.join("views.npy")).unwrap(), before);

    // A cut set keeps each cut's views, each averaging to its features.npy.
    let set = tmp.path().join("set");
    ok(extract(
        &smoke(),
        &set,
        &[
            "--layer",
            "stage6,features",
            "--augment",
            "flip",
            "--keep-views",
        ],
    ));
    let sv = assert_views_average_to_features(&set.join("features"), 2, 1280);
    let w = (&sv - &v).iter().fold(0f32, |m, d| m.max(d.abs()));
    assert!(w <= 1e-5, "the set's features views (worst {w})");
    assert_views_average_to_features(&set.join("stage6"), 2, 192);

    // A killed --keep-views run of the set resumes from its journal (joined view rows) and
    // ends with the same files as the uninterrupted run.
    let resumed = tmp.path().join("resumed");
    let killed = tlearn()
        .args(["extract", "--model", "efficientnet-lite0", "--quiet"])
        .args([
            "--layer",
            "stage6,features",
            "--augment",
            "flip",
            "--keep-views",
        ])
        .arg(smoke())
        .arg("--out")
        .arg(&resumed)
        .env("CI", "1")
        .env("TLEARN_ABORT_AFTER", "5")
        .output()
        .unwrap();
    assert!(!killed.status.success(), "the abort hook kills the run");
    assert!(resumed.join("journal.bin").exists());
    assert!(!resumed.join("cuts.json").exists());
    ok(extract(
        &smoke(),
        &resumed,
        &[
            "--layer",
            "stage6,features",
            "--augment",
            "flip",
            "--keep-views",
        ],
    ));
    let s = read_json(&resumed.join("summary.json"));
    assert_eq!(
        (s["resumed"].as_u64(), s["extracted"].as_u64()),
        (Some(5), Some(rows as u64 - 5)),
        "{s}"
    );
    assert!(!resumed.join("journal.bin").exists());
    for cut in ["stage6", "features"] {
        for f in ["views.npy", "features.npy", "index.csv"] {
            assert_eq!(
                fs::read(resumed.join(cut).join(f)).unwrap(),
                fs::read(set.join(cut).join(f)).unwrap(),
                "{cut}/{f}"
            );
        }
    }
}

#[test]
#[ignore = "needs make models/data (EfficientNet-Lite0, smoke photos); run by make test"]
fn view_rows_never_cross_the_split_and_train_auto_compares_both_on_the_same_folds() {
    use tlearn_heads::split::{stratified_folds, train_test_split};
    use tlearn_heads::train::cross_validation::fold_rows;
    use tlearn_heads::view_rows::{expand, training_rows};

    common::require_model("efficientnet-lite0");
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    ok(extract(
        &smoke(),
        &cache,
        &["--augment", "flip", "--keep-views"],
    ));
    let c = tlearn_cache::FeatureCache::load(&cache).unwrap();
    let v = c.read_views().unwrap().expect("views kept");
    let n_views = v.dim().1;

    // The rows the pipeline trains on, fold by fold: every row's image is a training-fold
    // image of the training part; never a held-out image, never a validation image.
    let (seed, k) = (3, 3);
    let split = train_test_split(&c.y, &c.sha256, c.classes().len(), 0.3, seed).unwrap();
    let fold_of = stratified_folds(&c.y, &c.sha256, &split.train, c.classes(), k, seed).unwrap();
    let x_train = c.x.select(Axis(0), &split.train);
    let v_train = v.select(Axis(0), &split.train);
    let y_train: Vec<usize> = split.train.iter().map(|&i| c.y[i]).collect();
    for f in 0..k {
        let (tr, va) = fold_rows(&fold_of, f);
        assert!(!tr.is_empty() && !va.is_empty());
        let sources = expand(&tr, Some(n_views));
        assert_eq!(sources.len(), tr.len() * n_views);
        let (m, y) = training_rows(x_train.view(), Some(v_train.view()), &tr, &y_train);
        assert_eq!(m.nrows(), sources.len());
        for (r, s) in sources.iter().enumerate() {
            let image = split.train[s.image];
            assert!(
                tr.contains(&s.image),
                "fold {f}: row {r} from a non-training image"
            );
            assert!(
                !va.contains(&s.image),
                "fold {f}: row {r} from a validation image"
            );
            assert!(
                !split.test.contains(&image),
                "fold {f}: row {r} from a held-out image"
            );
            assert_eq!(y[r], c.y[image]);
            assert_eq!(
                m.row(r),
                v.slice(ndarray::s![image, s.view.unwrap(), ..]),
                "fold {f}: row {r} is view {:?} of cache row {image}",
                s.view
            );
        }
    }

    // `--train-views auto`: both kinds of rows cross-validated on the same folds, the choice
    // in cv.json, the CV table and head.json; eval scores the held-out images as before.
    let run = tmp.path().join("auto");
    let out = run_ok(
        tlearn()
            .args(["train", "--head", "logistic", "--folds", "3", "--seed", "3"])
            .args(["--test-size", "0.3", "--transform", "standard"])
            .arg(&cache)
            .arg("--out")
            .arg(&run),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("2 kept views"), "{stdout}");
    assert!(stdout.contains("--train-views auto: CV"), "{stdout}");
    let cv = read_json(&run.join("cv.json"));
    assert_eq!(cv["train_views"], "auto");
    let compared = &cv["view_rows_cv"];
    assert!(compared["averaged_rows"].is_f64() && compared["view_rows"].is_f64());
    let cands = cv["candidates"].as_array().unwrap();
    let with_views = cands.iter().filter(|r| r["view_rows"] == true).count();
    assert!(with_views > 0 && with_views < cands.len(), "{cv}");
    let kept_views = compared["kept"] == "view rows";
    assert_eq!(!cv["view_rows"].is_null(), kept_views, "{cv}");
    let train_rows: Vec<u64> = cv["split"]["train_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = split.train.iter().map(|&i| i as u64).collect();
    assert_eq!(train_rows, expected, "the split is the library's");

    // `--train-views on`: head.json records it; eval and predict unchanged in meaning.
    let on = tmp.path().join("on");
    run_ok(
        tlearn()
            .args(["train", "--head", "logistic", "--folds", "3", "--seed", "3"])
            .args(["--test-size", "0.3", "--train-views", "on"])
            .arg(&cache)
            .arg("--out")
            .arg(&on),
    );
    let head = read_json(&on.join("head.json"));
    assert_eq!(
        head["view_rows"]["views"],
        serde_json::json!(["centre", "centre-flip"])
    );
    assert_eq!(
        head["view_rows"]["training_rows"].as_u64(),
        Some((split.train.len() * n_views) as u64)
    );
    assert_eq!(
        head["split"]["train_rows"].as_u64(),
        Some(split.train.len() as u64)
    );
    run_ok(
        tlearn()
            .args(["eval", "--head"])
            .arg(on.join("head.json"))
            .arg(&cache)
            .arg("--out")
            .arg(&on),
    );
    let report = read_json(&on.join("report.json"));
    assert_eq!(
        report["metrics"]["n"].as_u64(),
        Some(split.test.len() as u64),
        "held-out images scored once each, on their averaged rows"
    );

    // A cut set: the screen on averaged rows, the finalists with both.
    let set = tmp.path().join("set");
    ok(extract(
        &smoke(),
        &set,
        &[
            "--layer",
            "stage6,features",
            "--augment",
            "flip",
            "--keep-views",
        ],
    ));
    let sel = tmp.path().join("sel");
    run_ok(
        tlearn()
            .args(["train", "--head", "logistic", "--folds", "3", "--seed", "3"])
            .args(["--test-size", "0.3", "--transform", "standard"])
            .arg(&set)
            .arg("--out")
            .arg(&sel),
    );
    let cv = read_json(&sel.join("cv.json"));
    assert!(cv["view_rows_cv"]["view_rows"].is_f64(), "{cv}");
    let screened_with_views = cv["cuts"]["sets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["screen"]["head"].as_str())
        .any(|h| h.contains("view rows"));
    assert!(!screened_with_views, "the screen uses averaged rows");
}

#[test]
fn a_cache_without_views_refuses_train_views_on_and_keep_views_needs_augment() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for i in 0..12u32 {
        let class = ["cat", "dog"][(i % 2) as usize];
        let p = data.join(class).join(format!("img{i:02}.png"));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        common::picture(40 + i % 5, 30 + i % 3, i).save(&p).unwrap();
    }
    let cache = tmp.path().join("cache");
    let pixels = |extra: &[&str]| {
        tlearn()
            .args(["extract", "--model", "pixels8", "--quiet"])
            .arg(&data)
            .arg("--out")
            .arg(&cache)
            .args(extra)
            .env("CI", "1")
            .output()
            .unwrap()
    };
    let out = pixels(&["--keep-views"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--keep-views") && err.contains("--augment"),
        "{err}"
    );
    ok(pixels(&["--augment", "flip"]));
    let out = tlearn()
        .args([
            "train",
            "--head",
            "logistic",
            "--folds",
            "3",
            "--train-views",
            "on",
        ])
        .arg(&cache)
        .arg("--out")
        .arg(tmp.path().join("run"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("keeps no per-view codes")
            && err.contains(&cache.display().to_string())
            && err.contains("--keep-views"),
        "{err}"
    );
    assert!(!tmp.path().join("run/head.json").exists());
    // `auto` (the default) trains on averaged rows and says so.
    let run = tmp.path().join("auto");
    let out = run_ok(
        tlearn()
            .args(["train", "--head", "logistic", "--folds", "3"])
            .arg(&cache)
            .arg("--out")
            .arg(&run),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("training rows: one averaged row per training image"),
        "{stdout}"
    );
    assert!(read_json(&run.join("head.json"))["view_rows"].is_null());
}
