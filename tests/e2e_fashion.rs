//! "Very different from ImageNet": Fashion-MNIST (28×28 grey clothes) through EfficientNet-Lite0
//! must beat a raw-pixel baseline trained the same way (same split, folds, head selection).
//! Needs `make models data` (run by `make test`).

mod common;
use common::*;

#[test]
#[ignore = "needs make models/data; run by make test"]
fn fashion_mnist_cnn_codes_beat_raw_pixels() {
    require_model("efficientnet-lite0");
    let data = dataset("fashion-mnist");
    let work = workdir("fashion");
    let mut rows = Vec::new();
    for (name, model) in [("cnn", "efficientnet-lite0"), ("pixels", "pixels")] {
        let cache = work.join(format!("cache-{name}"));
        let summary = extract(model, &data, &cache, &[]);
        assert_eq!(summary["rows"].as_u64(), Some(3000), "{summary}");
        let report = train_eval(
            &cache,
            &work.join(format!("run-{name}")),
            "logistic",
            42,
            // Codes against pixels under one fixed transform; the transform search is tested on
            // Tux Paint (e2e_tuxpaint) and would multiply this 3,000-image CV by four.
            &["--transform", "standard"],
        );
        rows.push((
            name,
            accuracy(&report),
            report["metrics"]["balanced_accuracy"].as_f64().unwrap(),
        ));
    }
    eprintln!(
        "Fashion-MNIST (3000 images, 20% held out), logistic regression selected by 5-fold CV:"
    );
    eprintln!(
        "  {:<8} {:>9} {:>18}",
        "features", "accuracy", "balanced accuracy"
    );
    for (n, a, b) in &rows {
        eprintln!("  {n:<8} {a:>9.4} {b:>18.4}");
    }
    let (cnn, pix) = (rows[0].1, rows[1].1);
    // 600 held-out images: a binomial standard error of about 1.4 points per accuracy.
    assert!(
        cnn >= pix + 0.02,
        "CNN codes ({cnn:.4}) should clearly beat raw pixels ({pix:.4})"
    );
}
