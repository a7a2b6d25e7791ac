//! The fine-tuning head end to end on the Tux Paint photos: EfficientNet-Lite0's `stage6` map
//! (`extract --layer stage6 --pool flatten`) → the backbone's layers after the cut, read from its
//! ONNX file, whose pooled output must equal the cached `features` codes of the same photos →
//! `train --head finetune` → `eval`, `predict`, `export` (the ONNX file run in onnxruntime and
//! compared with `predict` to 1e-4); the same from `stage5`, whose layers start with a stride-2
//! depthwise convolution. Then the bad inputs: a sidecar whose shapes disagree, a
//! head whose block belongs to another cut, NaN in the cached maps.
//! Needs `make models data` and the venv (run by `make test`).

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

use tlearn_extract::registry::Registry;
use tlearn_finetune::TopBlock;
use tlearn_heads::FeatureCache;

fn stderr_of(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn tlearn");
    assert!(!out.status.success(), "{cmd:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The stage6 spatial cache and the `features` cache of the Tux Paint photos.
fn caches() -> (PathBuf, PathBuf, PathBuf) {
    require_model("efficientnet-lite0");
    let data = dataset("tuxpaint");
    let work = workdir("tuxpaint");
    let maps = work.join("cache-lite0-stage6-flatten");
    extract(
        "efficientnet-lite0",
        &data,
        &maps,
        &["--layer", "stage6", "--pool", "flatten"],
    );
    let codes = work.join("cache-lite0");
    extract("efficientnet-lite0", &data, &codes, &[]);
    (data, maps, codes)
}

/// The stage5 spatial cache (`[112,14,14]`) of the same photos.
fn maps_stage5() -> PathBuf {
    let maps = workdir("tuxpaint").join("cache-lite0-stage5-flatten");
    extract(
        "efficientnet-lite0",
        &dataset("tuxpaint"),
        &maps,
        &["--layer", "stage5", "--pool", "flatten"],
    );
    maps
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn blocks_after_stage6_and_stage5_reproduce_the_cached_features() {
    let (_, maps, codes) = caches();
    let maps = FeatureCache::load(&maps).unwrap();
    let codes = FeatureCache::load(&codes).unwrap();
    assert_eq!(maps.paths, codes.paths, "the same photos in the same order");
    assert_eq!(maps.meta.dim, 192 * 7 * 7, "stage6 is [192,7,7]");
    let dir = repo().join("models");
    let entry = Registry::load(&dir)
        .unwrap()
        .get("efficientnet-lite0")
        .unwrap()
        .clone();
    let block = TopBlock::read(&entry, &dir, "stage6", maps.meta.dim).unwrap();
    let kinds: Vec<String> = block.ops.iter().map(|o| o.name.clone()).collect();
    assert_eq!(
        kinds,
        [
            "block15.expand.conv",
            "block15.expand",
            "block15.dw.conv",
            "block15.dw",
            "block15",
            "head_conv.conv",
            "head_conv"
        ],
        "the last MBConv block (expand, depthwise, project) and the head conv"
    );
    assert_eq!(block.features(), 1280);
    let worst = worst_against_codes(&block, &maps, &codes);
    eprintln!(
        "{} photos: worst |block(stage6) - features| / (1 + |features|) = {worst:.2e}",
        maps.rows()
    );
    assert!(worst < 1e-4, "{worst}");

    // From stage5 ([112,14,14]): the four blocks of stage 6, the first of them down-sampling
    // with a stride-2 5x5 depthwise conv, then the same top.
    let maps5 = FeatureCache::load(&maps_stage5()).unwrap();
    assert_eq!(
        maps5.paths, codes.paths,
        "the same photos in the same order"
    );
    let block5 = TopBlock::read(&entry, &dir, "stage5", maps5.meta.dim).unwrap();
    assert_eq!(block5.input, [112, 14, 14]);
    let strided: Vec<(&str, usize)> = block5
        .ops
        .iter()
        .filter_map(|o| match &o.kind {
            tlearn_finetune::block::OpKind::Conv { stride, .. } if *stride != 1 => {
                Some((o.name.as_str(), *stride))
            }
            _ => None,
        })
        .collect();
    assert_eq!(strided, [("block11.dw.conv", 2)], "one down-sampling layer");
    let shapes = block5.shapes().unwrap();
    assert_eq!(shapes.last().unwrap(), &[1280, 7, 7]);
    eprintln!(
        "parameters after stage5: {}, after stage6: {}",
        block5.parameters(),
        block.parameters()
    );
    assert!(block5.parameters() > 2 * block.parameters());
    let worst = worst_against_codes(&block5, &maps5, &codes);
    eprintln!(
        "{} photos: worst |block(stage5) - features| / (1 + |features|) = {worst:.2e}",
        maps5.rows()
    );
    assert!(worst < 1e-4, "{worst}");

    // MobileNetV2's matching top: its last inverted-residual block and head conv.
    let entry = Registry::load(&dir)
        .unwrap()
        .get("mobilenetv2")
        .unwrap()
        .clone();
    require_model("mobilenetv2");
    let b = TopBlock::read(&entry, &dir, "stage6", 160 * 49).unwrap();
    assert_eq!(b.input, [160, 7, 7]);
    assert_eq!(b.features(), 1280);
    assert_eq!(b.ops.iter().filter(|o| o.kind.conv().is_some()).count(), 4);
    let b = TopBlock::read(&entry, &dir, "stage5", 96 * 14 * 14).unwrap();
    assert_eq!(b.input, [96, 14, 14]);
    assert_eq!(b.shapes().unwrap().last().unwrap(), &[1280, 7, 7]);
    // A cut with nothing pretrained after it is refused with the reason.
    let e = Registry::load(&dir)
        .unwrap()
        .get("efficientnet-lite0")
        .unwrap()
        .clone();
    let err = TopBlock::read(&e, &dir, "head_conv", 1280 * 49).unwrap_err();
    assert!(
        format!("{err:#}").contains("no pretrained layer after cut 'head_conv'"),
        "{err:#}"
    );
}

/// The worst relative difference between `block` run on the cached maps and the cached
/// `features` codes of the same photos.
fn worst_against_codes(block: &TopBlock, maps: &FeatureCache, codes: &FeatureCache) -> f32 {
    let rows: Vec<&[f32]> = (0..maps.rows()).map(|i| maps.row(i)).collect();
    let pooled = tlearn_finetune::train::pooled(block, &rows).unwrap();
    pooled
        .iter()
        .zip(codes.x.iter())
        .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
        .fold(0f32, f32::max)
}

/// The first 12 held-out photos of a saved head's split.
fn held_out_photos(data: &Path, saved: &serde_json::Value) -> Vec<PathBuf> {
    saved["split"]["held_out"]
        .as_array()
        .unwrap()
        .iter()
        .take(12)
        .map(|p| data.join(p.as_str().unwrap()))
        .collect()
}

/// `predict`'s probabilities of `held` and those of the head exported to ONNX (backbone and
/// fine-tuned layers in one file) and run in onnxruntime agree to 1e-4.
fn assert_export_matches_predict(run: &Path, head: &Path, held: &[PathBuf], cut: &str) {
    let saved = read_json(head);
    let classes: Vec<String> = serde_json::from_value(saved["classes"].clone()).unwrap();
    let out = run_ok(
        tlearn()
            .args([
                "predict",
                "--json",
                "--top",
                &classes.len().to_string(),
                "--head",
            ])
            .arg(head)
            .args(held),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let want: Vec<Vec<f64>> = v["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let mut row = vec![f64::NAN; classes.len()];
            for r in p["top"].as_array().unwrap() {
                row[r["index"].as_u64().unwrap() as usize] = r["probability"].as_f64().unwrap();
            }
            row
        })
        .collect();
    let onnx = run.join("model.onnx");
    let _ = std::fs::remove_file(&onnx);
    run_ok(
        tlearn()
            .args(["export", "--head"])
            .arg(head)
            .arg("--out")
            .arg(&onnx),
    );
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make venv` (make test does)",
        python.display()
    );
    let reg = Registry::load(&repo().join("models")).unwrap();
    let p = reg.get("efficientnet-lite0").unwrap().preprocess.clone();
    let views: Vec<_> = held
        .iter()
        .map(|f| {
            let img = tlearn_extract::decode::decode_rgb(&std::fs::read(f).unwrap(), p.background)
                .unwrap();
            let v0 = tlearn_extract::augment::views(tlearn_extract::augment::Augment::None)[0];
            tlearn_extract::preprocess::view_image(&img, &p, v0).unwrap()
        })
        .collect();
    let t = tlearn_extract::preprocess::to_tensor(&views, &p).unwrap();
    let x = ndarray::Array4::from_shape_vec(
        (held.len(), 3, 224, 224),
        t.to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect(),
    )
    .unwrap();
    let npy = run.join("held_out_inputs.npy");
    ndarray_npy::write_npy(&npy, &x).unwrap();
    let out = run_ok(
        Command::new(&python)
            .arg(repo().join("tests/onnx_export_run.py"))
            .arg(&onnx)
            .arg(&npy),
    );
    let ort: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ort["classes"], saved["classes"]);
    let got: Vec<Vec<f64>> = serde_json::from_value(ort["probabilities"].clone()).unwrap();
    let worst = got
        .iter()
        .zip(&want)
        .flat_map(|(a, b)| a.iter().zip(b).map(|(u, v)| (u - v).abs()))
        .fold(0f64, f64::max);
    eprintln!(
        "export from {cut}: {} photos, worst |p(onnxruntime) - p(predict)| = {worst:.2e}",
        held.len()
    );
    assert!(worst <= 1e-4, "{worst}");
}

/// Epochs of the stage6 runs: enough to move the weights, short enough for a test.
const EPOCHS: &[&str] = &["--ft-probe-epochs", "5", "--ft-epochs", "3"];

fn train(maps: &Path, run: &Path, epochs: &[&str]) {
    run_ok(
        tlearn()
            .args([
                "train",
                "--head",
                "finetune",
                "--seed",
                "1",
                "--test-size",
                "0.3",
            ])
            .args(epochs)
            .arg(maps)
            .arg("--out")
            .arg(run),
    );
}

#[test]
#[ignore = "needs make models/data and .venv (onnxruntime); run by make test"]
fn finetune_head_trains_predicts_exports_and_refuses_bad_files() {
    let (data, maps, _) = caches();
    let work = workdir("tuxpaint");
    let run = work.join("finetune");
    train(&maps, &run, EPOCHS);
    let head = run.join("head.json");
    let side = run.join("head.finetune.npz");
    let saved = read_json(&head);
    assert_eq!(saved["params"]["kind"], "finetune");
    assert_eq!(saved["block"]["cut"], "stage6");
    assert!(side.exists());

    // Deterministic: the same seed gives the same weights.
    let again = work.join("finetune-again");
    train(&maps, &again, EPOCHS);
    assert_eq!(
        std::fs::read(&side).unwrap(),
        std::fs::read(again.join("head.finetune.npz")).unwrap(),
        "same seed, same sidecar bytes"
    );

    let _ = std::fs::remove_file(run.join("confusion.png"));
    let out = run_ok(
        tlearn()
            .args(["eval", "--head"])
            .arg(&head)
            .arg(&maps)
            .arg("--out")
            .arg(&run),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("precision") && text.contains("confusion matrix"),
        "the per-class table and the confusion matrix: {text}"
    );
    assert!(run.join("confusion.png").is_file());
    let rep = read_json(&run.join("report.json"));
    let acc = rep["metrics"]["accuracy"].as_f64().unwrap();
    eprintln!("fine-tuned head, Tux Paint seed 1: held-out accuracy {acc:.3}");
    assert!(acc >= 0.75, "held-out accuracy {acc}");

    let held = held_out_photos(&data, &saved);
    assert_export_matches_predict(&run, &head, &held, "stage6");

    // From stage5: the exported graph carries the stride-2 depthwise conv.
    let run5 = work.join("finetune-stage5");
    train(
        &maps_stage5(),
        &run5,
        &["--ft-probe-epochs", "2", "--ft-epochs", "1"],
    );
    let head5 = run5.join("head.json");
    let saved5 = read_json(&head5);
    assert_eq!(saved5["block"]["cut"], "stage5");
    let strided: Vec<&serde_json::Value> = saved5["block"]["ops"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o.get("stride").is_some())
        .collect();
    assert_eq!(strided.len(), 1, "{strided:?}");
    assert_eq!(strided[0]["name"], "block11.dw.conv");
    assert_eq!(strided[0]["stride"], 2);
    assert_export_matches_predict(&run5, &head5, &held_out_photos(&data, &saved5), "stage5");

    // Bad input 1: a sidecar whose shapes disagree with the block (same sha256 recorded, so
    // the shape check is what refuses it).
    let bad = tempfile::tempdir().unwrap();
    let bhead = bad.path().join("head.json");
    let bside = bad.path().join("head.finetune.npz");
    {
        let mut w = ndarray_npy::NpzWriter::new(std::fs::File::create(&bside).unwrap());
        w.add_array(
            "block15.expand.conv.weight",
            &ndarray::Array4::<f32>::zeros((1152, 191, 1, 1)),
        )
        .unwrap();
        w.finish().unwrap();
    }
    let mut s = saved.clone();
    s["sidecar"]["sha256"] = serde_json::json!(sha256(&bside));
    std::fs::write(&bhead, serde_json::to_string(&s).unwrap()).unwrap();
    let err = stderr_of(
        tlearn()
            .args(["eval", "--head"])
            .arg(&bhead)
            .arg(&maps)
            .arg("--out")
            .arg(bad.path()),
    );
    assert!(
        err.contains("head.finetune.npz")
            && err.contains("block15.expand.conv.weight")
            && err.contains("[1152, 191, 1, 1]"),
        "{err}"
    );
    // ... and a replaced sidecar (sha256 differs from head.json's).
    let err = stderr_of(
        tlearn()
            .args(["predict", "--head"])
            .arg(&bhead)
            .args(&held[..1])
            .env("X", "1")
            .arg("--json"),
    );
    assert!(err.contains("head.finetune.npz"), "{err}");
    std::fs::copy(&side, &bside).unwrap();
    let err = stderr_of(
        tlearn()
            .args(["eval", "--head"])
            .arg(&bhead)
            .arg(&maps)
            .arg("--out")
            .arg(bad.path()),
    );
    assert!(err.contains("sidecar.sha256"), "{err}");

    // Bad input 2: the head's block claims another cut of the backbone.
    let mut s = saved.clone();
    s["block"]["cut"] = serde_json::json!("stage5");
    std::fs::write(&bhead, serde_json::to_string(&s).unwrap()).unwrap();
    let err = stderr_of(
        tlearn()
            .args(["export", "--head"])
            .arg(&bhead)
            .arg("--out")
            .arg(bad.path().join("m.onnx")),
    );
    assert!(
        err.contains("block.cut") && err.contains("another backbone or cut"),
        "{err}"
    );
    assert!(!bad.path().join("m.onnx").exists());

    // Bad input 3: NaN in the cached maps.
    let nan = bad.path().join("nan-cache");
    copy_dir(&maps, &nan);
    let mut x: ndarray::Array2<f32> = ndarray_npy::read_npy(nan.join("features.npy")).unwrap();
    x[[3, 100]] = f32::NAN;
    ndarray_npy::write_npy(nan.join("features.npy"), &x).unwrap();
    let err = stderr_of(
        tlearn()
            .args(["train", "--head", "finetune"])
            .arg(&nan)
            .arg("--out")
            .arg(bad.path().join("run")),
    );
    assert!(
        err.contains("features.npy") && err.contains("row 3"),
        "{err}"
    );
}

/// `train --head auto CODES --finetune-on MAPS`: the contest's record in cv.json.
fn contest(codes: &Path, maps: &Path, run: &Path, extra: &[&str]) -> serde_json::Value {
    let out = run_ok(
        tlearn()
            .args([
                "train",
                "--head",
                "auto",
                "--seed",
                "1",
                "--test-size",
                "0.3",
            ])
            .args(["--ft-probe-epochs", "5", "--ft-epochs", "3"])
            .args(["--finetune-min-images", "0", "--finetune-on"])
            .arg(maps)
            .args(extra)
            .arg(codes)
            .arg("--out")
            .arg(run),
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    read_json(&run.join("cv.json"))
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn finetuning_competes_with_the_frozen_heads_on_their_folds() {
    let (_, maps, codes) = caches();
    let work = workdir("tuxpaint");

    // The default grid: fine-tuning is scored on the frozen heads' five folds and paired with
    // the chosen frozen head fold by fold.
    let run = work.join("finetune-contest");
    let cv = contest(&codes, &maps, &run, &[]);
    let ft = &cv["finetune"];
    let folds: Vec<f64> = serde_json::from_value(ft["fold_accuracy"].clone()).unwrap();
    let chosen = cv["chosen"].as_u64().unwrap() as usize;
    let frozen: Vec<f64> =
        serde_json::from_value(cv["candidates"][chosen]["fold_accuracy"].clone()).unwrap();
    assert_eq!(folds.len(), 5, "{ft}");
    assert_eq!(frozen.len(), 5);
    assert!(folds.iter().all(|a| (0.0..=1.0).contains(a)), "{ft}");
    let mean = folds.iter().sum::<f64>() / 5.0;
    assert!((ft["mean_accuracy"].as_f64().unwrap() - mean).abs() < 1e-12);
    let d: Vec<f64> = folds.iter().zip(&frozen).map(|(a, b)| a - b).collect();
    let dm = d.iter().sum::<f64>() / 5.0;
    let se = (d.iter().map(|x| (x - dm).powi(2)).sum::<f64>() / 4.0 / 5.0).sqrt();
    assert!(
        (ft["difference"].as_f64().unwrap() - dm).abs() < 1e-12,
        "{ft}"
    );
    assert!(
        (ft["standard_error"].as_f64().unwrap() - se).abs() < 1e-12,
        "{ft}"
    );
    let kept = ft["chosen"].as_bool().unwrap();
    assert_eq!(kept, dm > 0.0 && dm > se, "{ft}");
    let head = read_json(&run.join("head.json"));
    assert_eq!(
        head["params"]["kind"] == "finetune",
        kept,
        "{}",
        head["params"]
    );
    let scenario = cv["cuts"]["scenario"]["text"].as_str().unwrap();
    assert!(
        scenario.contains("Fine-tuning the layers after efficientnet-lite0 'stage6'"),
        "{scenario}"
    );
    eprintln!(
        "Tux Paint seed 1: fine-tuned CV {mean:.3}, frozen {:.3}, paired {dm:+.3} ± {se:.3}",
        frozen.iter().sum::<f64>() / 5.0
    );

    // Frozen heads held to one principal component of the codes: fine-tuning wins by far,
    // head.json is the fine-tuned network, fitted on the same training images, and eval
    // scores it on the held-out images of the frozen split.
    let run = work.join("finetune-contest-wins");
    let cv = contest(
        &codes,
        &maps,
        &run,
        &["--pca", "1", "--transform", "standard"],
    );
    let ft = &cv["finetune"];
    assert!(ft["chosen"].as_bool().unwrap(), "{ft}");
    let head = read_json(&run.join("head.json"));
    assert_eq!(head["params"]["kind"], "finetune");
    assert!(run.join("head.finetune.npz").exists());
    assert_eq!(head["split"]["folds"], 5);
    assert_eq!(head["cv"]["fold_accuracy"], ft["fold_accuracy"]);
    let codes_cache = FeatureCache::load(&codes).unwrap();
    let held: Vec<String> = cv["split"]["test_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| codes_cache.paths[i.as_u64().unwrap() as usize].clone())
        .collect();
    assert_eq!(head["split"]["held_out"], serde_json::json!(held));
    // The frozen codes given beside the maps, as after any `train`: eval finds the maps.
    run_ok(
        tlearn()
            .args(["eval", "--head"])
            .arg(run.join("head.json"))
            .arg(&codes)
            .arg(&maps)
            .arg("--out")
            .arg(&run),
    );
    let acc = read_json(&run.join("report.json"))["metrics"]["accuracy"]
        .as_f64()
        .unwrap();
    assert!(
        acc >= 0.7,
        "held-out accuracy of the kept fine-tuned head {acc}"
    );

    // Refused before any CV: another head than auto, and a pooled cache given as the maps.
    let err = stderr_of(
        tlearn()
            .args(["train", "--head", "logistic", "--finetune-on"])
            .arg(&maps)
            .arg(&codes)
            .arg("--out")
            .arg(work.join("finetune-refused")),
    );
    assert!(err.contains("--head auto"), "{err}");
    let err = stderr_of(
        tlearn()
            .args(["train", "--finetune-on"])
            .arg(&codes)
            .arg(&codes)
            .arg("--out")
            .arg(work.join("finetune-refused")),
    );
    assert!(
        err.contains("extractor.pool") && err.contains("spatial map"),
        "{err}"
    );

    // Under --finetune-min-images (1,000 by default): left out with a note, no record.
    let out = run_ok(
        tlearn()
            .args(["train", "--head", "auto", "--seed", "1", "--finetune-on"])
            .arg(&maps)
            .arg(&codes)
            .arg("--out")
            .arg(work.join("finetune-left-out")),
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fine-tuning left out"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(read_json(&work.join("finetune-left-out/cv.json"))
        .get("finetune")
        .is_none());
}

fn sha256(p: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.path().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}
