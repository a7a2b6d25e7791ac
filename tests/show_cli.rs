//! `tlearn show`: the feature maps of the smoke set's cat photo at two cuts of
//! EfficientNet-Lite0, and the bad inputs (a non-image, an unknown layer, a vector layer).
//! Needs `make models data` (run by `make test`).

mod common;
use common::*;

fn show(layer: &str, out: &std::path::Path) -> String {
    let cat = dataset("smoke").join("skimage/chelsea.png");
    let o = run_ok(
        tlearn()
            .arg("show")
            .arg(&cat)
            .args(["--model", "efficientnet-lite0", "--layer", layer, "--out"])
            .arg(out),
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn show_draws_the_cats_feature_maps_and_refuses_bad_input() {
    require_model("efficientnet-lite0");
    let dir = tempfile::tempdir().unwrap();
    // stage3: 40 channels of 28x28; head_conv: 1280 channels of 7x7, 64 drawn.
    for (layer, channels, side) in [("stage3", 40usize, 28usize), ("head_conv", 64, 7)] {
        let png = dir.path().join(format!("{layer}.png"));
        let text = show(layer, &png);
        assert!(text.contains(&format!("of {side}x{side}")), "{text}");
        let img = image::open(&png).expect("a PNG").to_rgb8();
        let cols = (channels as f64).sqrt().ceil() as u32;
        let rows = (channels as u32).div_ceil(cols);
        let tile = (96 / side as u32).max(1) * side as u32;
        assert_eq!(img.height(), rows * (tile + 4) + 4, "{layer}: grid height");
        // The left square is the cat: mostly brown/grey fur, not white and not the ramp.
        let side_px = img.height() - 8;
        let fur = (0..side_px)
            .step_by(7)
            .flat_map(|y| (0..side_px).step_by(7).map(move |x| (x + 4, y + 4)))
            .filter(|&(x, y)| {
                let p = img.get_pixel(x, y).0;
                p[0] > p[2] && p != [255, 255, 255]
            })
            .count();
        let total = ((side_px as usize).div_ceil(7)).pow(2);
        assert!(
            fur * 2 > total,
            "{layer}: the input view is not the cat ({fur}/{total})"
        );
        // Every tile is a map scaled to its own range: the darkest and the brightest ends of
        // the ramp both occur in the first (strongest) tile.
        let (x0, y0) = (side_px + 8 + 4, 4);
        let first: Vec<[u8; 3]> = (0..tile)
            .flat_map(|y| (0..tile).map(move |x| (x0 + x, y0 + y)))
            .map(|(x, y)| img.get_pixel(x, y).0)
            .collect();
        assert!(
            first.contains(&[68, 1, 84]),
            "{layer}: no minimum in tile 1"
        );
        assert!(
            first.contains(&[253, 231, 37]),
            "{layer}: no maximum in tile 1"
        );
    }

    let fails = |args: &[&str], image: &std::path::Path| -> String {
        let o = tlearn()
            .arg("show")
            .arg(image)
            .args(args)
            .output()
            .expect("spawn");
        assert!(!o.status.success(), "show {args:?} should fail");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let cat = dataset("smoke").join("skimage/chelsea.png");
    let not_image = repo().join("Cargo.toml");
    let e = fails(&["--layer", "stage3"], &not_image);
    assert!(
        e.contains("Cargo.toml") && e.contains("cannot be read as an image"),
        "{e}"
    );
    let e = fails(&["--layer", "no_such_layer"], &cat);
    assert!(e.contains("unknown cut 'no_such_layer'"), "{e}");
    let e = fails(&["--layer", "features"], &cat);
    assert!(e.contains("not a spatial map"), "{e}");
    let e = fails(&["--layer", "stage3"], &dir.path().join("missing.png"));
    assert!(
        e.contains("cannot read") && e.contains("missing.png"),
        "{e}"
    );
}
