//! `tlearn predict --imagenet` on the fixture photos with each offline backbone: the full model
//! recognises the cat and the espresso. Needs `make models data` (run by `make test`).

mod common;
use common::*;

#[test]
#[ignore = "needs make models/data; run by make test"]
fn imagenet_top1_on_real_photos_for_every_lite_backbone() {
    let smoke = dataset("smoke");
    let photos = [
        smoke.join("skimage/astronaut.png"),
        smoke.join("skimage/chelsea.png"),
        smoke.join("skimage/coffee.png"),
        smoke.join("darknet/dog.jpg"),
        smoke.join("darknet/eagle.jpg"),
        smoke.join("skimage/rocket.jpg"),
    ];
    for model in [
        "efficientnet-lite0",
        "efficientnet-lite1",
        "efficientnet-lite2",
    ] {
        require_model(model);
        let mut cmd = tlearn();
        cmd.args(["predict", "--imagenet", "--json", "--model", model])
            .args(&photos);
        let out = run_ok(&mut cmd);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let preds = v["predictions"].as_array().unwrap();
        assert_eq!(preds.len(), 6);
        let top1: Vec<u64> = preds.iter().map(|p| p["index"].as_u64().unwrap()).collect();
        eprintln!("{model}: top-1 {top1:?}");
        for p in preds {
            let top = p["top"].as_array().unwrap();
            assert_eq!(top.len(), 5);
            assert!(!p["class"].as_str().unwrap().is_empty());
        }
        assert!(
            (281..=285).contains(&top1[1]),
            "{model}: cat photo top-1 {}",
            top1[1]
        );
        assert_eq!(
            preds[1]["class"]
                .as_str()
                .map(|s| s.contains("cat") || s == "tabby"),
            Some(true)
        );
        assert_eq!(top1[2], 967, "{model}: coffee photo top-1");
        assert_eq!(preds[2]["class"].as_str(), Some("espresso"));
    }
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn predict_skips_a_bad_image_names_it_and_still_classifies_the_rest() {
    require_model("efficientnet-lite0");
    let smoke = dataset("smoke");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff\xe0 this is not a jpeg").unwrap();
    let out = tlearn()
        .args(["predict", "--imagenet", "--json"])
        .arg(smoke.join("skimage/coffee.png"))
        .arg(&bad)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a failed image makes the exit status non-zero"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["predictions"].as_array().unwrap().len(), 1);
    assert_eq!(v["predictions"][0]["index"].as_u64(), Some(967));
    let err = v["errors"][0]["error"].as_str().unwrap();
    assert!(err.contains("broken.jpg"), "{err}");
}
