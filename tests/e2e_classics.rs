//! The classic backbones through the `tlearn` binary: `tlearn layers` shows their Keras cut names
//! and licence (loudly when non-commercial), ResNet-152 recognises the smoke photos
//! (`predict --imagenet`), Xception and Inception-v3 (no classifier in their packages) refuse
//! `--imagenet` clearly, and a classic's codes join the default cut set as the second path of
//! `train` (what `make demo MODEL2=xception` does). Needs `make models data` (run by `make test`).

mod common;
use common::*;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn layers_shows_keras_cut_names_and_the_licence() {
    require_model("xception");
    let out = stdout(&run_ok(tlearn().args(["layers", "xception", "--cuts"])));
    println!("{out}");
    assert!(out.contains("licence: MIT"), "{out}");
    assert!(!out.contains("NON-COMMERCIAL"), "{out}");
    for cut in [
        "avg_pool",
        "block14_sepconv2_act",
        "block14_sepconv1_act",
        "add_11",
        "add_10",
        "add_6",
        "add_2",
    ] {
        assert!(
            out.contains(&format!("<- {cut}")),
            "cut {cut} not marked:\n{out}"
        );
    }
    assert!(out.contains("<- avg_pool (default)"), "{out}");
    assert!(!out.contains("registry cuts not found"), "{out}");

    require_model("resnet152");
    let out = stdout(&run_ok(tlearn().args(["layers", "resnet152", "--cuts"])));
    assert!(
        out.contains("NON-COMMERCIAL LICENCE") && out.contains("non-commercial purposes only"),
        "{out}"
    );
    assert!(out.contains("<- conv5_block3_out"), "{out}");
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn resnet152_imagenet_top5_on_the_smoke_photos() {
    require_model("resnet152");
    let smoke = dataset("smoke");
    let photos = [
        "skimage/chelsea.png",
        "skimage/coffee.png",
        "darknet/dog.jpg",
        "darknet/eagle.jpg",
        "skimage/motorcycle_left.png",
    ];
    let out = run_ok(
        tlearn()
            .args(["predict", "--imagenet", "--json", "--model", "resnet152"])
            .args(photos.iter().map(|p| smoke.join(p))),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let preds = v["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), photos.len());
    let mut top5 = Vec::new();
    for (photo, p) in photos.iter().zip(preds) {
        let top = p["top"].as_array().unwrap();
        let ids: Vec<u64> = top.iter().map(|t| t["index"].as_u64().unwrap()).collect();
        let names: Vec<&str> = top.iter().map(|t| t["class"].as_str().unwrap()).collect();
        println!("resnet152 {photo:28} top-5 {ids:?} {names:?}");
        top5.push(ids);
    }
    assert!((281..=285).contains(&top5[0][0]), "cat: {:?}", top5[0]);
    assert_eq!(top5[1][0], 967, "coffee (967 espresso): {:?}", top5[1]);
    assert!((151..=268).contains(&top5[2][0]), "dog: {:?}", top5[2]);
    assert!(
        [21, 22].contains(&top5[3][0]) && top5[3].contains(&21) && top5[3].contains(&22),
        "eagle (21 kite, 22 bald eagle): {:?}",
        top5[3]
    );
    // 665 moped, 670 motor scooter
    assert!(
        top5[4].contains(&665) || top5[4].contains(&670),
        "motorcycle: {:?}",
        top5[4]
    );
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn xception_and_inception_have_no_classifier_and_say_so() {
    let coffee = dataset("smoke").join("skimage/coffee.png");
    for model in ["xception", "inception-v3"] {
        require_model(model);
        let out = tlearn()
            .args(["predict", "--imagenet", "--model", model])
            .arg(&coffee)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{model}: --imagenet accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(model) && err.contains("2048"),
            "{model}: unclear error: {err}"
        );
    }
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn a_classic_joins_the_default_cut_set_as_the_second_path() {
    require_model("efficientnet-lite0");
    require_model("xception");
    let data = dataset("tuxpaint");
    let work = workdir("classics");
    let set = work.join("tuxpaint-lite0-all");
    extract("efficientnet-lite0", &data, &set, &["--layer", "all"]);
    let xc = work.join("tuxpaint-xception");
    let summary = extract("xception", &data, &xc, &[]);
    assert_eq!(summary["dim"].as_u64(), Some(2048));
    let run = work.join("run-lite0-xception");
    run_ok(
        tlearn()
            .arg("train")
            .arg(&set)
            .arg(&xc)
            .args(["--seed", "0", "--test-size", "0.3", "--out"])
            .arg(&run),
    );
    let cv = read_json(&run.join("cv.json"));
    let names: Vec<&str> = cv["cuts"]["sets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"xception/avg_pool"), "{names:?}");
    assert!(
        names
            .iter()
            .any(|n| n.contains('+') && n.contains("xception/")),
        "no lite0 + xception pair in {names:?}"
    );
    run_ok(
        tlearn()
            .args(["eval", "--head"])
            .arg(run.join("head.json"))
            .arg(&set)
            .arg(&xc)
            .arg("--out")
            .arg(&run),
    );
    let acc = read_json(&run.join("report.json"))["metrics"]["accuracy"]
        .as_f64()
        .unwrap();
    println!("lite0 cut set + xception, seed 0: held-out accuracy {acc:.3}");
    assert!(acc >= 0.8, "held-out accuracy {acc}");
}
