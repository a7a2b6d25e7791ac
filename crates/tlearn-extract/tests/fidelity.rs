//! The converted EfficientNet-Lite ONNX files, run in tract, compute the same function as the
//! original PyTorch implementation: reference logits in ../shared/fixtures/efficientnet-lite.

use std::path::{Path, PathBuf};

use ndarray::{Array2, Array4};
use ndarray_npy::read_npy;
use tlearn_extract::backbone::Backbone;
use tlearn_extract::imagenet::top_k;
use tlearn_extract::registry::Registry;
use tlearn_extract::spec::Pooling;
use tract_onnx::prelude::Tensor;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixtures() -> PathBuf {
    repo().join("../shared/fixtures/efficientnet-lite")
}

fn top5(row: &[f32]) -> Vec<usize> {
    top_k(row, 5).into_iter().map(|(i, _)| i).collect()
}

fn check(n: u32) {
    let models = repo().join("models");
    let reg = Registry::load(&models).unwrap();
    let entry = reg.get(&format!("efficientnet-lite{n}")).unwrap();
    let x: Array4<f32> = read_npy(fixtures().join(format!("lite{n}_input.npy"))).unwrap();
    let want: Array2<f32> = read_npy(fixtures().join(format!("lite{n}_logits.npy"))).unwrap();
    let bb = Backbone::load(entry, &models, Some("logits"), Pooling::Avg).unwrap();
    assert_eq!(bb.dim(), 1000);
    let feats = Backbone::load(entry, &models, None, Pooling::Avg).unwrap();
    assert_eq!(feats.dim(), 1280);
    let (rows, c, h, w) = x.dim();
    assert_eq!(
        (c, h, w),
        (
            3,
            bb.preprocess().crop as usize,
            bb.preprocess().crop as usize
        )
    );
    let batch = Tensor::from_shape(&[rows, c, h, w], x.as_slice().unwrap()).unwrap();
    let got = bb.encode_batch(batch).unwrap();
    let mut worst = 0f32;
    for (i, g) in got.iter().enumerate() {
        let r = want.row(i).to_vec();
        let d = g
            .iter()
            .zip(&r)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        worst = worst.max(d);
        println!(
            "lite{n} row {i}: max|diff| {d:.2e} top-1 {} (ref {}) top-5 {:?}",
            top5(g)[0],
            top5(&r)[0],
            top5(g)
        );
        assert_eq!(top5(g), top5(&r), "lite{n} row {i}: top-5 differs");
    }
    println!("lite{n}: worst |logit diff| = {worst:.3e}");
    assert!(worst < 1e-3, "lite{n}: worst |logit diff| {worst} >= 1e-3");
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn lite0_matches_reference() {
    check(0);
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn lite1_matches_reference() {
    check(1);
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn lite2_matches_reference() {
    check(2);
}

/// Time to read + verify + parse + cut + optimise + plan each offline backbone (run in release).
#[test]
#[ignore = "needs make models/data; run by make test"]
fn load_times() {
    let models = repo().join("models");
    let reg = Registry::load(&models).unwrap();
    for n in 0..3 {
        let entry = reg.get(&format!("efficientnet-lite{n}")).unwrap();
        for layer in ["features", "logits", "stage4"] {
            let t = std::time::Instant::now();
            let bb = Backbone::load(entry, &models, Some(layer), Pooling::Avg).unwrap();
            let s = bb.input_shape().to_vec();
            let x = Tensor::from_shape(&s, &vec![0.1f32; s.iter().product()]).unwrap();
            let t1 = std::time::Instant::now();
            let v = bb.encode(x).unwrap();
            println!(
                "efficientnet-lite{n} {layer:9} load+optimise {:.3}s, first encode {:.3}s, dim {}",
                t.elapsed().as_secs_f64() - t1.elapsed().as_secs_f64(),
                t1.elapsed().as_secs_f64(),
                v.len()
            );
            assert_eq!(v.len(), bb.dim());
        }
    }
}

/// Every registry cut of the offline backbones resolves, and `list_layers` marks it with the
/// registered feature dimension.
#[test]
#[ignore = "needs make models/data; run by make test"]
fn registry_cuts_resolve_with_their_dims() {
    let models = repo().join("models");
    let reg = Registry::load(&models).unwrap();
    for n in 0..3 {
        let entry = reg.get(&format!("efficientnet-lite{n}")).unwrap();
        let layers = tlearn_extract::backbone::list_layers(entry, &models).unwrap();
        for cut in &entry.cuts {
            let row = layers
                .iter()
                .find(|l| l.cuts.contains(&cut.name))
                .unwrap_or_else(|| panic!("lite{n}: cut {} not marked", cut.name));
            let shape = row.shape.clone().expect("shape inferred");
            // A grid cut `NAME@KxK` has K·K values per channel.
            let cells = match tlearn_extract::grid::split_grid(&cut.name).unwrap().1 {
                Some(k) => k * k,
                None => 1,
            };
            assert_eq!(shape[1] * cells, cut.dim, "lite{n} {}: {shape:?}", cut.name);
            println!(
                "lite{n} {:9} {:10} {:5} {shape:?}",
                cut.name, row.name, row.op
            );
            let bb = Backbone::load(entry, &models, Some(&cut.name), Pooling::Max).unwrap();
            assert_eq!(bb.dim(), cut.dim);
        }
    }
}
