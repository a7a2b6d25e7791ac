//! `tlearn fit` on the real Tux Paint photos with its defaults (every named cut of
//! EfficientNet-Lite0, MobileNetV2's `features`): the whole job in one command, its output short
//! enough to read, the held-out accuracy with its interval, the files of a run, and a repeated
//! run that resumes the caches instead of extracting again.

mod common;

use common::*;

#[test]
#[ignore = "needs make models/data; run by make test"]
fn fit_runs_the_whole_job_and_says_it_in_a_screenful() {
    require_model("efficientnet-lite0");
    require_model("mobilenetv2");
    let data = dataset("tuxpaint");
    let run = workdir("fit").join("tuxpaint");
    let _ = std::fs::remove_dir_all(&run);
    let o = run_ok(
        tlearn()
            .arg("fit")
            .arg(&data)
            .args(["--seed", "0", "--quiet", "--out"])
            .arg(&run),
    );
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let lines = stdout.lines().count() + stderr.lines().count();
    assert!(lines <= 40, "{lines} lines:\n{stderr}\n{stdout}");

    // Every file of a run, and both caches under the run.
    for f in [
        "head.json",
        "cv.json",
        "cv-cuts.png",
        "report.json",
        "confusion.png",
        "report.html",
    ] {
        assert!(run.join(f).is_file(), "{f} missing in {}", run.display());
    }
    let lite0 = run.join("cache/efficientnet-lite0--all");
    assert!(lite0.join("cuts.json").is_file(), "{}", lite0.display());
    assert!(run
        .join("cache/mobilenetv2--default/features.npy")
        .is_file());

    // The held-out accuracy with its count and Wilson interval, beside the CV estimate, and the
    // same figures in report.json.
    let cv = read_json(&run.join("cv.json"));
    let report = read_json(&run.join("report.json"));
    let m = &report["metrics"];
    let (n, correct) = (m["n"].as_u64().unwrap(), m["correct"].as_u64().unwrap());
    let acc = m["accuracy"].as_f64().unwrap();
    let held_out = cv["split"]["test_rows"].as_array().unwrap().len() as u64;
    assert_eq!(n, held_out, "the held-out photos of the split, each once");
    assert!((40..=46).contains(&n), "20% of 216 photos, stratified: {n}");
    assert!((acc - correct as f64 / n as f64).abs() < 1e-9);
    let (lo, hi) = (
        m["accuracy_interval"][0].as_f64().unwrap(),
        m["accuracy_interval"][1].as_f64().unwrap(),
    );
    assert!(lo < acc && acc < hi && hi - lo > 0.1, "{lo} {acc} {hi}");
    assert!(acc > 0.7, "held-out accuracy {acc}");
    let line = format!("({correct}/{n}, 95% interval {lo:.3}-{hi:.3}); CV estimate");
    assert!(stdout.contains(&line), "{line}\n{stdout}");

    // Tux Paint photos are never called different from ImageNet.
    let sim = &cv["cuts"]["scenario"]["similarity"];
    assert_ne!(sim, "different", "{}", cv["cuts"]["scenario"]);

    // Run again: the caches are complete, nothing is extracted anew, and the same seed gives
    // the same held-out figures.
    let metrics = m.clone();
    let again = run_ok(
        tlearn()
            .arg("fit")
            .arg(&data)
            .args(["--seed", "0", "--quiet", "--out"])
            .arg(&run),
    );
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(err.matches("(0 new,").count(), 2, "{err}");
    assert_eq!(read_json(&run.join("report.json"))["metrics"], metrics);
}
