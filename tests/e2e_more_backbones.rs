//! The two extra offline backbones through the `tlearn` binary: SqueezeNet 1.1 recognises the
//! smoke photos (`predict --imagenet`), MobileNetV2 (a feature extractor without a classifier)
//! refuses `--imagenet` clearly and its codes learn Tux Paint. Needs `make models data` (run by
//! `make test`).

mod common;
use common::*;

#[test]
#[ignore = "needs make models/data; run by make test"]
fn squeezenet_imagenet_top5_on_the_smoke_photos() {
    require_model("squeezenet1.1");
    let smoke = dataset("smoke");
    let photos = [
        "skimage/astronaut.png",
        "skimage/chelsea.png",
        "skimage/coffee.png",
        "darknet/dog.jpg",
        "darknet/eagle.jpg",
        "skimage/rocket.jpg",
    ];
    let mut cmd = tlearn();
    cmd.args([
        "predict",
        "--imagenet",
        "--json",
        "--model",
        "squeezenet1.1",
    ])
    .args(photos.iter().map(|p| smoke.join(p)));
    let out = run_ok(&mut cmd);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let preds = v["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), photos.len());
    let mut top5 = Vec::new();
    for (photo, p) in photos.iter().zip(preds) {
        let top = p["top"].as_array().unwrap();
        assert_eq!(top.len(), 5);
        let ids: Vec<u64> = top.iter().map(|t| t["index"].as_u64().unwrap()).collect();
        let names: Vec<&str> = top.iter().map(|t| t["class"].as_str().unwrap()).collect();
        eprintln!("squeezenet1.1 {photo:24} top-5 {ids:?} {names:?}");
        top5.push(ids);
    }
    // 21 kite (the bird), 22 bald eagle.
    assert!(
        [21, 22].contains(&top5[4][0]) && top5[4].contains(&21) && top5[4].contains(&22),
        "eagle photo: top-5 {:?}",
        top5[4]
    );
    assert!(
        (281..=285).contains(&top5[1][0]),
        "cat photo: {:?}",
        top5[1]
    );
    assert_eq!(
        top5[2][0], 967,
        "coffee photo (967 espresso): {:?}",
        top5[2]
    );
    // The dog photo: a dog breed (151..=268) or the dogsled it stands beside in the top-5.
    assert!(
        top5[3].iter().any(|&i| (151..=268).contains(&i)),
        "dog photo: {:?}",
        top5[3]
    );
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn mobilenetv2_has_no_classifier_and_says_so() {
    require_model("mobilenetv2");
    let smoke = dataset("smoke");
    let out = tlearn()
        .args(["predict", "--imagenet", "--model", "mobilenetv2"])
        .arg(smoke.join("skimage/coffee.png"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mobilenetv2") && err.contains("1280"),
        "unclear error: {err}"
    );
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn mobilenetv2_codes_learn_tuxpaint() {
    require_model("mobilenetv2");
    let data = dataset("tuxpaint");
    let manifest = read_json(&data.join("MANIFEST.json"));
    let work = workdir("tuxpaint");
    let cache = work.join("cache-mobilenetv2");
    let summary = extract("mobilenetv2", &data, &cache, &[]);
    assert_eq!(summary["rows"].as_u64(), manifest["total"].as_u64());
    assert_eq!(summary["dim"].as_u64(), Some(1280));
    let mut accs = Vec::new();
    for seed in 0..3u64 {
        let run = work.join(format!("run-mobilenetv2-auto-{seed}"));
        let seed = seed.to_string();
        run_ok(
            tlearn()
                .args([
                    "train",
                    "--head",
                    "auto",
                    "--seed",
                    &seed,
                    "--test-size",
                    "0.3",
                ])
                .arg(&cache)
                .arg("--out")
                .arg(&run),
        );
        run_ok(
            tlearn()
                .args(["eval", "--head"])
                .arg(run.join("head.json"))
                .arg(&cache)
                .arg("--out")
                .arg(&run),
        );
        accs.push(accuracy(&read_json(&run.join("report.json"))));
    }
    let mean = accs.iter().sum::<f64>() / accs.len() as f64;
    eprintln!(
        "tuxpaint / mobilenetv2 / auto: held-out accuracy per seed {accs:.4?}, mean {mean:.4}"
    );
    assert!(
        mean >= 0.80,
        "mean held-out accuracy {mean:.4} < 0.80 ({accs:?})"
    );
}
