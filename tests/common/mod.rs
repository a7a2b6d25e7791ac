//! Shared helpers for the end-to-end tests: they drive the real `tlearn` binary on the real
//! models and data sets that `make models` and `make data` materialise (see the Makefile's
//! `test` target). Those tests are `#[ignore]`d in a plain `cargo test`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use image::{Rgb, RgbImage};

/// A small synthetic RGB picture, different for each `seed` (test data sets made on the fly).
pub fn picture(w: u32, h: u32, seed: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            (x * 255 / w) as u8,
            (y * 255 / h) as u8,
            ((x * 7 + y * 13 + seed * 31) % 256) as u8,
        ])
    })
}

/// `summary.json`'s skipped files as (path, reason), in its order.
pub fn skipped_reasons(summary: &serde_json::Value) -> Vec<(String, String)> {
    summary["skipped"]
        .as_array()
        .expect("summary.json has skipped")
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_owned(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn tlearn() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tlearn"));
    c.current_dir(repo());
    c
}

/// A data set made by `make data`, or a clear failure saying how to make it.
pub fn dataset(name: &str) -> PathBuf {
    let p = repo().join("data").join(name);
    assert!(
        p.join("MANIFEST.json").exists(),
        "{} is missing: run `make data DATASETS={name}` (make test does)",
        p.display()
    );
    p
}

/// Fails clearly unless `make models` has produced the backbone.
pub fn require_model(name: &str) {
    let p = repo().join("models").join(format!("{name}.onnx"));
    assert!(
        p.exists(),
        "{} is missing: run `make models MODELS={name}` (make test does)",
        p.display()
    );
}

/// Runs a command, failing the test with its stdout/stderr if it does not succeed.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn tlearn");
    assert!(
        out.status.success(),
        "command failed ({}): {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `out` of a `tlearn` run that must have succeeded; otherwise fail showing its stdout and
/// stderr.
pub fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "tlearn failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON in {}: {e}", path.display()))
}

/// A work directory under `target/e2e/NAME` that survives between test binaries, so the
/// (incremental) feature caches are extracted once per `make test`.
pub fn workdir(name: &str) -> PathBuf {
    let p = repo().join("target").join("e2e").join(name);
    std::fs::create_dir_all(&p).expect("create e2e work dir");
    p
}

/// `tlearn extract` of a data set into `cache` (incremental: quick when it is up to date).
///
/// Once per cache and test binary: the tests of one binary run side by side, and an `extract`
/// holds the cache's lock even when it finds nothing to do, so a second test's `extract` of a
/// shared cache would make a first test's `train` on it refuse the cache as being written. The
/// first caller extracts (the others wait for it); later callers get its summary.
pub fn extract(model: &str, data: &Path, cache: &Path, extra: &[&str]) -> serde_json::Value {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    type Slot = (String, Arc<OnceLock<serde_json::Value>>);
    static DONE: OnceLock<Mutex<HashMap<PathBuf, Slot>>> = OnceLock::new();
    let call = format!("--model {model} {extra:?} {}", data.display());
    let slot = {
        let mut done = DONE
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (first, slot) = done
            .entry(cache.to_path_buf())
            .or_insert_with(|| (call.clone(), Default::default()));
        assert_eq!(
            *first,
            call,
            "{} is extracted twice in one test binary with different arguments",
            cache.display()
        );
        slot.clone()
    };
    slot.get_or_init(|| extract_now(model, data, cache, extra))
        .clone()
}

fn extract_now(model: &str, data: &Path, cache: &Path, extra: &[&str]) -> serde_json::Value {
    let mut cmd = tlearn();
    cmd.args(["extract", "--quiet", "--model", model])
        .args(extra)
        .arg(data)
        .arg("--out")
        .arg(cache);
    let out = cmd.output().expect("spawn tlearn");
    assert!(
        out.status.success(),
        "command failed ({}): {:?}\n--- stdout\n{}\n--- stderr\n{}\n--- {} holds\n{}",
        out.status,
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        cache.display(),
        dir_listing(cache)
    );
    read_json(&cache.join("summary.json"))
}

/// `name size` of each file in `dir`, one a line: how far a failed run got (the journal grows
/// by one record per finished image).
fn dir_listing(dir: &Path) -> String {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return "(nothing: the folder does not exist)".into();
    };
    let mut lines: Vec<String> = entries
        .flatten()
        .map(|e| {
            let len = e.metadata().map_or(0, |m| m.len());
            format!("{} {len}", e.file_name().to_string_lossy())
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

/// `tlearn train` + `tlearn eval` of one head on a cache; returns the eval report.
pub fn train_eval(
    cache: &Path,
    run: &Path,
    head: &str,
    seed: u64,
    extra: &[&str],
) -> serde_json::Value {
    train_eval_at(cache, run, head, seed, 0.2, extra)
}

/// [`train_eval`] holding out `test_size` of each class.
pub fn train_eval_at(
    cache: &Path,
    run: &Path,
    head: &str,
    seed: u64,
    test_size: f64,
    extra: &[&str],
) -> serde_json::Value {
    let seed = seed.to_string();
    let test_size = test_size.to_string();
    run_ok(
        tlearn()
            .args([
                "train",
                "--head",
                head,
                "--seed",
                &seed,
                "--test-size",
                &test_size,
                "--folds",
                "5",
            ])
            .args(extra)
            .arg(cache)
            .arg("--out")
            .arg(run),
    );
    run_ok(
        tlearn()
            .args(["eval", "--head"])
            .arg(run.join("head.json"))
            .arg(cache)
            .arg("--out")
            .arg(run),
    );
    assert!(
        run.join("confusion.png").exists(),
        "eval wrote no confusion.png"
    );
    read_json(&run.join("report.json"))
}

pub fn accuracy(report: &serde_json::Value) -> f64 {
    report["metrics"]["accuracy"]
        .as_f64()
        .unwrap_or_else(|| panic!("report has no metrics.accuracy: {report}"))
}
