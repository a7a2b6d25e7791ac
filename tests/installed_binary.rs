//! A binary away from its checkout: copied into an empty directory and run from there, it finds
//! no build path; it finds the models through TLEARN_MODELS or the user cache directory, knows
//! the registry without the checkout, and otherwise names every place it looked.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn copied_binary(dir: &Path) -> Command {
    let bin = dir.join("tlearn");
    std::fs::copy(env!("CARGO_BIN_EXE_tlearn"), &bin).unwrap();
    let mut c = Command::new(bin);
    c.current_dir(dir)
        .env_remove("TLEARN_MODELS")
        .env_remove("XDG_CACHE_HOME")
        .env("HOME", dir.join("home"));
    c
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn a_copied_binary_finds_its_models_at_run_time_and_says_where_it_looked() {
    require_model("efficientnet-lite0");
    require_model("mobilenetv2");
    let photos = dataset("smoke");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let photo = photos.join("skimage").join(
        std::fs::read_dir(photos.join("skimage"))
            .unwrap()
            .flatten()
            .next()
            .unwrap()
            .file_name(),
    );

    // No models anywhere: a clear error naming each place searched.
    let o = copied_binary(dir)
        .args(["extract", "--model", "mobilenetv2", "--out"])
        .arg(dir.join("c"))
        .arg(&photos)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    for said in [
        "$TLEARN_MODELS (not set)",
        "every directory above it",
        "home/.cache/tlearn/models (the user cache directory)",
        "make models MODELS=mobilenetv2",
    ] {
        assert!(err.contains(said), "{said:?} not in: {err}");
    }
    assert!(!err.contains(repo().to_str().unwrap()), "{err}");

    // TLEARN_MODELS: the full ImageNet model classifies a photo given from another directory.
    let o = run_ok(
        copied_binary(dir)
            .env("TLEARN_MODELS", repo().join("models"))
            .args(["predict", "--imagenet", "--model", "efficientnet-lite0"])
            .arg(&photo),
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains('%'));

    // The user cache directory: `tlearn models` lists the registry (built in) and what is there.
    let cache = dir.join("home/.cache/tlearn/models");
    std::fs::create_dir_all(&cache).unwrap();
    for f in ["mobilenetv2.onnx", "manifest.json"] {
        std::fs::copy(repo().join("models").join(f), cache.join(f)).unwrap();
    }
    let o = run_ok(copied_binary(dir).arg("models"));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!("models directory: {}", cache.display())),
        "{out}"
    );
    let line = |name: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} not listed: {out}"))
            .to_string()
    };
    assert!(line("mobilenetv2").contains(" yes "), "{out}");
    assert!(line("efficientnet-lite0").contains(" no "), "{out}");
    assert!(line("resnet152").contains("non-commercial"), "{out}");
    let o = run_ok(
        copied_binary(dir)
            .args(["extract", "-q", "--model", "mobilenetv2", "--out"])
            .arg(dir.join("c"))
            .arg(&photos),
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("13 rows × 1280 dims"));
}
