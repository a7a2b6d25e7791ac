//! The converted offline backbones (SqueezeNet 1.1, MobileNetV2, and the classics Xception,
//! Inception-v3, ResNet-152), run in tract, compute the same function as an independent float64
//! numpy forward pass of the packaged weights (`models/reference.py`, straight from the pickle,
//! .pt or Keras archive, not from the ONNX) on real photos, at every registry cut.
//! Needs `make models data` and the venv (run by `make test`).

use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::{Array2, Array4};
use ndarray_npy::read_npy;
use tlearn_extract::backbone::Backbone;
use tlearn_extract::registry::Registry;
use tlearn_extract::spec::Pooling;
use tract_onnx::prelude::Tensor;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the numpy reference on `photos` (relative to data/smoke); returns its output folder.
fn numpy_reference(model: &str, photos: &[&str]) -> tempfile::TempDir {
    let repo = repo();
    let python = repo.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make venv` (make test does)",
        python.display()
    );
    let smoke = repo.join("data/smoke");
    assert!(
        smoke.join("MANIFEST.json").exists(),
        "{} is missing: run `make data DATASETS=smoke` (make test does)",
        smoke.display()
    );
    let out = tempfile::tempdir().unwrap();
    let res = Command::new(&python)
        .arg(repo.join("models/reference.py"))
        .arg(model)
        .arg(out.path())
        .args(photos.iter().map(|p| smoke.join(p)))
        .output()
        .expect("run models/reference.py");
    assert!(
        res.status.success(),
        "models/reference.py {model} failed:\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
    out
}

/// Every registry cut, average-pooled by tract, within 1e-4 of the reference's largest
/// magnitude; returns the worst absolute difference over the cuts.
fn check(model: &str, photos: &[&str]) -> f64 {
    let models = repo().join("models");
    let reg = Registry::load(&models).unwrap();
    let entry = reg.get(model).unwrap();
    let refdir = numpy_reference(model, photos);
    let x: Array4<f32> = read_npy(refdir.path().join("input.npy")).unwrap();
    let (n, c, h, w) = x.dim();
    assert_eq!(n, photos.len());
    let crop = entry.preprocess.crop as usize;
    assert_eq!((c, h, w), (3, crop, crop));
    let mut worst = 0f64;
    for cut in &entry.cuts {
        let want: Array2<f64> = read_npy(refdir.path().join(format!("{}.npy", cut.name))).unwrap();
        assert_eq!(
            want.dim(),
            (n, cut.dim),
            "{model} {}: reference shape",
            cut.name
        );
        let bb = Backbone::load(entry, &models, Some(&cut.name), Pooling::Avg).unwrap();
        assert_eq!(bb.dim(), cut.dim, "{model} {}: dim", cut.name);
        let batch = Tensor::from_shape(&[n, c, h, w], x.as_slice().unwrap()).unwrap();
        let got = bb.encode_batch(batch).unwrap();
        assert_eq!(got.len(), n);
        let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
        let diff = got
            .iter()
            .zip(want.rows())
            .flat_map(|(g, r)| g.iter().zip(r).map(|(a, b)| (*a as f64 - b).abs()))
            .fold(0f64, f64::max);
        println!(
            "{model} {:20} {:?} dim {:4}: max|tract - numpy| {diff:.2e} (max|ref| {scale:.3}, relative {:.1e})",
            cut.name,
            bb.output_shape(),
            cut.dim,
            diff / scale
        );
        assert!(scale > 0.0, "{model} {}: reference is all zeros", cut.name);
        assert!(
            diff <= 1e-4 * scale,
            "{model} {}: max|tract - numpy| {diff:.3e} > 1e-4 x {scale:.3}",
            cut.name
        );
        worst = worst.max(diff);
    }
    worst
}

#[test]
#[ignore = "needs make models/data and the venv; run by make test"]
fn squeezenet_tract_matches_numpy_reference_at_every_cut() {
    let worst = check(
        "squeezenet1.1",
        &[
            "darknet/eagle.jpg",
            "skimage/chelsea.png",
            "skimage/rocket.jpg",
        ],
    );
    println!("squeezenet1.1: worst max|diff| over the cuts {worst:.3e}");
}

#[test]
#[ignore = "needs make models/data and the venv; run by make test"]
fn mobilenetv2_tract_matches_numpy_reference_at_every_cut() {
    let worst = check(
        "mobilenetv2",
        &[
            "skimage/motorcycle_left.png",
            "darknet/dog.jpg",
            "skimage/coffee.png",
        ],
    );
    println!("mobilenetv2: worst max|diff| over the cuts {worst:.3e}");
}

#[test]
#[ignore = "needs make models/data and the venv; run by make test"]
fn xception_tract_matches_the_keras_config_graph_at_every_cut() {
    let worst = check(
        "xception",
        &["darknet/dog.jpg", "skimage/coffee.png", "darknet/eagle.jpg"],
    );
    println!("xception: worst max|diff| over the cuts {worst:.3e}");
}

#[test]
#[ignore = "needs make models/data and the venv; run by make test"]
fn inception_v3_tract_matches_numpy_reference_at_every_cut() {
    let worst = check(
        "inception-v3",
        &[
            "darknet/dog.jpg",
            "skimage/chelsea.png",
            "darknet/eagle.jpg",
        ],
    );
    println!("inception-v3: worst max|diff| over the cuts {worst:.3e}");
}

#[test]
#[ignore = "needs make models/data and the venv; run by make test"]
fn resnet152_tract_matches_numpy_reference_at_every_cut() {
    let worst = check(
        "resnet152",
        &[
            "darknet/dog.jpg",
            "skimage/coffee.png",
            "skimage/rocket.jpg",
        ],
    );
    println!("resnet152: worst max|diff| over the cuts {worst:.3e}");
}
