//! `tlearn export` end to end: Tux Paint photos → EfficientNet-Lite0 codes → five heads (one
//! per kind, with L2 + PCA on one of them, and the linfa engine's logistic and RBF SVM) → one
//! ONNX file each, run in onnxruntime (the .venv's) and in tract on the held-out photos,
//! compared with `tlearn predict` on the same files. Then the bad inputs: a missing backbone file and a fingerprint mismatch.
//! Needs `make models data` and the venv (run by `make test`).

mod common;
use common::*;

use std::path::Path;
use std::process::Command;

use tlearn_extract::augment::Augment;
use tlearn_extract::{decode, preprocess, registry::Registry};

/// The held-out photos preprocessed exactly as tlearn does, as one `[N, 3, S, S]` array.
fn preprocessed(paths: &[std::path::PathBuf]) -> ndarray::Array4<f32> {
    let reg = Registry::load(&repo().join("models")).expect("registry");
    let p = reg
        .get("efficientnet-lite0")
        .expect("lite0 entry")
        .preprocess
        .clone();
    let views: Vec<_> = paths
        .iter()
        .map(|f| {
            let bytes = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let img = decode::decode_rgb(&bytes, p.background).expect("decodable photo");
            preprocess::view_image(&img, &p, tlearn_extract::augment::views(Augment::None)[0])
                .expect("view")
        })
        .collect();
    let t = preprocess::to_tensor(&views, &p).expect("tensor");
    let s = p.crop as usize;
    ndarray::Array4::from_shape_vec(
        (paths.len(), 3, s, s),
        t.to_plain_array_view::<f32>()
            .expect("f32 tensor")
            .iter()
            .copied()
            .collect(),
    )
    .expect("shape")
}

/// `tlearn predict --json` probabilities per image, in the head's class order.
fn predict_probs(head: &Path, images: &[std::path::PathBuf], classes: &[String]) -> Vec<Vec<f64>> {
    let mut cmd = tlearn();
    cmd.args([
        "predict",
        "--json",
        "--top",
        &classes.len().to_string(),
        "--head",
    ])
    .arg(head)
    .args(images);
    let out = run_ok(&mut cmd);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("predict --json");
    v["predictions"]
        .as_array()
        .expect("predictions")
        .iter()
        .map(|p| {
            let mut row = vec![f64::NAN; classes.len()];
            for r in p["top"].as_array().expect("top") {
                row[r["index"].as_u64().unwrap() as usize] = r["probability"].as_f64().unwrap();
            }
            assert!(row.iter().all(|v| v.is_finite()), "all classes listed: {p}");
            row
        })
        .collect()
}

fn worst_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).map(|(u, v)| (u - v).abs())
        })
        .fold(0.0, f64::max)
}

