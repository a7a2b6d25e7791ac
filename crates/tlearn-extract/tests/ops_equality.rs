//! tlearn's operators (the default `Ops::All` rewrite, and the `gemm` path of CPUs without
//! AVX-512) compute the same codes as tract's own plan, at every named cut of the
//! MobileNet-style backbones they were written for, on real photos: each cut's whole spatial map
//! (`--pool flatten`), not only its average, so a wrong border, stride or channel block anywhere
//! in a plane shows; with AVX-512 bit for bit; and the default plan's channel-blocked maps
//! between tlearn's operators give every cut bit for bit what planar maps (`Ops::Planar`) give.

use std::path::{Path, PathBuf};

use tlearn_extract::augment::{self, Augment};
use tlearn_extract::backbone::{Backbone, BackboneOptions, Ops};
use tlearn_extract::registry::Registry;
use tlearn_extract::spec::Pooling;
use tlearn_extract::{decode, listing, preprocess};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Photos per backbone, spread evenly over the Tux Paint set's sorted files (so over its classes).
const PHOTOS: usize = 4;

/// How far a code (a channel's average over the map) may be from tract's, relative to the map's
/// largest value: the bound of tlearn's goal for its operators. With AVX-512 the default
/// operators give tract's maps bit for bit (their 1×1 and stem kernels sum as tract's AVX-512
/// matrix kernels do: the products from zero with fused multiply-adds in the weights' order,
/// then the bias, the skip connection and the clamp), and this test demands it. The `gemm` path
/// (CPUs without AVX-512) departs from tract's order in the 1×1 convolutions from 14×14 planes
/// on: up to 6.1e-7 measured on codes, 3.4e-6 on an element (Lite0 `head_conv`).
const CODE_BOUND: f32 = 1e-5;

/// A single element of the map, relative to its largest value; a wrong border, stride or
/// channel block differs by whole units.
const ELEMENT_BOUND: f32 = 1e-5;

fn check(name: &str) {
    let models = repo().join("models");
    let data = repo().join("data/tuxpaint");
    let reg = Registry::load(&models).unwrap();
    let entry = reg.get(name).unwrap();
    // Grid cuts (`NAME@KxK`) pool a tensor that a plain cut already shows whole.
    let cuts: Vec<String> = entry
        .cuts
        .iter()
        .map(|c| c.name.clone())
        .filter(|c| !c.contains('@'))
        .collect();
    assert!(cuts.len() >= 3, "{name}: {} named cuts", cuts.len());
    let load = |ops| {
        Backbone::load_cuts(
            entry,
            &models,
            &cuts,
            Pooling::Flatten,
            &BackboneOptions { ops },
        )
        .unwrap_or_else(|e| panic!("{name} ({ops}): {e:#}"))
    };
    let (ours, tract, planar) = (load(Ops::All), load(Ops::Tract), load(Ops::Planar));
    // The path of CPUs without AVX-512 (the 1×1 convolutions on `gemm`, the stem tract's),
    // measured here on any CPU.
    let gemm = load(Ops::Gemm);
    assert_eq!(ours.dim(), tract.dim());

    let files = listing::list_dataset(&data)
        .unwrap_or_else(|e| panic!("{}: {e:#} (run `make data`)", data.display()))
        .files;
    assert!(
        files.len() >= PHOTOS * 10,
        "{}: too few photos",
        data.display()
    );
    let step = files.len() / PHOTOS;
    let p = ours.preprocess().clone();
    // The view `extract` encodes without augmentation.
    let view = augment::views(Augment::None)[0];
    // Per side and cut: the worst element of the whole map and the worst channel average (the
    // code a pooled cut gives), each relative to the map's largest value, and the photo.
    let sides = [(Ops::All, &ours), (Ops::Gemm, &gemm)];
    let mut worst = vec![vec![(0f32, 0f32, None); cuts.len()]; sides.len()];
    for (_, file) in files.iter().step_by(step).take(PHOTOS) {
        let bytes = std::fs::read(file).unwrap();
        let img = decode::decode_rgb(&bytes, p.background).unwrap();
        let v = preprocess::view_image(&img, &p, view).unwrap();
        let x = preprocess::to_tensor(std::slice::from_ref(&v), &p).unwrap();
        let want = tract.encode(x.clone()).unwrap();
        // The channel-blocked maps between tlearn's operators move values, not sums: every
        // cut's map bit for bit as with planar maps (the cuts themselves stay planar).
        let got = ours.encode(x.clone()).unwrap();
        let unblocked = planar.encode(x.clone()).unwrap();
        assert!(
            got.iter()
                .zip(unblocked.iter())
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{name} {}: channel-blocked maps changed a cut's values",
            file.display()
        );
        for ((_, side), worst) in sides.iter().zip(&mut worst) {
            let got = side.encode(x.clone()).unwrap();
            let mut at = 0;
            for (cut, (m, c, photo)) in ours.cuts().iter().zip(worst.iter_mut()) {
                let (g, w) = (&got[at..at + cut.dim], &want[at..at + cut.dim]);
                at += cut.dim;
                let scale = w.iter().fold(1f32, |m, v| m.max(v.abs()));
                let d = g
                    .iter()
                    .zip(w)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                // Channel-major maps: each channel's plane is contiguous.
                let plane = cut.dim / cut.shape[1];
                let pooled = g
                    .chunks(plane)
                    .zip(w.chunks(plane))
                    .map(|(a, b)| {
                        let s: f64 = a.iter().zip(b).map(|(u, v)| (u - v) as f64).sum();
                        (s / plane as f64).abs() as f32
                    })
                    .fold(0f32, f32::max);
                if d / scale > *m {
                    *m = d / scale;
                    *photo = Some(file.clone());
                }
                *c = c.max(pooled / scale);
            }
        }
    }
    for ((ops, _), worst) in sides.iter().zip(&worst) {
        for (cut, (m, c, _)) in ours.cuts().iter().zip(worst) {
            println!(
                "{name} {ops:<5} {:<10} {:?}: worst relative difference, element {m:.1e}, \
                 channel average {c:.1e}",
                cut.layer, cut.shape
            );
        }
    }
    if tlearn_ops::pointwise_kernel::available() {
        for (cut, (m, c, file)) in ours.cuts().iter().zip(&worst[0]) {
            assert!(
                *m == 0.0 && *c == 0.0,
                "{name} cut {} {:?}: with AVX-512, tlearn's operators differ from tract's plan by \
                 {m:e} of the map's largest value ({}); they should give its values bit for bit",
                cut.layer,
                cut.shape,
                file.as_ref()
                    .map(|f| f.display().to_string())
                    .unwrap_or_default()
            );
        }
    }
    for ((ops, _), worst) in sides.iter().zip(&worst) {
        for (cut, (m, c, file)) in ours.cuts().iter().zip(worst) {
            assert!(
                *c <= CODE_BOUND && *m <= ELEMENT_BOUND,
                "{name} ({ops}) cut {} {:?}: tlearn's operators differ from tract's by {m:e} (an \
                 element) and {c:e} (a channel average) of the map's largest value ({})",
                cut.layer,
                cut.shape,
                file.as_ref()
                    .map(|f| f.display().to_string())
                    .unwrap_or_default()
            );
        }
    }
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn lite0_every_cut_equals_tracts_plan() {
    check("efficientnet-lite0");
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn mobilenetv2_every_cut_equals_tracts_plan() {
    check("mobilenetv2");
}
