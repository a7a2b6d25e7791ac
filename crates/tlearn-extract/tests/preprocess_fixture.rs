//! Our decode + resize + crop + normalise of the real reference photos against the PIL-made
//! input tensors in `../shared/fixtures/efficientnet-lite/`, and what the difference does to the
//! logits of the real converted backbones. Needs `make models` and `make data DATASETS=smoke`.
//!
//! Measured: the geometry is exact (same resized size and crop window as the fixtures); values
//! differ by at most 1 grey level (PNG) / 2 levels (JPEG: different IDCT/upsampling than
//! libjpeg) from PIL's fixed-point bilinear resampling: max |Δ| 0.0078–0.0156, mean |Δ|
//! 0.0005–0.0018 after (v-127)/128; the logits move by at most 0.19 and top-1 never changes.

use std::path::{Path, PathBuf};

use ndarray::{Array2, Array4};
use ndarray_npy::read_npy;
use tlearn_extract::augment::{self, Augment};
use tlearn_extract::backbone::Backbone;
use tlearn_extract::registry::{models_dir, Registry};
use tlearn_extract::{decode, preprocess};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const PHOTOS: [&str; 6] = [
    "skimage/astronaut.png",
    "skimage/chelsea.png",
    "skimage/coffee.png",
    "darknet/dog.jpg",
    "darknet/eagle.jpg",
    "skimage/rocket.jpg",
];

fn check(n: u32, max_tol: f32, mean_tol: f32) {
    let fixtures = repo().join("../shared/fixtures/efficientnet-lite");
    let smoke = repo().join("data/smoke");
    assert!(
        smoke.join("MANIFEST.json").exists(),
        "run `make data DATASETS=smoke` (make test does)"
    );
    let dir = models_dir(None);
    let reg = Registry::load(&dir).unwrap();
    let entry = reg.get(&format!("efficientnet-lite{n}")).unwrap();
    assert!(
        entry.path(&dir).exists(),
        "run `make models` (make test does)"
    );
    let p = &entry.preprocess;
    let want: Array4<f32> = read_npy(fixtures.join(format!("lite{n}_input.npy"))).unwrap();
    let want_logits: Array2<f32> = read_npy(fixtures.join(format!("lite{n}_logits.npy"))).unwrap();
    let net = Backbone::load_logits(entry, &dir, &Default::default()).unwrap();
    let view = augment::views(Augment::None)[0];
    for (i, photo) in PHOTOS.iter().enumerate() {
        let bytes = std::fs::read(smoke.join(photo)).unwrap();
        let img = decode::decode_rgb(&bytes, p.background).unwrap();
        let v = preprocess::view_image(&img, p, view).unwrap();
        let t = preprocess::to_tensor(&[v], p).unwrap();
        let got = t.to_plain_array_view::<f32>().unwrap();
        let w = want.index_axis(ndarray::Axis(0), i);
        let diffs: Vec<f32> = got
            .iter()
            .zip(w.iter())
            .map(|(a, b)| (a - b).abs())
            .collect();
        let max = diffs.iter().cloned().fold(0f32, f32::max);
        let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
        let logits = net.encode(t).unwrap();
        let wl = want_logits.row(i);
        let lmax = logits
            .iter()
            .zip(wl.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let argmax = |x: &mut dyn Iterator<Item = f32>| {
            x.enumerate()
                .fold((0, f32::MIN), |b, (j, v)| if v > b.1 { (j, v) } else { b })
                .0
        };
        let top_got = argmax(&mut logits.iter().cloned());
        let top_want = argmax(&mut wl.iter().cloned());
        eprintln!(
            "lite{n} {photo}: input max|Δ| {max:.5} mean|Δ| {mean:.6}; logits max|Δ| {lmax:.4}; top-1 {top_got} vs {top_want}"
        );
        assert!(max <= max_tol, "{photo}: max |Δ| {max}");
        assert!(mean <= mean_tol, "{photo}: mean |Δ| {mean}");
        assert_eq!(top_got, top_want, "{photo}: top-1 class changed");
        assert!(lmax < 0.3, "{photo}: logits moved by {lmax}");
    }
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn lite0_input_matches_pil_reference() {
    check(0, 2.0 / 128.0 + 1e-6, 0.0025);
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn lite1_and_lite2_inputs_match_pil_reference() {
    check(1, 2.0 / 128.0 + 1e-6, 0.0025);
    check(2, 2.0 / 128.0 + 1e-6, 0.0025);
}