fn stderr_of(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn tlearn");
    assert!(!out.status.success(), "{cmd:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
#[ignore = "needs make models/data and .venv (onnxruntime); run by make test"]
fn exported_onnx_gives_predicts_probabilities_in_onnxruntime_and_tract() {
    require_model("efficientnet-lite0");
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make venv` (make test does)",
        python.display()
    );
    let data = dataset("tuxpaint");
    let work = workdir("tuxpaint");
    let cache = work.join("cache-lite0");
    extract("efficientnet-lite0", &data, &cache, &[]);

    // (name, --head, extra train flags): every head kind, the linfa engine's heads, whose
    // saved form is the same as tlearn's, and every transform a head.json can hold.
    let heads: [(&str, &str, &[&str]); 9] = [
        ("logistic", "logistic", &["--transform", "standard"]),
        (
            "linear-svm",
            "linear-svm",
            &["--transform", "l2", "--pca", "24"],
        ),
        ("rbf-svm", "rbf-svm", &["--transform", "standard"]),
        (
            "mlp",
            "mlp",
            &["--transform", "standard", "--hidden-grid", "64"],
        ),
        ("logistic-linfa", "logistic", &["--engine", "linfa"]),
        (
            "rbf-svm-linfa",
            "rbf-svm",
            &["--engine", "linfa", "--transform", "standard"],
        ),
        (
            "logistic-sqrt-standard",
            "logistic",
            &["--transform", "sqrt-standard"],
        ),
        (
            "linear-svm-standard-l2",
            "linear-svm",
            &["--transform", "standard-l2"],
        ),
        (
            "rbf-svm-pca-whiten",
            "rbf-svm",
            &["--transform", "pca-whiten"],
        ),
    ];
    let mut overall = 0f64;
    for (kind, head_kind, extra) in heads {
        let run = work.join(format!("export-{kind}"));
        run_ok(
            tlearn()
                .args(["train", "--head", head_kind, "--seed", "1"])
                .args(extra)
                .arg(&cache)
                .arg("--out")
                .arg(&run),
        );
        let head = run.join("head.json");
        let onnx = run.join("model.onnx");
        let _ = std::fs::remove_file(&onnx);
        run_ok(
            tlearn()
                .args(["export", "--head"])
                .arg(&head)
                .arg("--out")
                .arg(&onnx),
        );
        let saved = read_json(&head);
        let t = &saved["transform"];
        match kind {
            "logistic-sqrt-standard" => assert_eq!(t["power"], 0.5, "{t}"),
            "linear-svm-standard-l2" => assert_eq!(t["l2_after"], true, "{t}"),
            "rbf-svm-pca-whiten" => assert_eq!(t["pca"]["whitened"], true, "{t}"),
            _ => {}
        }
        let classes: Vec<String> = serde_json::from_value(saved["classes"].clone()).unwrap();
        let held: Vec<std::path::PathBuf> = saved["split"]["held_out"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| data.join(p.as_str().unwrap()))
            .collect();
        assert!(held.len() >= 40, "{} held-out photos", held.len());

        let x = preprocessed(&held);
        let npy = run.join("held_out_inputs.npy");
        ndarray_npy::write_npy(&npy, &x).expect("write inputs");
        let out = run_ok(
            Command::new(&python)
                .arg(repo().join("tests/onnx_export_run.py"))
                .arg(&onnx)
                .arg(&npy),
        );
        let ort: serde_json::Value = serde_json::from_slice(&out.stdout).expect("runner JSON");
        assert_eq!(ort["classes"], saved["classes"], "class names in metadata");
        assert_eq!(ort["input"]["name"], "image");
        assert_eq!(ort["input"]["shape"], serde_json::json!(["N", 3, 224, 224]));
        assert_eq!(ort["output"]["name"], "probabilities");
        let ort_p: Vec<Vec<f64>> = serde_json::from_value(ort["probabilities"].clone()).unwrap();

        let want = predict_probs(&head, &held, &classes);
        let d_ort = worst_diff(&ort_p, &want);

        // tract loads the same file and runs the whole batch.
        let bytes = std::fs::read(&onnx).unwrap();
        let input = tract_input(&x);
        let tract_flat = tlearn_export::run_in_tract(&bytes, input).expect("tract runs the export");
        let tract_p: Vec<Vec<f64>> = tract_flat
            .chunks(classes.len())
            .map(|r| r.iter().map(|&v| v as f64).collect())
            .collect();
        let d_tract = worst_diff(&tract_p, &want);
        eprintln!(
            "export {kind}: {} held-out photos, worst |p difference| vs tlearn predict: \
             onnxruntime {d_ort:.2e}, tract {d_tract:.2e}",
            held.len()
        );
        // PCA whitening divides each component by its standard deviation, so the last
        // components magnify the backbones' float differences (onnxruntime's and tract's
        // convolutions sum in other orders: codes differ by up to 7e-6) before the RBF kernel:
        // measured 1.04e-4 (onnxruntime) and 9.3e-5 (tract) with the warm-started solvers,
        // against 6.8e-5 for the RBF head on standardised codes.
        let bound = if kind == "rbf-svm-pca-whiten" {
            2e-4
        } else {
            1e-4
        };
        assert!(d_ort <= bound, "{kind}: onnxruntime differs by {d_ort:e}");
        assert!(d_tract <= bound, "{kind}: tract differs by {d_tract:e}");
        for row in &ort_p {
            let s: f64 = row.iter().sum();
            assert!((s - 1.0).abs() < 1e-5, "{kind}: probabilities sum to {s}");
        }
        overall = overall.max(d_ort);
    }
    eprintln!("worst |p(onnxruntime) - p(tlearn predict)| over all heads: {overall:.2e}");

    // Bad input 1: the backbone file is missing (a models dir with the registry only).
    let head = work.join("export-logistic/head.json");
    let empty = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo().join("models/registry.toml"),
        empty.path().join("registry.toml"),
    )
    .unwrap();
    let err = stderr_of(
        tlearn()
            .args(["export", "--head"])
            .arg(&head)
            .arg("--models-dir")
            .arg(empty.path())
            .arg("--out")
            .arg(empty.path().join("m.onnx")),
    );
    assert!(
        err.contains("cannot read model file") && err.contains("efficientnet-lite0.onnx"),
        "{err}"
    );
    assert!(!empty.path().join("m.onnx").exists());

    // Bad input 2: the head records another backbone file (sha256) than the one on disk.
    let mut saved = read_json(&head);
    saved["extractor"]["sha256"] = serde_json::json!("0".repeat(64));
    let bad = empty.path().join("head.json");
    std::fs::write(&bad, serde_json::to_string(&saved).unwrap()).unwrap();
    let err = stderr_of(
        tlearn()
            .args(["export", "--head"])
            .arg(&bad)
            .arg("--out")
            .arg(empty.path().join("m.onnx")),
    );
    assert!(
        err.contains("does not match the head") && err.contains("extractor.sha256"),
        "{err}"
    );
    assert!(!empty.path().join("m.onnx").exists());
}

fn tract_input(x: &ndarray::Array4<f32>) -> tlearn_export::Tensor {
    tlearn_export::Tensor::from_shape(x.shape(), x.as_slice().expect("contiguous")).expect("tensor")
}

/// A head on a grid cut (`stage6@2x2`: the 7×7 map averaged over 2×2 cells) exports: the
/// graph's MatMul over the flattened map gives `tlearn predict`'s probabilities in onnxruntime
/// and tract on the held-out photos. A grid of maxima has no linear form and is refused.
#[test]
#[ignore = "needs make models/data and .venv (onnxruntime); run by make test"]
fn a_grid_cut_head_exports_and_grid_max_is_refused() {
    require_model("efficientnet-lite0");
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make venv`",
        python.display()
    );
    let data = dataset("tuxpaint");
    let work = workdir("tuxpaint");
    let cache = work.join("cache-lite0-stage6@2x2");
    let s = extract(
        "efficientnet-lite0",
        &data,
        &cache,
        &["--layer", "stage6@2x2"],
    );
    assert_eq!(s["dim"], 768, "{s}");
    let run = work.join("export-grid");
    run_ok(
        tlearn()
            .args(["train", "--head", "logistic", "--seed", "1"])
            .args(["--transform", "standard"])
            .arg(&cache)
            .arg("--out")
            .arg(&run),
    );
    let head = run.join("head.json");
    let onnx = run.join("model.onnx");
    let _ = std::fs::remove_file(&onnx);
    run_ok(
        tlearn()
            .args(["export", "--head"])
            .arg(&head)
            .arg("--out")
            .arg(&onnx),
    );
    let saved = read_json(&head);
    assert_eq!(saved["extractor"]["layer"], "stage6@2x2");
    let classes: Vec<String> = serde_json::from_value(saved["classes"].clone()).unwrap();
    let held: Vec<std::path::PathBuf> = saved["split"]["held_out"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| data.join(p.as_str().unwrap()))
        .collect();
    assert!(held.len() >= 40, "{} held-out photos", held.len());
    let x = preprocessed(&held);
    let npy = run.join("held_out_inputs.npy");
    ndarray_npy::write_npy(&npy, &x).expect("write inputs");
    let out = run_ok(
        Command::new(&python)
            .arg(repo().join("tests/onnx_export_run.py"))
            .arg(&onnx)
            .arg(&npy),
    );
    let ort: serde_json::Value = serde_json::from_slice(&out.stdout).expect("runner JSON");
    let ort_p: Vec<Vec<f64>> = serde_json::from_value(ort["probabilities"].clone()).unwrap();
    let want = predict_probs(&head, &held, &classes);
    let d_ort = worst_diff(&ort_p, &want);
    let bytes = std::fs::read(&onnx).unwrap();
    let tract_flat =
        tlearn_export::run_in_tract(&bytes, tract_input(&x)).expect("tract runs the export");
    let tract_p: Vec<Vec<f64>> = tract_flat
        .chunks(classes.len())
        .map(|r| r.iter().map(|&v| v as f64).collect())
        .collect();
    let d_tract = worst_diff(&tract_p, &want);
    eprintln!(
        "export stage6@2x2: {} held-out photos, worst |p difference| vs tlearn predict: \
         onnxruntime {d_ort:.2e}, tract {d_tract:.2e}",
        held.len()
    );
    assert!(d_ort <= 1e-4, "onnxruntime differs by {d_ort:e}");
    assert!(d_tract <= 1e-4, "tract differs by {d_tract:e}");

    // --pool max on a grid: trained and evaluated fine, but not exported.
    let max_cache = work.join("cache-lite0-stage6@2x2-max");
    extract(
        "efficientnet-lite0",
        &data,
        &max_cache,
        &["--layer", "stage6@2x2", "--pool", "max"],
    );
    let max_run = work.join("export-grid-max");
    run_ok(
        tlearn()
            .args(["train", "--head", "logistic", "--seed", "1"])
            .args(["--transform", "standard"])
            .arg(&max_cache)
            .arg("--out")
            .arg(&max_run),
    );
    let bad = max_run.join("model.onnx");
    let _ = std::fs::remove_file(&bad);
    let err = stderr_of(
        tlearn()
            .args(["export", "--head"])
            .arg(max_run.join("head.json"))
            .arg("--out")
            .arg(&bad),
    );
    assert!(
        err.contains("grid pooling with --pool max is not exported"),
        "{err}"
    );
    assert!(!bad.exists());
}
