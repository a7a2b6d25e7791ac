//! Selection over cuts on the real model and the real Tux Paint photos: a cut
//! set, `train` choosing the cut by CV, `eval` finding the head's cut(s) in the set, a forced
//! concatenation end to end (eval, predict, export refused), a second backbone's codes, and the
//! refusals (another image set, a cache without the head's cut, an unknown --cut).
//!
//! The set is made with one `tlearn extract --layer L` per cut and `cuts.json` written by
//! `tlearn_cache::set::write_set` (the layout `extract --layer a,b,c` writes).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use tlearn_cache::set::{cut_dir_name, write_set, CutEntry, CutSet};

const CUTS: [&str; 4] = ["features", "head_conv", "stage6", "stage5"];

/// The Tux Paint cut set of lite0 under target/e2e/cuts/tuxpaint (incremental).
fn tuxpaint_set() -> PathBuf {
    require_model("efficientnet-lite0");
    let data = dataset("tuxpaint");
    let set = workdir("cuts").join("tuxpaint-lite0");
    let mut entries = Vec::new();
    for cut in CUTS {
        let dir = set.join(cut_dir_name(cut));
        extract("efficientnet-lite0", &data, &dir, &["--layer", cut]);
        entries.push(CutEntry {
            name: cut.into(),
            dir: cut_dir_name(cut),
            dim: read_json(&dir.join("meta.json"))["dim"].as_u64().unwrap() as usize,
        });
    }
    let cs = CutSet::new("efficientnet-lite0", data.display().to_string(), entries);
    write_set(&set, &cs).unwrap();
    set
}

