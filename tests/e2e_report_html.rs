//! `report.html` in a real browser: Tux Paint photos → EfficientNet-Lite0 codes → a logistic
//! head → `tlearn eval`, then Debian's headless Chromium opens the page, takes a screenshot
//! (kept as `runs/report-html/tuxpaint-report.png` for a person to look at) and dumps the DOM
//! after load, where the page's own script has counted the images that decoded.
//! Needs `make models data` and `chromium` (all installed by `make test`).

mod common;
use common::*;

use std::path::Path;
use std::process::Command;

fn chromium(profile: &Path) -> Command {
    let exe = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let found = Command::new(&exe).arg("--version").output();
    assert!(
        found.as_ref().is_ok_and(|o| o.status.success()),
        "{exe} is not installed: `apt-get install chromium` (make test does); {found:?}"
    );
    let mut c = Command::new("timeout");
    c.args(["180", &exe])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()));
    c
}

fn attr(dom: &str, name: &str) -> usize {
    let key = format!("{name}=\"");
    let at = dom
        .find(&key)
        .unwrap_or_else(|| panic!("the page's script did not set {name}"));
    dom[at + key.len()..]
        .split('"')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} is not a number"))
}

#[test]
#[ignore = "needs make models/data and chromium; run by make test"]
fn report_html_renders_in_chromium_with_every_image() {
    require_model("efficientnet-lite0");
    let data = dataset("tuxpaint");
    let work = workdir("tuxpaint");
    let cache = work.join("cache-lite0");
    extract("efficientnet-lite0", &data, &cache, &[]);
    let run = work.join("report-html");
    let report = train_eval(&cache, &run, "logistic", 1, &[]);
    let wrong = report["misclassified"]
        .as_array()
        .expect("misclassified")
        .len();
    assert!(
        wrong > 0,
        "the test needs some misclassified photos to show"
    );

    let page = run.join("report.html");
    let html = std::fs::read_to_string(&page).expect("eval wrote report.html");
    // Self-contained: every image is a data: URI, nothing is fetched.
    let srcs: Vec<&str> = html.split("src=\"").skip(1).collect();
    assert_eq!(
        srcs.len(),
        3 + wrong,
        "confusion, CV curve, map + one thumbnail per error"
    );
    assert!(srcs.iter().all(|s| s.starts_with("data:image/")));
    assert!(!html.contains("http://") && !html.contains("https://"));
    for m in report["misclassified"].as_array().unwrap() {
        assert!(html.contains(m["path"].as_str().unwrap()), "{m}");
    }

    let keep = repo().join("runs/report-html");
    std::fs::create_dir_all(&keep).unwrap();
    std::fs::copy(&page, keep.join("tuxpaint-report.html")).unwrap();
    let shot = keep.join("tuxpaint-report.png");
    let _ = std::fs::remove_file(&shot);
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    run_ok(
        chromium(profile.path())
            .arg(format!("--screenshot={}", shot.display()))
            .arg("--window-size=1280,3600")
            .arg(&url),
    );
    let img = image::open(&shot)
        .unwrap_or_else(|e| panic!("no screenshot at {}: {e}", shot.display()))
        .to_rgb8();
    assert_eq!((img.width(), img.height()), (1280, 3600));
    let px: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    let non_white = px.iter().filter(|p| **p != [255, 255, 255]).count();
    let mut colours: Vec<[u8; 3]> = px.clone();
    colours.sort_unstable();
    colours.dedup();
    eprintln!(
        "screenshot {}: {:.1}% non-white pixels, {} colours",
        shot.display(),
        100.0 * non_white as f64 / px.len() as f64,
        colours.len()
    );
    // Text, tables, plots and photo thumbnails: far from a blank or single-colour page.
    assert!(non_white * 10 > px.len(), "the page looks blank");
    assert!(
        colours.len() > 2000,
        "only {} colours: no photos?",
        colours.len()
    );

    let profile = tempfile::tempdir().unwrap();
    let out = run_ok(chromium(profile.path()).arg("--dump-dom").arg(&url));
    let dom = String::from_utf8_lossy(&out.stdout);
    let total = attr(&dom, "data-images-total");
    let loaded = attr(&dom, "data-images-loaded");
    assert_eq!(total, 3 + wrong);
    assert_eq!(loaded, total, "broken images in the page");
}
