//! `tlearn extract` end to end: bad inputs, incremental re-runs, resume after a killed run,
//! refusal to mix extractors (fast, with the raw-pixels pseudo-backbone on generated photos),
//! and the real EfficientNet-Lite0 on the smoke photos (ignored: needs `make models data`).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{ok, read_json, repo, run_ok, skipped_reasons, tlearn};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

/// A photo-like test image: smooth gradients plus a per-seed pattern.
fn picture(w: u32, h: u32, seed: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let s = seed.wrapping_mul(2654435761);
        Rgb([
            ((x * 255 / w.max(1)) ^ (s & 0x3f)) as u8,
            ((y * 255 / h.max(1)) + (s >> 8) % 97) as u8,
            (((x + y + seed * 7) * 13) % 256) as u8,
        ])
    })
}

fn save(img: &RgbImage, path: &Path, fmt: ImageFormat) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    DynamicImage::ImageRgb8(img.clone())
        .save_with_format(path, fmt)
        .unwrap();
}

fn extract(data: &Path, out: &Path, model: &str, extra: &[&str]) -> Output {
    tlearn()
        .args(["extract", "--model", model])
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(extra)
        .env("CI", "1")
        .output()
        .expect("spawn tlearn")
}

fn index_rows(cache: &Path) -> Vec<String> {
    fs::read_to_string(cache.join("index.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

/// PNG bytes whose header claims `w`×`h` (valid chunk CRCs, no pixel data to speak of).
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(
        &mut png,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut png, b"IEND", &[]);
    png
}

fn is_root() -> bool {
    // An unreadable file is still readable by root: probe.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("probe");
    fs::write(&p, b"x").unwrap();
    set_mode(&p, 0o000);
    fs::read(&p).is_ok()
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn bad_inputs_are_skipped_with_reasons_and_the_run_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    save(
        &picture(64, 48, 1),
        &data.join("good/a.png"),
        ImageFormat::Png,
    );
    save(
        &picture(50, 70, 2),
        &data.join("good/b.jpg"),
        ImageFormat::Jpeg,
    );
    // Smaller than the 16×16 crop: upscaled, not rejected.
    save(
        &picture(5, 3, 3),
        &data.join("good/tiny.png"),
        ImageFormat::Png,
    );
    fs::write(data.join("good/.DS_Store"), b"hidden junk").unwrap();
    let bad = data.join("bad");
    fs::create_dir_all(&bad).unwrap();
    fs::write(bad.join("zero.jpg"), b"").unwrap();
    fs::write(bad.join("notes.jpg"), b"this is a text file, not a jpeg\n").unwrap();
    let mut corrupt = vec![0xff, 0xd8, 0xff, 0xe0];
    corrupt.extend((0..4000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
    fs::write(bad.join("corrupt.jpg"), corrupt).unwrap();
    let mut png = std::io::Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(picture(200, 150, 4))
        .write_to(&mut png, ImageFormat::Png)
        .unwrap();
    let png = png.into_inner();
    fs::write(bad.join("truncated.png"), &png[..png.len() / 3]).unwrap();
    fs::write(bad.join("bomb.png"), png_header_only(100_000, 100_000)).unwrap();
    std::os::unix::fs::symlink(&data, bad.join("loop")).unwrap();
    std::os::unix::fs::symlink(bad.join("gone.png"), bad.join("dangling.png")).unwrap();
    let locked = bad.join("locked.png");
    fs::write(&locked, &png).unwrap();
    set_mode(&locked, 0o000);
    let root = is_root();
    fs::create_dir_all(data.join("empty_class")).unwrap();
    fs::write(data.join("README.txt"), b"notes about the data set").unwrap();
    fs::write(data.join("stray.jpg"), b"stray file at the top").unwrap();

    let cache = tmp.path().join("cache");
    let out = ok(extract(&data, &cache, "pixels16", &["--threads", "2"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let s = read_json(&cache.join("summary.json"));
    let reasons: std::collections::BTreeMap<String, String> =
        skipped_reasons(&s).into_iter().collect();
    let reason = |p: &str| {
        reasons
            .get(p)
            .unwrap_or_else(|| panic!("{p} not skipped; skipped: {reasons:#?}"))
            .clone()
    };
    assert!(reason("bad/zero.jpg").contains("empty file"));
    assert!(reason("bad/notes.jpg").contains("not an image"));
    assert!(reason("bad/corrupt.jpg").contains("corrupt"));
    assert!(reason("bad/truncated.png").contains("corrupt or truncated"));
    assert!(
        reason("bad/bomb.png").contains("too large"),
        "{}",
        reason("bad/bomb.png")
    );
    assert!(reason("bad/loop").contains("symlink loop"));
    assert!(reason("bad/dangling.png").contains("broken symlink"));
    assert!(reason("stray.jpg").contains("not inside a class folder"));
    // Data-set notes at the top (README, MANIFEST.json, ...) are not images: no skip report.
    assert!(!reasons.contains_key("README.txt"));
    if root {
        // Root reads a chmod-000 file: it is a normal image then (the dangling symlink above
        // is the unreadable case that applies to root too).
        assert!(!reasons.contains_key("bad/locked.png"));
    } else {
        assert!(reason("bad/locked.png").contains("unreadable"));
    }
    assert_eq!(s["empty_classes"], serde_json::json!(["empty_class"]));
    assert!(
        stderr.contains("class folder 'empty_class' has no images"),
        "{stderr}"
    );
    // The good images (incl. the tiny one) are in the cache, sorted, with hashes.
    let rows = index_rows(&cache);
    let good: Vec<&str> = rows
        .iter()
        .filter(|r| r.starts_with("good/"))
        .map(|r| r.as_str())
        .collect();
    assert_eq!(good.len(), 3, "{rows:?}");
    assert!(good[0].starts_with("good/a.png,good,") && good[2].starts_with("good/tiny.png,good,"));
    let meta = read_json(&cache.join("meta.json"));
    assert_eq!(meta["dim"], 256);
    assert_eq!(meta["rows"].as_u64().unwrap() as usize, rows.len());
    let skipped_csv = fs::read_to_string(cache.join("skipped.csv")).unwrap();
    assert!(skipped_csv.starts_with("path,reason\n") && skipped_csv.contains("bad/bomb.png,"));
    assert!(!cache.join("journal.bin").exists());
}

/// Dataset of `n` generated photos over 3 classes.
fn photo_set(dir: &Path, n: u32) {
    for i in 0..n {
        let class = ["cat", "dog", "owl"][(i % 3) as usize];
        save(
            &picture(40 + i % 7, 30 + i % 5, i),
            &dir.join(class).join(format!("img{i:03}.png")),
            ImageFormat::Png,
        );
    }
}

#[test]
fn killed_run_resumes_and_matches_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    photo_set(&data, 40);
    let full = tmp.path().join("full");
    ok(extract(&data, &full, "pixels8", &["--augment", "flip"]));

    // An earlier cache over part of the data, then a run killed after 15 new images.
    let part = tmp.path().join("part");
    photo_set(&part, 10);
    let cache = tmp.path().join("cache");
    ok(extract(&part, &cache, "pixels8", &["--augment", "flip"]));
    let before = fs::read(cache.join("features.npy")).unwrap();
    let killed = tlearn()
        .args([
            "extract",
            "--model",
            "pixels8",
            "--augment",
            "flip",
            "--chunk",
            "4",
        ])
        .arg(&data)
        .arg("--out")
        .arg(&cache)
        .env("CI", "1")
        .env("TLEARN_ABORT_AFTER", "15")
        .output()
        .unwrap();
    assert!(
        !killed.status.success(),
        "the abort hook should kill the run"
    );
    // The previous cache is intact; the journal holds the work done so far.
    assert_eq!(fs::read(cache.join("features.npy")).unwrap(), before);
    assert!(cache.join("journal.bin").exists());

    ok(extract(&data, &cache, "pixels8", &["--augment", "flip"]));
    let s = read_json(&cache.join("summary.json"));
    assert_eq!(s["reused"], 10, "{s}");
    assert_eq!(s["resumed"], 15, "{s}");
    assert_eq!(s["extracted"], 15, "{s}");
    assert_eq!(index_rows(&cache), index_rows(&full));
    assert_eq!(
        fs::read(cache.join("features.npy")).unwrap(),
        fs::read(full.join("features.npy")).unwrap()
    );
    assert!(!cache.join("journal.bin").exists());
}

/// A run killed by a fault or by the CPU-time limit says which on stderr before it dies (a CI
/// run once ended with empty stdout and stderr), and still dies of that signal. The run is held
/// waiting on the cache lock, taken here, so that the signal reaches it mid-run.
#[test]
fn a_fatal_signal_is_named_on_stderr_and_keeps_its_exit_status() {
    use std::io::{BufRead, BufReader, Read};
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    photo_set(&data, 6);
    for (sig, name) in [(libc::SIGSEGV, "SIGSEGV"), (libc::SIGXCPU, "SIGXCPU")] {
        let cache = tmp.path().join(format!("cache-{name}"));
        fs::create_dir_all(&cache).unwrap();
        let lock = fs::File::create(cache.join(".lock")).unwrap();
        lock.lock().unwrap();
        let mut child = tlearn()
            .args(["extract", "--quiet", "--model", "pixels8"])
            .arg(&data)
            .arg("--out")
            .arg(&cache)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut first = String::new();
        stderr.read_line(&mut first).unwrap();
        assert!(first.starts_with("waiting: cache"), "{first}");
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
        let mut rest = String::new();
        stderr.read_to_string(&mut rest).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(sig), "{status}: {rest}");
        assert!(
            rest.contains(&format!("tlearn: killed by {name}")),
            "{rest}"
        );
        drop(lock);
    }
}

/// A file past the file-size limit (`ulimit -f`) is a clear error naming the file, as a full
/// disk is, not a silent death by SIGXFSZ.
#[test]
fn a_file_size_limit_is_a_clear_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    photo_set(&data, 12);
    let cache = tmp.path().join("cache");
    let cmd = format!(
        "ulimit -f 8 && exec '{}' extract --quiet --model pixels32 '{}' --out '{}'",
        env!("CARGO_BIN_EXE_tlearn"),
        data.display(),
        cache.display()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &cmd])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}: {stderr}", out.status);
    assert!(
        stderr.contains("error: ") && stderr.contains("File too large"),
        "{stderr}"
    );
    assert!(stderr.contains(&cache.display().to_string()), "{stderr}");
}

#[test]
fn rerun_extracts_only_new_and_changed_images_and_drops_deleted_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    photo_set(&data, 12);
    let cache = tmp.path().join("cache");
    ok(extract(&data, &cache, "pixels8", &[]));
    fs::remove_file(data.join("cat/img000.png")).unwrap();
    save(
        &picture(33, 33, 999),
        &data.join("dog/img001.png"),
        ImageFormat::Png,
    );
    save(
        &picture(41, 29, 500),
        &data.join("owl/new.png"),
        ImageFormat::Png,
    );
    ok(extract(&data, &cache, "pixels8", &[]));
    let s = read_json(&cache.join("summary.json"));
    assert_eq!(
        (s["extracted"].as_u64(), s["reused"].as_u64()),
        (Some(2), Some(10)),
        "{s}"
    );
    assert_eq!(s["dropped"], 2, "{s}");
    let fresh = tmp.path().join("fresh");
    ok(extract(&data, &fresh, "pixels8", &[]));
    assert_eq!(index_rows(&cache), index_rows(&fresh));
    assert_eq!(
        fs::read(cache.join("features.npy")).unwrap(),
        fs::read(fresh.join("features.npy")).unwrap()
    );
}

#[test]
fn refuses_to_mix_extractors_and_names_the_difference() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    photo_set(&data, 3);
    let cache = tmp.path().join("cache");
    ok(extract(&data, &cache, "pixels8", &[]));
    let before = fs::read(cache.join("features.npy")).unwrap();
    let out = extract(&data, &cache, "pixels8", &["--augment", "crops5"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("augment: cache has \"none\", this run has \"crops5\""),
        "{err}"
    );
    let out = extract(&data, &cache, "pixels-rgb8", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("backbone: cache has \"pixels8\""),
        "{err}"
    );
    assert_eq!(fs::read(cache.join("features.npy")).unwrap(), before);
    ok(extract(&data, &cache, "pixels-rgb8", &["--overwrite"]));
    assert_eq!(read_json(&cache.join("meta.json"))["dim"], 192);
}

#[test]
fn empty_or_missing_dataset_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = extract(
        &tmp.path().join("nope"),
        &tmp.path().join("c"),
        "pixels",
        &[],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    fs::create_dir_all(tmp.path().join("d/empty")).unwrap();
    let out = extract(&tmp.path().join("d"), &tmp.path().join("c"), "pixels", &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no image files"));
    // Files, but not one decodable image: an error naming them, and no empty cache.
    fs::write(
        tmp.path().join("d/empty/broken.png"),
        b"\x89PNG\r\n\x1a\n junk",
    )
    .unwrap();
    let out = extract(&tmp.path().join("d"), &tmp.path().join("c"), "pixels", &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no image of") && err.contains("broken.png"),
        "{err}"
    );
    assert!(!tmp.path().join("c/meta.json").exists());
}

fn smoke() -> PathBuf {
    common::dataset("smoke")
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn lite0_on_the_smoke_photos_gives_a_numpy_cache_and_tta_stays_close() {
    common::require_model("efficientnet-lite0");
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    run_ok(
        tlearn()
            .args([
                "extract",
                "--model",
                "efficientnet-lite0",
                "--layer",
                "features",
            ])
            .args(["--pool", "avg", "--augment", "none"])
            .arg(smoke())
            .arg("--out")
            .arg(&cache)
            .env("CI", "1"),
    );
    let meta = read_json(&cache.join("meta.json"));
    let n_files = fs::read_dir(smoke().join("darknet")).unwrap().count()
        + fs::read_dir(smoke().join("skimage")).unwrap().count();
    assert_eq!(meta["rows"].as_u64().unwrap() as usize, n_files);
    assert_eq!(meta["dim"], 1280);
    assert_eq!(meta["extractor"]["backbone"], "efficientnet-lite0");
    assert_eq!(meta["classes"], serde_json::json!(["darknet", "skimage"]));
    let npy = fs::read(cache.join("features.npy")).unwrap();
    assert!(String::from_utf8_lossy(&npy[..100]).contains(&format!("({n_files}, 1280)")));
    // float32 rows: EfficientNet features after ReLU6-free swish + avg pool are finite and vary.
    let floats: Vec<f32> = npy[128..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(floats.len(), n_files * 1280);
    assert!(floats.iter().all(|x| x.is_finite()));
    let row = |i: usize| &floats[i * 1280..(i + 1) * 1280];
    assert_ne!(row(0), row(1));

    let tta = tmp.path().join("tta");
    run_ok(
        tlearn()
            .args([
                "extract",
                "--model",
                "efficientnet-lite0",
                "--augment",
                "crops10",
            ])
            .arg(smoke())
            .arg("--out")
            .arg(&tta)
            .env("CI", "1"),
    );
    let t = fs::read(tta.join("features.npy")).unwrap();
    let tf: Vec<f32> = t[128..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    // 10-view averages differ from the single centre view but stay close in direction.
    for i in 0..n_files {
        let (a, b) = (row(i), &tf[i * 1280..(i + 1) * 1280]);
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
        let cos = dot / (na * nb);
        assert!(cos > 0.8 && cos < 0.99999, "row {i}: cosine {cos}");
    }
    let _ = repo();
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn decode_mode_is_kept_by_reruns_and_reduced_codes_stay_close_to_full() {
    common::require_model("efficientnet-lite0");
    let tmp = tempfile::tempdir().unwrap();
    let lite0 = "efficientnet-lite0";
    let full = tmp.path().join("full");
    ok(extract(&smoke(), &full, lite0, &["--decode", "full"]));
    let meta = read_json(&full.join("meta.json"));
    assert!(
        meta["extractor"]["preprocess"].get("decode").is_none(),
        "a full decode writes the fingerprint caches had before the field: {meta}"
    );
    // A re-run without --decode keeps the cache's mode: nothing is extracted again.
    ok(extract(&smoke(), &full, lite0, &[]));
    let s = read_json(&full.join("summary.json"));
    assert_eq!(
        (s["extracted"].as_u64(), s["reused"].as_u64()),
        (Some(0), Some(13)),
        "{s}"
    );
    // Asking for the other mode is refused, naming it; the cache is untouched.
    let before = fs::read(full.join("features.npy")).unwrap();
    let out = extract(&smoke(), &full, lite0, &["--decode", "reduced"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains(
                "extractor.preprocess.decode: cache has \"full\", this run has \"reduced\""
            ),
        "{err}"
    );
    assert_eq!(fs::read(full.join("features.npy")).unwrap(), before);

    // A new cache decodes at reduced size by default.
    let reduced = tmp.path().join("reduced");
    ok(extract(&smoke(), &reduced, lite0, &[]));
    let meta = read_json(&reduced.join("meta.json"));
    assert_eq!(
        meta["extractor"]["preprocess"]["decode"], "reduced",
        "{meta}"
    );
    let (f, r) = (
        tlearn_cache::FeatureCache::load(&full).unwrap(),
        tlearn_cache::FeatureCache::load(&reduced).unwrap(),
    );
    assert_eq!(f.paths, r.paths);
    // JPEGs with a short side of 512 or more (resize target 256) are decoded at 1/2 scale: their
    // codes change but keep their direction; PNGs and smaller JPEGs are decoded as before.
    let reducible = [
        "darknet/dog.jpg",
        "darknet/eagle.jpg",
        "darknet/horses.jpg",
        "darknet/kite.jpg",
    ];
    for (i, path) in f.paths.iter().enumerate() {
        let (a, b) = (f.row(i), r.row(i));
        if reducible.contains(&path.as_str()) {
            let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
            let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
            let cos = dot / (na * nb);
            assert!(cos > 0.9 && cos < 0.99999, "{path}: cosine {cos}");
        } else {
            assert_eq!(a, b, "{path}");
        }
    }
}

/// Every integer-valued float written as an integer and the whole file re-indented, as
/// `jq . head.json` does.
fn jq_like(v: &serde_json::Value) -> String {
    fn ints(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Number(n) if n.is_f64() => {
                let f = n.as_f64().unwrap();
                if f.fract() == 0.0 && f.abs() < 1e15 {
                    *v = serde_json::json!(f as i64);
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(ints),
            serde_json::Value::Object(o) => o.values_mut().for_each(ints),
            _ => {}
        }
    }
    let mut v = v.clone();
    ints(&mut v);
    serde_json::to_string_pretty(&v).unwrap()
}

#[test]
fn eval_accepts_a_rewritten_head_json_and_refuses_a_real_difference() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    photo_set(&data, 30);
    let cache = tmp.path().join("cache");
    ok(extract(&data, &cache, "pixels8", &[]));
    let model = tmp.path().join("model");
    run_ok(
        tlearn()
            .args(["train", "--head", "logistic", "--folds", "3", "--out"])
            .arg(&model)
            .arg(&cache),
    );
    let head = read_json(&model.join("head.json"));
    let compact = fs::read_to_string(model.join("head.json")).unwrap();
    assert!(compact.contains("\"std\":[1.0,1.0,1.0]"), "{compact}");
    let rewritten = jq_like(&head);
    assert!(
        rewritten.contains("\"std\": [\n        1,\n"),
        "{rewritten}"
    );
    let h = tmp.path().join("h.json");
    fs::write(&h, &rewritten).unwrap();
    let report = tmp.path().join("report");
    run_ok(
        tlearn()
            .args(["eval", "--head"])
            .arg(&h)
            .arg("--out")
            .arg(&report)
            .arg(&cache),
    );
    assert!(report.join("report.json").exists());
    // A real difference is still refused, naming the field.
    let mut other = head.clone();
    other["extractor"]["preprocess"]["mean"][1] = serde_json::json!(0.5);
    fs::write(&h, jq_like(&other)).unwrap();
    let out = tlearn()
        .args(["eval", "--head"])
        .arg(&h)
        .arg("--out")
        .arg(&report)
        .arg(&cache)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("extractor.preprocess.mean[1]: head has 0.5, cache has 0.0"),
        "{err}"
    );
}

#[test]
fn predict_reports_bad_files_and_classifies_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    photo_set(&data, 30);
    let cache = tmp.path().join("cache");
    ok(extract(&data, &cache, "pixels8", &[]));
    let model = tmp.path().join("model");
    run_ok(
        tlearn()
            .args(["train", "--head", "logistic", "--folds", "3", "--out"])
            .arg(&model)
            .arg(&cache),
    );
    let bad = tmp.path().join("bad");
    fs::create_dir_all(&bad).unwrap();
    fs::write(bad.join("zero.jpg"), b"").unwrap();
    let mut corrupt = vec![0xff, 0xd8, 0xff, 0xe0];
    corrupt.extend((0..4000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
    fs::write(bad.join("corrupt.jpg"), corrupt).unwrap();
    let png = fs::read(data.join("cat/img000.png")).unwrap();
    fs::write(bad.join("truncated.png"), &png[..png.len() / 3]).unwrap();
    fs::write(bad.join("bomb.png"), png_header_only(100_000, 100_000)).unwrap();
    let good = data.join("dog/img001.png");
    let out = tlearn()
        .args(["predict", "--json", "--head"])
        .arg(model.join("head.json"))
        .arg(&good)
        .args(
            [
                "zero.jpg",
                "corrupt.jpg",
                "truncated.png",
                "bomb.png",
                "missing.png",
            ]
            .map(|f| bad.join(f)),
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("5 of 6 images could not be classified"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let preds = v["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 1, "{v}");
    assert_eq!(preds[0]["path"], good.display().to_string());
    let errors: Vec<String> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(errors.len(), 5, "{v}");
    assert!(errors.iter().any(|p| p.ends_with("bomb.png")), "{v}");
}

#[test]
fn a_nan_row_is_refused_with_the_repair_command_and_extract_repairs_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    photo_set(&data, 30);
    let cache = tmp.path().join("cache");
    ok(extract(&data, &cache, "pixels8", &[]));
    let good = fs::read(cache.join("features.npy")).unwrap();
    // NaN into row 4 (npy v1: 10-byte preamble + header, then row-major f32).
    let header = 10 + u16::from_le_bytes([good[8], good[9]]) as usize;
    let mut bad = good.clone();
    let at = header + 4 * 64 * 4 + 8;
    bad[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    fs::write(cache.join("features.npy"), &bad).unwrap();
    let out = tlearn()
        .args(["train", "--head", "logistic", "--folds", "3", "--out"])
        .arg(tmp.path().join("model"))
        .arg(&cache)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("row 4 ("), "{err}");
    assert!(
        err.contains("tlearn extract ") && err.contains("--out"),
        "{err}"
    );
    // Running extract again re-extracts exactly that row, giving the intact cache back.
    ok(extract(&data, &cache, "pixels8", &["--quiet"]));
    let summary = read_json(&cache.join("summary.json"));
    assert_eq!(summary["extracted"], 1, "{summary}");
    assert_eq!(summary["reused"], 29, "{summary}");
    assert_eq!(fs::read(cache.join("features.npy")).unwrap(), good);
}

fn npy(path: &Path) -> ndarray::Array2<f32> {
    ndarray_npy::read_npy(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The smoke photos plus one broken file, in a temporary data set.
fn smoke_with_a_bad_file(dir: &Path) {
    for class in ["darknet", "skimage"] {
        fs::create_dir_all(dir.join(class)).unwrap();
        for f in fs::read_dir(smoke().join(class)).unwrap() {
            let f = f.unwrap().path();
            fs::copy(&f, dir.join(class).join(f.file_name().unwrap())).unwrap();
        }
    }
    fs::write(dir.join("skimage/broken.jpg"), b"\xff\xd8\xff not a jpeg").unwrap();
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn several_cuts_from_one_pass_equal_single_cut_extracts_and_resume() {
    common::require_model("efficientnet-lite0");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    smoke_with_a_bad_file(&data);
    let set = tmp.path().join("set");
    let cuts = ["features", "stage6", "stage5"];
    ok(extract(
        &data,
        &set,
        "efficientnet-lite0",
        &["--layer", "features,stage6,stage5", "--quiet"],
    ));
    let manifest = read_json(&set.join("cuts.json"));
    assert_eq!(manifest["format"], "tlearn-cut-set", "{manifest}");
    let names: Vec<&str> = manifest["cuts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, cuts);
    assert!(
        !set.join("meta.json").exists(),
        "a set is not a plain cache"
    );
    for cut in cuts {
        let single = tmp.path().join(format!("single-{cut}"));
        ok(extract(
            &data,
            &single,
            "efficientnet-lite0",
            &["--layer", cut, "--quiet"],
        ));
        let (a, b) = (
            npy(&set.join(cut).join("features.npy")),
            npy(&single.join("features.npy")),
        );
        assert_eq!(a.dim(), b.dim(), "{cut}");
        let worst = (&a - &b).iter().fold(0f32, |m, d| m.max(d.abs()));
        assert!(worst <= 1e-5, "{cut}: codes differ by {worst}");
        let (ma, mb) = (
            read_json(&set.join(cut).join("meta.json")),
            read_json(&single.join("meta.json")),
        );
        assert_eq!(ma["extractor"], mb["extractor"], "{cut}: same fingerprint");
        assert_eq!(ma["extractor"]["layer"], cut);
        assert_eq!(index_rows(&set.join(cut)), index_rows(&single));
        let skipped = fs::read_to_string(set.join(cut).join("skipped.csv")).unwrap();
        assert!(skipped.contains("skimage/broken.jpg"), "{cut}: {skipped}");
        assert_eq!(
            ma["rows"].as_u64().unwrap() as usize,
            index_rows(&set.join(cut)).len()
        );
    }

    // A run killed after 5 images leaves a journal and no set; the next run resumes it and
    // writes the same set.
    let resumed = tmp.path().join("resumed");
    let killed = tlearn()
        .args(["extract", "--model", "efficientnet-lite0", "--chunk", "2"])
        .args(["--layer", "features,stage6,stage5", "--quiet"])
        .arg(&data)
        .arg("--out")
        .arg(&resumed)
        .env("CI", "1")
        .env("TLEARN_ABORT_AFTER", "5")
        .output()
        .unwrap();
    assert!(
        !killed.status.success(),
        "the abort hook should kill the run"
    );
    assert!(resumed.join("journal.bin").exists());
    assert!(!resumed.join("cuts.json").exists());
    // Another cut list does not take the journal's vectors (on a copy of the killed run).
    let other = tmp.path().join("other");
    fs::create_dir_all(&other).unwrap();
    fs::copy(resumed.join("journal.bin"), other.join("journal.bin")).unwrap();
    ok(extract(
        &data,
        &other,
        "efficientnet-lite0",
        &["--layer", "stage6,stage5", "--quiet"],
    ));
    let s = read_json(&other.join("summary.json"));
    assert_eq!(
        (s["resumed"].as_u64(), s["extracted"].as_u64()),
        (Some(0), Some(13)),
        "{s}"
    );
    ok(extract(
        &data,
        &resumed,
        "efficientnet-lite0",
        &["--layer", "features,stage6,stage5", "--quiet"],
    ));
    let s = read_json(&resumed.join("summary.json"));
    assert_eq!(s["resumed"], 5, "{s}");
    assert_eq!(s["extracted"], 8, "{s}");
    assert_eq!(s["dim"], 1280 + 192 + 112, "{s}");
    assert!(!resumed.join("journal.bin").exists());
    for cut in cuts {
        assert_eq!(
            fs::read(resumed.join(cut).join("features.npy")).unwrap(),
            fs::read(set.join(cut).join("features.npy")).unwrap(),
            "{cut}"
        );
        assert_eq!(index_rows(&resumed.join(cut)), index_rows(&set.join(cut)));
    }

    // A single cut into a set's directory is refused (another extractor), and a set over a
    // plain cache too, unless --overwrite.
    let out = extract(&data, &set, "efficientnet-lite0", &["--layer", "features"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("extractor.layer"),
        "{err}"
    );
    let single = tmp.path().join("single-stage6");
    let out = extract(&data, &single, "efficientnet-lite0", &["--layer", "all"]);
    assert!(!out.status.success());
    ok(extract(
        &data,
        &single,
        "efficientnet-lite0",
        &["--layer", "all", "--overwrite", "--quiet"],
    ));
    assert!(
        !single.join("meta.json").exists(),
        "the plain cache is retired"
    );
    // `all`: every named cut of the registry entry, in registry order.
    let registry = tlearn_extract::registry::Registry::load(&repo().join("models")).unwrap();
    let want: Vec<String> = registry
        .get("efficientnet-lite0")
        .unwrap()
        .cuts
        .iter()
        .map(|c| c.name.clone())
        .collect();
    let got: Vec<String> = read_json(&single.join("cuts.json"))["cuts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, want);
    assert!(want.len() >= 4, "{want:?}");
    assert_eq!(
        fs::read(single.join("stage6/features.npy")).unwrap(),
        fs::read(set.join("stage6/features.npy")).unwrap()
    );
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn one_cut_of_a_set_trains_evaluates_predicts_and_is_repaired() {
    common::require_model("efficientnet-lite0");
    let tmp = tempfile::tempdir().unwrap();
    let set = tmp.path().join("set");
    ok(extract(
        &smoke(),
        &set,
        "efficientnet-lite0",
        &["--layer", "stage6,features", "--quiet"],
    ));
    let cut = set.join("stage6");
    let run = tmp.path().join("run");
    run_ok(
        tlearn()
            .args(["train", "--head", "logistic", "--folds", "3", "--seed", "1"])
            .arg(&cut)
            .arg("--out")
            .arg(&run),
    );
    let head = read_json(&run.join("head.json"));
    assert_eq!(head["extractor"]["layer"], "stage6", "{head}");
    run_ok(
        tlearn()
            .args(["eval", "--head"])
            .arg(run.join("head.json"))
            .arg(&cut)
            .arg("--out")
            .arg(&run),
    );
    let out = run_ok(
        tlearn()
            .args(["predict", "--json", "--head"])
            .arg(run.join("head.json"))
            .arg(smoke().join("darknet/eagle.jpg")),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["predictions"].as_array().unwrap().len(), 1, "{v}");
    let onnx = tmp.path().join("model.onnx");
    run_ok(
        tlearn()
            .args(["export", "--head"])
            .arg(run.join("head.json"))
            .arg("--out")
            .arg(&onnx),
    );
    assert!(fs::metadata(&onnx).unwrap().len() > 1000);

    // A NaN row in one cut: that cut is refused by train; extract repairs exactly that row.
    let good = fs::read(cut.join("features.npy")).unwrap();
    let header = 10 + u16::from_le_bytes([good[8], good[9]]) as usize;
    let mut bad = good.clone();
    let at = header + 3 * 192 * 4;
    bad[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    fs::write(cut.join("features.npy"), &bad).unwrap();
    let out = tlearn()
        .args(["train", "--head", "logistic", "--folds", "3"])
        .arg(&cut)
        .arg("--out")
        .arg(tmp.path().join("run2"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("row 3 ("), "{err}");
    ok(extract(
        &smoke(),
        &set,
        "efficientnet-lite0",
        &["--layer", "stage6,features", "--quiet"],
    ));
    let s = read_json(&set.join("summary.json"));
    assert_eq!(s["extracted"], 1, "{s}");
    assert_eq!(s["reused"], 12, "{s}");
    assert_eq!(fs::read(cut.join("features.npy")).unwrap(), good);
}

/// The smoke photos' JPEGs: (file name, bytes).
fn smoke_jpegs() -> Vec<(String, Vec<u8>)> {
    let dir = common::dataset("smoke").join("darknet");
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    assert!(out.len() >= 7, "{} JPEGs in {}", out.len(), dir.display());
    out
}

#[test]
#[ignore = "needs make data (data/smoke); run by make test"]
fn truncated_jpegs_are_skipped_by_extract_and_predict_in_both_decode_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join("train");
    photo_set(&train, 30);
    // Real photos cut at several fractions and without their end-of-image marker (PIL refuses
    // them all as truncated), intact ones, and intact ones with bytes after EOI (PIL accepts).
    let data = tmp.path().join("data");
    let mut cut_names = Vec::new();
    let mut kept = Vec::new();
    for (i, (name, jpeg)) in smoke_jpegs().into_iter().enumerate() {
        let class = data.join(["a", "b"][i % 2]);
        fs::create_dir_all(&class).unwrap();
        let class_name = ["a", "b"][i % 2];
        for (tag, end) in [
            ("10", jpeg.len() / 10),
            ("50", jpeg.len() / 2),
            ("90", jpeg.len() * 9 / 10),
            ("noeoi", jpeg.len() - 2),
        ] {
            let f = format!("{name}-cut{tag}.jpg");
            fs::write(class.join(&f), &jpeg[..end]).unwrap();
            cut_names.push(format!("{class_name}/{f}"));
        }
        fs::write(class.join(format!("{name}.jpg")), &jpeg).unwrap();
        let mut trailing = jpeg.clone();
        trailing.extend_from_slice(b"\0\0 trailing bytes after EOI");
        fs::write(class.join(format!("{name}-trailing.jpg")), trailing).unwrap();
        kept.push(format!("{class_name}/{name}"));
    }
    cut_names.sort();
    for mode in ["reduced", "full"] {
        let cache = tmp.path().join(format!("cache-{mode}"));
        ok(extract(&data, &cache, "pixels-rgb16", &["--decode", mode]));
        let s = read_json(&cache.join("summary.json"));
        let skipped = skipped_reasons(&s);
        let paths: Vec<&String> = skipped.iter().map(|(p, _)| p).collect();
        assert_eq!(paths, cut_names.iter().collect::<Vec<_>>(), "{mode}: {s}");
        for (p, reason) in &skipped {
            assert!(reason.starts_with("truncated"), "{mode}: {p}: {reason}");
        }
        let csv = fs::read_to_string(cache.join("skipped.csv")).unwrap();
        assert_eq!(csv.matches("truncated").count(), cut_names.len(), "{csv}");
        // Each photo and its copy with trailing bytes: two rows, the same vector.
        let rows = index_rows(&cache);
        assert_eq!(rows.len(), 2 * kept.len(), "{mode}: {rows:?}");
        let c = tlearn_cache::FeatureCache::read(&cache).unwrap().unwrap();
        for k in &kept {
            let i = c
                .paths
                .iter()
                .position(|p| *p == format!("{k}.jpg"))
                .unwrap();
            let j = c
                .paths
                .iter()
                .position(|p| *p == format!("{k}-trailing.jpg"))
                .unwrap();
            assert_eq!(c.row(i), c.row(j), "{mode}: {k}");
        }

        // predict with a head of this decode mode: the cut files are failures, "truncated".
        let tcache = tmp.path().join(format!("train-{mode}"));
        ok(extract(
            &train,
            &tcache,
            "pixels-rgb16",
            &["--decode", mode],
        ));
        let model = tmp.path().join(format!("model-{mode}"));
        run_ok(
            tlearn()
                .args(["train", "--head", "logistic", "--folds", "3", "--out"])
                .arg(&model)
                .arg(&tcache),
        );
        let mut images: Vec<PathBuf> = cut_names.iter().map(|p| data.join(p)).collect();
        images.extend(kept.iter().map(|k| data.join(format!("{k}-trailing.jpg"))));
        let out = tlearn()
            .args(["predict", "--json", "--head"])
            .arg(model.join("head.json"))
            .args(&images)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{mode}: {err}");
        assert!(
            err.contains(&format!(
                "{} of {} images could not be classified",
                cut_names.len(),
                images.len()
            )),
            "{mode}: {err}"
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["predictions"].as_array().unwrap().len(), kept.len());
        let errors = v["errors"].as_array().unwrap();
        assert_eq!(errors.len(), cut_names.len(), "{v}");
        for e in errors {
            let msg = e["error"].as_str().unwrap();
            assert!(msg.contains(": truncated: "), "{mode}: {msg}");
        }
    }
}

/// A flat-colour PNG declaring `side`×`side` pixels: a decompression bomb of a few hundred KB.
fn flat_png(side: u32) -> Vec<u8> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let img = RgbImage::from_pixel(side, side, Rgb([200, 120, 40]));
    let mut out = Vec::new();
    img.write_with_encoder(PngEncoder::new_with_quality(
        &mut out,
        CompressionType::Best,
        FilterType::NoFilter,
    ))
    .unwrap();
    out
}

/// Run `cmd` and reap it with wait4: its exit status, stderr and peak RSS in bytes.
fn run_with_peak_rss(cmd: &mut std::process::Command) -> (bool, String, u64) {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let mut status = 0;
    // SAFETY: wait4 on our own child's pid, with valid out-pointers.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    // Already reaped by wait4: this only settles `Child`'s own bookkeeping.
    let _ = child.wait();
    (
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        err,
        usage.ru_maxrss as u64 * 1024,
    )
}

#[test]
#[ignore = "heavy: decodes four 90-megapixel images; run by make test"]
fn decompression_bombs_are_decoded_within_the_memory_budget_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let side = 9500; // 270.75 MB of RGB8, over the 256 MiB "large" line
    let bomb = flat_png(side);
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    for i in 0..4 {
        fs::create_dir_all(data.join("a")).unwrap();
        fs::write(data.join(format!("a/bomb{i}.png")), &bomb).unwrap();
    }
    for i in 0..6 {
        save(
            &picture(64, 48, i),
            &data.join(format!("b/small{i}.png")),
            ImageFormat::Png,
        );
    }
    // A budget below one bomb: each is decoded alone, none is refused.
    let cache = tmp.path().join("cache");
    let (ok_, err, rss) = run_with_peak_rss(
        tlearn()
            .args(["extract", "--model", "pixels8", "--threads", "4"])
            .args(["--decode-memory", "100MiB"])
            .arg(&data)
            .arg("--out")
            .arg(&cache)
            .env("CI", "1"),
    );
    assert!(ok_, "{err}");
    let s = read_json(&cache.join("summary.json"));
    assert_eq!(s["rows"], 10, "{s}");
    assert_eq!(s["decode_memory"], 100 << 20, "{s}");
    let one = side as u64 * side as u64 * 3;
    assert_eq!(s["decode_memory_peak"], one, "one bomb at a time: {s}");
    let large: Vec<&str> = s["large"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(
                (r["width"].as_u64(), r["height"].as_u64()),
                (Some(9500), Some(9500))
            );
            r["path"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        large,
        ["a/bomb0.png", "a/bomb1.png", "a/bomb2.png", "a/bomb3.png"]
    );
    assert!(
        err.contains("large images: 4 declare at least 256.0 MiB"),
        "{err}"
    );
    assert!(err.contains("a/bomb3.png: 9500×9500"), "{err}");
    // Four threads hold one bomb at a time: well under two bombs' worth of memory.
    assert!(rss < 2 * one, "peak RSS {} MB", rss >> 20);
}

/// Reference grid pooling of a `[C, H, W]` map given flattened (`--pool flatten` codes):
/// PyTorch `AdaptiveAvgPool2d` cells, channel-major, written out here independently of
/// `tlearn_extract::grid`.
fn adaptive_avg(flat: &[f32], c: usize, h: usize, w: usize, k: usize) -> Vec<f32> {
    let bins = |len: usize| -> Vec<(usize, usize)> {
        (0..k)
            .map(|i| {
                let start = (i as f64 * len as f64 / k as f64).floor() as usize;
                let end = ((i + 1) as f64 * len as f64 / k as f64).ceil() as usize;
                (start, end)
            })
            .collect()
    };
    let mut out = vec![];
    for ch in 0..c {
        for &(y0, y1) in &bins(h) {
            for &(x0, x1) in &bins(w) {
                let mut sum = 0f64;
                for y in y0..y1 {
                    for x in x0..x1 {
                        sum += flat[ch * h * w + y * w + x] as f64;
                    }
                }
                out.push((sum / ((y1 - y0) * (x1 - x0)) as f64) as f32);
            }
        }
    }
    out
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn grid_cuts_pool_the_full_map_cell_by_cell_are_their_own_extractor_and_resume() {
    common::require_model("efficientnet-lite0");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    smoke_with_a_bad_file(&data);
    let layers = "stage6,stage6@2x2,stage5@3x3";
    let set = tmp.path().join("set");
    ok(extract(
        &data,
        &set,
        "efficientnet-lite0",
        &["--layer", layers, "--quiet"],
    ));
    let manifest = read_json(&set.join("cuts.json"));
    let dims: Vec<(String, u64)> = manifest["cuts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["dir"].as_str().unwrap().into(),
                c["dim"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        dims,
        vec![
            ("stage6".to_string(), 192u64),
            ("stage6@2x2".to_string(), 192 * 4),
            ("stage5@3x3".to_string(), 112 * 9)
        ]
    );

    // Each grid cut equals the reference pooling of the full map (`--pool flatten`).
    for (cut, base, c, side, k) in [
        ("stage6@2x2", "stage6", 192, 7, 2),
        ("stage5@3x3", "stage5", 112, 14, 3),
    ] {
        let flat_dir = tmp.path().join(format!("flat-{base}"));
        ok(extract(
            &data,
            &flat_dir,
            "efficientnet-lite0",
            &["--layer", base, "--pool", "flatten", "--quiet"],
        ));
        let flat = npy(&flat_dir.join("features.npy"));
        let grid = npy(&set.join(cut).join("features.npy"));
        assert_eq!(flat.ncols(), c * side * side, "{base}");
        assert_eq!(grid.ncols(), c * k * k, "{cut}");
        assert_eq!(index_rows(&flat_dir), index_rows(&set.join(cut)));
        assert_eq!(grid.nrows(), 13, "{cut}");
        let mut worst = 0f32;
        for (g, f) in grid.outer_iter().zip(flat.outer_iter()) {
            let want = adaptive_avg(f.as_slice().unwrap(), c, side, side, k);
            for (a, b) in g.iter().zip(&want) {
                worst = worst.max((a - b).abs() / b.abs().max(1.0));
            }
        }
        assert!(worst <= 1e-5, "{cut}: grid codes differ by {worst}");
        let meta = read_json(&set.join(cut).join("meta.json"));
        assert_eq!(meta["extractor"]["layer"], cut);
        assert_eq!(meta["extractor"]["pool"], "avg");
    }

    // The grid is part of the extractor: a head trained on stage6@2x2 refuses the stage6
    // cache (same tensor, other pooling), naming the field.
    let run = tmp.path().join("run");
    run_ok(
        tlearn()
            .args([
                "train", "--head", "logistic", "--c-grid", "1", "--folds", "3",
            ])
            .args(["--transform", "standard"])
            .arg(set.join("stage6@2x2"))
            .arg("--out")
            .arg(&run),
    );
    let out = tlearn()
        .args(["eval", "--head"])
        .arg(run.join("head.json"))
        .arg(set.join("stage6"))
        .arg("--out")
        .arg(tmp.path().join("eval"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("extractor.layer") && err.contains("stage6@2x2"),
        "{err}"
    );
    // ... and so does an extraction of the plain cut into the grid cut's cache.
    let out = extract(
        &data,
        &set.join("stage6@2x2"),
        "efficientnet-lite0",
        &["--layer", "stage6"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("extractor.layer"),
        "{err}"
    );
    // A grid needs a pooling per cell.
    let out = extract(
        &data,
        &tmp.path().join("bad"),
        "efficientnet-lite0",
        &["--layer", "stage6@2x2", "--pool", "flatten"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("not flatten"),
        "{err}"
    );

    // A set with grid cuts, killed after 5 images, resumes to the same codes.
    let resumed = tmp.path().join("resumed");
    let killed = tlearn()
        .args(["extract", "--model", "efficientnet-lite0", "--chunk", "2"])
        .args(["--layer", layers, "--quiet"])
        .arg(&data)
        .arg("--out")
        .arg(&resumed)
        .env("CI", "1")
        .env("TLEARN_ABORT_AFTER", "5")
        .output()
        .unwrap();
    assert!(
        !killed.status.success(),
        "the abort hook should kill the run"
    );
    assert!(resumed.join("journal.bin").exists());
    ok(extract(
        &data,
        &resumed,
        "efficientnet-lite0",
        &["--layer", layers, "--quiet"],
    ));
    let s = read_json(&resumed.join("summary.json"));
    assert_eq!(
        (s["resumed"].as_u64(), s["extracted"].as_u64()),
        (Some(5), Some(8)),
        "{s}"
    );
    for cut in ["stage6", "stage6@2x2", "stage5@3x3"] {
        assert_eq!(
            fs::read(resumed.join(cut).join("features.npy")).unwrap(),
            fs::read(set.join(cut).join("features.npy")).unwrap(),
            "{cut}"
        );
    }
}

/// `extract --model2`: each cache of a one-pass run equals that backbone's own run, file for
/// file; a killed pass resumes both caches; a cache already complete is reused while the other
/// is extracted; one folder for both is refused.
fn two_in_one_pass(
    data: &Path,
    tmp: &Path,
    (m1, a1): (&str, &[&str]),
    (m2, l2): (&str, Option<&str>),
) {
    let (one, two) = (tmp.join("one"), tmp.join("two"));
    let pass = |one: &Path, two: &Path, env: Option<&str>| {
        let mut c = tlearn();
        c.args(["extract", "--quiet", "--model", m1])
            .args(a1)
            .args(["--model2", m2])
            .args(l2.map(|l| ["--layer2", l]).iter().flatten())
            .arg("--out2")
            .arg(two)
            .arg(data)
            .arg("--out")
            .arg(one)
            .env("CI", "1");
        if let Some(n) = env {
            c.env("TLEARN_ABORT_AFTER", n);
        }
        c.output().unwrap()
    };
    ok(pass(&one, &two, None));
    let (alone1, alone2) = (tmp.join("alone1"), tmp.join("alone2"));
    ok(extract(data, &alone1, m1, a1));
    let a2: Vec<&str> = l2.map(|l| vec!["--layer", l]).unwrap_or_default();
    ok(extract(data, &alone2, m2, &a2));
    let same = |a: &Path, b: &Path| {
        let files = |d: &Path| -> Vec<PathBuf> {
            let mut v: Vec<PathBuf> = walk(d)
                .into_iter()
                .filter(|p| {
                    let n = p.file_name().unwrap().to_str().unwrap();
                    n.ends_with(".npy") || n.ends_with(".csv")
                })
                .map(|p| p.strip_prefix(d).unwrap().to_path_buf())
                .collect();
            v.sort();
            v
        };
        let fa = files(a);
        assert!(!fa.is_empty() && fa == files(b), "{fa:?}");
        for f in &fa {
            assert_eq!(
                fs::read(a.join(f)).unwrap(),
                fs::read(b.join(f)).unwrap(),
                "{} differs from the backbone's own run",
                a.join(f).display()
            );
        }
    };
    same(&one, &alone1);
    same(&two, &alone2);

    // Killed after 3 images: both caches keep a journal, and the next pass resumes both.
    let (k1, k2) = (tmp.join("k1"), tmp.join("k2"));
    assert!(!pass(&k1, &k2, Some("3")).status.success());
    assert!(k1.join("journal.bin").exists() && k2.join("journal.bin").exists());
    ok(pass(&k1, &k2, None));
    for k in [&k1, &k2] {
        let s = read_json(&k.join("summary.json"));
        assert_eq!(s["resumed"], 3, "{s}");
    }
    same(&k1, &alone1);
    same(&k2, &alone2);

    // The second cache complete, the first gone: only the first is extracted.
    fs::remove_dir_all(&k1).unwrap();
    ok(pass(&k1, &k2, None));
    let (s1, s2) = (
        read_json(&k1.join("summary.json")),
        read_json(&k2.join("summary.json")),
    );
    assert_eq!(s2["extracted"], 0, "{s2}");
    assert_eq!(s1["extracted"], s2["reused"], "{s1} {s2}");
    same(&k1, &alone1);

    let o = pass(&one, &one, None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("two extractions into one cache"),
        "{err}"
    );
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn two_backbones_in_one_pass_write_what_each_writes_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    photo_set(&data, 12);
    fs::write(data.join("cat/broken.png"), b"\x89PNG\r\n\x1a\n broken").unwrap();
    // Two encoders that see the same views (decoded and resized once for both).
    two_in_one_pass(&data, tmp.path(), ("pixels8", &[]), ("pixels-rgb8", None));
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn lite0_and_mobilenetv2_in_one_pass_write_what_each_writes_alone() {
    common::require_model("efficientnet-lite0");
    common::require_model("mobilenetv2");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    smoke_with_a_bad_file(&data);
    two_in_one_pass(
        &data,
        tmp.path(),
        ("efficientnet-lite0", &["--layer", "features,stage6"]),
        ("mobilenetv2", Some("features")),
    );
}