fn train(args: &[&str], out: &Path) -> (serde_json::Value, serde_json::Value, String) {
    let o = run_ok(
        tlearn()
            .arg("train")
            .args(args)
            .args(["--seed", "0", "--test-size", "0.3", "--out"])
            .arg(out),
    );
    (
        read_json(&out.join("cv.json")),
        read_json(&out.join("head.json")),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

fn fails(cmd: &mut std::process::Command) -> String {
    let o = cmd.output().unwrap();
    assert!(!o.status.success(), "expected a failure: {cmd:?}");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn train_chooses_the_cut_by_cv_and_eval_finds_it_in_the_set() {
    let set = tuxpaint_set();
    let set_s = set.to_str().unwrap();
    let out = workdir("cuts").join("run-auto");
    let (cv, head, stdout) = train(&[set_s], &out);
    let cuts = &cv["cuts"];
    let sets = cuts["sets"].as_array().unwrap();
    let names: Vec<&str> = sets.iter().map(|s| s["name"].as_str().unwrap()).collect();
    for c in CUTS {
        assert!(names.contains(&c), "{c} missing from {names:?}");
    }
    // head_conv average-pooled is features: recognised, not screened twice.
    let hc = sets.iter().find(|s| s["name"] == "head_conv").unwrap();
    assert_eq!(hc["same_codes_as"], "features");
    assert!(hc["screen"].is_null());
    // Every other single cut was screened; the 3 best were paired (3 pairs).
    for s in sets.iter().filter(|s| s["name"] != "head_conv") {
        assert!(s["screen"]["mean_accuracy"].as_f64().unwrap() > 0.3, "{s}");
    }
    assert_eq!(names.iter().filter(|n| n.contains('+')).count(), 3);
    // Two finalists got the full grid; the chosen one has the best full-grid score.
    let finalists: Vec<&serde_json::Value> = sets.iter().filter(|s| !s["full"].is_null()).collect();
    assert_eq!(finalists.len(), 2);
    let chosen = cuts["chosen"].as_str().unwrap();
    let best = finalists
        .iter()
        .map(|s| s["full"]["mean_accuracy"].as_f64().unwrap())
        .fold(0.0, f64::max);
    let ch = sets.iter().find(|s| s["name"] == chosen).unwrap();
    assert_eq!(ch["full"]["mean_accuracy"].as_f64().unwrap(), best);
    // cv.json's own candidates are the chosen set's full grid.
    let top = &cv["candidates"][cv["chosen"].as_u64().unwrap() as usize];
    assert_eq!(top["mean_accuracy"].as_f64().unwrap(), best);
    // head.json records the chosen set's parts with their fingerprints and columns (a single
    // cut: its extractor fingerprint alone, as for a plain cache).
    let part_names: Vec<String> = match head["parts"].as_array() {
        Some(parts) => {
            let mut offset = 0;
            for p in parts {
                assert_eq!(p["offset"].as_u64().unwrap(), offset);
                assert_eq!(p["extractor"]["layer"], p["name"]);
                offset += p["dim"].as_u64().unwrap();
            }
            assert_eq!(head["dim"].as_u64().unwrap(), offset);
            assert_eq!(head["extractor"], parts[0]["extractor"]);
            parts
                .iter()
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect()
        }
        None => vec![head["extractor"]["layer"].as_str().unwrap().to_string()],
    };
    assert_eq!(part_names.join("+"), chosen);
    // Tux Paint photos are small and similar to ImageNet data: the scenario is never named
    // "different"; "similar" only when the chosen cut holds the bottleneck and the paired folds
    // separate it from the best cut without it, else the cuts are within noise.
    let sc = &cuts["scenario"];
    assert_eq!(sc["size"], "small");
    let holds_features = part_names.iter().any(|p| p == "features");
    let ev = &sc["evidence"];
    let (d, se) = (
        ev["difference"].as_f64().unwrap(),
        ev["standard_error"].as_f64().unwrap(),
    );
    let expected = if d > 2.0 * se && d > 0.0 {
        if holds_features {
            "similar"
        } else {
            "different"
        }
    } else {
        "within noise"
    };
    assert_eq!(sc["similarity"], expected, "{sc}");
    assert_ne!(sc["similarity"], "different", "{sc}");
    assert!(stdout.contains("scenario: small data set"), "{stdout}");
    assert!(
        stdout.contains(&format!("chosen cut: {chosen}")),
        "{stdout}"
    );
    let png = std::fs::read(out.join("cv-cuts.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");

    // eval given the set finds the cut(s); the report shows the selection.
    run_ok(
        tlearn()
            .args(["eval", "--head"])
            .arg(out.join("head.json"))
            .arg(&set)
            .arg("--out")
            .arg(&out),
    );
    let rep = read_json(&out.join("report.json"));
    assert_eq!(rep["cuts"]["chosen"], chosen);
    assert_eq!(rep["metrics"]["n"].as_u64().unwrap(), 65);
    assert!(rep["metrics"]["accuracy"].as_f64().unwrap() > 0.75);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Which cut: cross-validation by cut"));
    assert!(html.contains("alt=\"CV accuracy by cut\" src=\"data:image/png;base64,"));
    assert!(html.contains("Scenario:"));
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn the_one_se_rule_picks_the_simplest_finalist_within_a_standard_error_of_the_best() {
    let set = tuxpaint_set();
    let out = workdir("cuts").join("run-one-se");
    let (cv, _, stdout) = train(
        &[
            set.to_str().unwrap(),
            "--select",
            "one-se",
            "--head",
            "logistic",
            "--finalists",
            "3",
        ],
        &out,
    );
    let cuts = &cv["cuts"];
    assert!(
        cuts["rule"]
            .as_str()
            .unwrap()
            .contains("within one standard error"),
        "{}",
        cuts["rule"]
    );
    let finalists: Vec<&serde_json::Value> = cuts["sets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| !s["full"].is_null())
        .collect();
    assert_eq!(finalists.len(), 3);
    let mean = |s: &serde_json::Value| s["full"]["mean_accuracy"].as_f64().unwrap();
    let folds = |s: &serde_json::Value| -> Vec<f64> {
        s["full"]["fold_accuracy"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let best = finalists
        .iter()
        .copied()
        .max_by(|a, b| mean(a).total_cmp(&mean(b)))
        .unwrap();
    // Within one standard error of the best: the paired per-fold differences.
    let within = |s: &serde_json::Value| {
        let (a, b) = (folds(best), folds(s));
        assert_eq!(a.len(), 5);
        let d: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
        let m = d.iter().sum::<f64>() / 5.0;
        let var = d.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 4.0;
        m <= (var / 5.0).sqrt() + 1e-12
    };
    // Simplest: one cut before a concatenation, holding the bottleneck, fewer dimensions
    // (every head here is linear), then the better mean.
    let key = |s: &serde_json::Value| {
        let name = s["name"].as_str().unwrap();
        (
            name.split('+').count(),
            !name.split('+').any(|p| p == "features"),
            s["dim"].as_u64().unwrap(),
        )
    };
    let expected = finalists
        .iter()
        .copied()
        .filter(|s| within(s))
        .min_by(|a, b| key(a).cmp(&key(b)).then(mean(b).total_cmp(&mean(a))))
        .unwrap();
    assert_eq!(cuts["chosen"], expected["name"], "{finalists:?}");
    assert!(stdout.contains("chosen cut: "), "{stdout}");
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn a_concatenated_head_evaluates_and_predicts_and_export_refuses_it() {
    let set = tuxpaint_set();
    let set_s = set.to_str().unwrap();
    let out = workdir("cuts").join("run-concat");
    let (cv, head, _) = train(&[set_s, "--cut", "stage6+features"], &out);
    assert_eq!(cv["cuts"]["chosen"], "stage6+features");
    assert_eq!(cv["cuts"]["sets"].as_array().unwrap().len(), 1);
    assert_eq!(head["dim"], 192 + 1280);
    assert_eq!(head["parts"][0]["name"], "stage6");
    assert_eq!(head["parts"][1]["offset"], 192);
    let head_path = out.join("head.json");

    run_ok(
        tlearn()
            .args(["eval", "--head"])
            .arg(&head_path)
            .arg(&set)
            .arg("--out")
            .arg(&out),
    );
    let rep = read_json(&out.join("report.json"));
    // A cache holding only one of the two cuts is refused, naming the missing part.
    let err = fails(
        tlearn()
            .args(["eval", "--head"])
            .arg(&head_path)
            .arg(set.join("features"))
            .arg("--out")
            .arg(out.join("x")),
    );
    assert!(
        err.contains("part 'stage6'") && err.contains("is in none of the caches"),
        "{err}"
    );

    // predict runs both cuts of the backbone and agrees with eval on held-out photos.
    let data = dataset("tuxpaint");
    let held: Vec<String> = head["split"]["held_out"]
        .as_array()
        .unwrap()
        .iter()
        .take(12)
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    let o = run_ok(
        tlearn()
            .args(["predict", "--json", "--head"])
            .arg(&head_path)
            .args(held.iter().map(|p| data.join(p))),
    );
    let preds: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let preds = preds["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), held.len());
    let wrong = rep["misclassified"].as_array().unwrap();
    for (p, path) in preds.iter().zip(&held) {
        let top = p["top"][0]["class"].as_str().unwrap();
        let truth = path.split('/').next().unwrap();
        match wrong.iter().find(|m| m["path"] == path.as_str()) {
            Some(m) => assert_eq!(top, m["predicted"].as_str().unwrap(), "{path}"),
            None => assert_eq!(top, truth, "{path}"),
        }
    }

    let err = fails(
        tlearn()
            .args(["export", "--head"])
            .arg(&head_path)
            .arg("--out")
            .arg(out.join("model.onnx")),
    );
    assert!(
        err.contains("concatenation of cuts (stage6 + features)"),
        "{err}"
    );
    assert!(!out.join("model.onnx").exists());

    let err = fails(
        tlearn()
            .args(["train", set_s, "--cut", "stage9", "--out"])
            .arg(out.join("y")),
    );
    assert!(
        err.contains("no cut named 'stage9'") && err.contains("stage6"),
        "{err}"
    );
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn a_second_backbone_adds_its_cuts_and_a_cross_backbone_pair_and_other_images_are_refused() {
    require_model("mobilenetv2");
    let set = tuxpaint_set();
    let mb = workdir("cuts").join("tuxpaint-mobilenetv2-features");
    extract("mobilenetv2", &dataset("tuxpaint"), &mb, &[]);
    let out = workdir("cuts").join("run-two");
    // The cut search over both backbones is under test, not the head grid (the default grid is
    // in the test above): one head family keeps the finalists' tuning short.
    let (cv, head, _) = train(
        &[
            set.to_str().unwrap(),
            mb.to_str().unwrap(),
            "--head",
            "logistic",
        ],
        &out,
    );
    let sets = cv["cuts"]["sets"].as_array().unwrap();
    let names: Vec<&str> = sets.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"mobilenetv2/features"), "{names:?}");
    assert!(
        names
            .iter()
            .any(|n| n.contains('+') && n.contains("mobilenetv2/")),
        "no cross-backbone pair in {names:?}"
    );
    // The head's parts name their backbones; eval needs both paths when it reads both.
    let parts: Vec<String> = match head["parts"].as_array() {
        Some(p) => p
            .iter()
            .map(|p| p["extractor"]["backbone"].as_str().unwrap().to_string())
            .collect(),
        None => vec![head["extractor"]["backbone"].as_str().unwrap().to_string()],
    };
    let mut eval = tlearn();
    eval.args(["eval", "--head"])
        .arg(out.join("head.json"))
        .arg(&set)
        .arg(&mb)
        .arg("--out")
        .arg(&out);
    run_ok(&mut eval);
    if parts.iter().any(|b| b == "mobilenetv2") {
        let err = fails(
            tlearn()
                .args(["eval", "--head"])
                .arg(out.join("head.json"))
                .arg(&set)
                .arg("--out")
                .arg(out.join("x")),
        );
        assert!(err.contains("is in none of the caches"), "{err}");
    }

    // Another image set as the second path is refused before any training.
    require_model("efficientnet-lite0");
    let smoke = workdir("cuts").join("smoke-lite0");
    extract("efficientnet-lite0", &dataset("smoke"), &smoke, &[]);
    let err = fails(
        tlearn()
            .args(["train"])
            .arg(&set)
            .arg(&smoke)
            .arg("--out")
            .arg(out.join("z")),
    );
    assert!(err.contains("do not hold the same images"), "{err}");
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn two_backbones_joined_each_block_normalised_and_predict_applies_the_same_rule() {
    require_model("mobilenetv2");
    let set = tuxpaint_set();
    let mb = workdir("cuts").join("tuxpaint-mobilenetv2-features");
    extract("mobilenetv2", &dataset("tuxpaint"), &mb, &[]);
    let (set_s, mb_s) = (set.to_str().unwrap(), mb.to_str().unwrap());
    let out = workdir("cuts").join("run-two-blocks");
    let pair = "features+mobilenetv2/features";
    // The joining and its normalisation are under test: one head family, not the whole grid.
    let (cv, head, _) = train(&[set_s, mb_s, "--cut", pair, "--head", "logistic"], &out);
    assert_eq!(cv["cuts"]["chosen"], pair);
    assert!(
        cv["cuts"]["rule"].as_str().unwrap().contains("--cut"),
        "{}",
        cv["cuts"]["rule"]
    );
    // The default rule, one block per part, recorded in the head's transform and named in the
    // CV report's transform steps.
    assert_eq!(head["transform"]["blocks"]["rule"], "sqrt-l2");
    assert_eq!(
        head["transform"]["blocks"]["dims"],
        serde_json::json!([1280, 1280])
    );
    let steps = cv["chosen_transform_steps"].as_str().unwrap();
    assert!(
        steps.starts_with("per-block signed sqrt + L2 (1280 | 1280)"),
        "{steps}"
    );
    let head_path = out.join("head.json");
    run_ok(
        tlearn()
            .args(["eval", "--head"])
            .arg(&head_path)
            .arg(&set)
            .arg(&mb)
            .arg("--out")
            .arg(&out),
    );
    let rep = read_json(&out.join("report.json"));
    assert!(
        rep["transform"]
            .as_str()
            .unwrap()
            .starts_with("per-block signed sqrt + L2"),
        "{}",
        rep["transform"]
    );
    // 65 held-out photos of 10 classes: two ImageNet backbones side by side get most right.
    let acc = rep["metrics"]["accuracy"].as_f64().unwrap();
    assert!(acc >= 0.8, "held-out accuracy {acc}");

    // predict runs both backbones on the photos, normalises each block as train did, and
    // agrees with eval on every held-out photo it is given.
    let data = dataset("tuxpaint");
    let held: Vec<String> = head["split"]["held_out"]
        .as_array()
        .unwrap()
        .iter()
        .take(16)
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    let o = run_ok(
        tlearn()
            .args(["predict", "--json", "--head"])
            .arg(&head_path)
            .args(held.iter().map(|p| data.join(p))),
    );
    let preds: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let preds = preds["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), held.len());
    let wrong = rep["misclassified"].as_array().unwrap();
    for (p, path) in preds.iter().zip(&held) {
        let top = p["top"][0]["class"].as_str().unwrap();
        let truth = path.split('/').next().unwrap();
        match wrong.iter().find(|m| m["path"] == path.as_str()) {
            Some(m) => assert_eq!(top, m["predicted"].as_str().unwrap(), "{path}"),
            None => assert_eq!(top, truth, "{path}"),
        }
    }

    // --block-norm none joins the blocks raw (the behaviour before), and says so.
    let raw = workdir("cuts").join("run-two-raw");
    let (_, head_raw, _) = train(
        &[
            set_s,
            mb_s,
            "--cut",
            pair,
            "--block-norm",
            "none",
            "--head",
            "logistic",
        ],
        &raw,
    );
    assert!(head_raw["transform"].get("blocks").is_none());
    // A head whose blocks do not match its parts is refused when loaded, naming the field.
    let mut bad = head.clone();
    bad["transform"]["blocks"]["dims"] = serde_json::json!([1280, 1000, 280]);
    let bad_path = out.join("bad-head.json");
    std::fs::write(&bad_path, serde_json::to_string(&bad).unwrap()).unwrap();
    let err = fails(
        tlearn()
            .args(["eval", "--head"])
            .arg(&bad_path)
            .arg(&set)
            .arg(&mb)
            .arg("--out")
            .arg(out.join("x")),
    );
    assert!(err.contains("transform.blocks.dims"), "{err}");
}
