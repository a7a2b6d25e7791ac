//! Nothing lost, through the real `tlearn` binary (raw-pixels backbone, and the tiny real CNN of
//! tlearn-extract's tests for cut sets, so that all of it runs in a plain `cargo test`): a cut set
//! updated by a run killed at every step of its write (a deterministic injected kill) or out of
//! space stays whole and resumes; rows of `index.csv` reordered or repeated are refused by
//! `train` and repaired by `extract`; files that are not files (FIFO, `/dev/zero`), files too
//! large and absurd thread counts are handled at once (under a timeout); two `train`s on one
//! `--out` take turns; duplicates and misleading messages.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{ok, picture, read_json, repo, skipped_reasons, tlearn};

/// `n` generated photos over three classes, `img{i}.png`.
fn photo_set(dir: &Path, range: std::ops::Range<u32>) {
    for i in range {
        let p = dir
            .join(["cat", "dog", "owl"][i as usize % 3])
            .join(format!("img{i:03}.png"));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        picture(40 + i % 7, 30 + i % 5, i).save(&p).unwrap();
    }
}

fn tiny() -> String {
    repo()
        .join("crates/tlearn-extract/tests/data/tiny.onnx")
        .to_string_lossy()
        .into_owned()
}

/// The tiny CNN's two cuts as a cut set.
const SET: [&str; 4] = ["--layer", "relu1,flat", "--crop", "32"];

fn extract_cmd(data: &Path, out: &Path, model: &str, extra: &[&str]) -> Command {
    let mut c = tlearn();
    c.args(["extract", "--quiet", "--model", model])
        .args(extra)
        .arg(data)
        .arg("--out")
        .arg(out)
        .env("CI", "1");
    c
}

fn extract(data: &Path, out: &Path, model: &str, extra: &[&str]) -> Output {
    extract_cmd(data, out, model, extra).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Run `cmd` to its end, failing the test if it takes more than `limit` (the child is killed).
fn within(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} still running after {limit:?}; stderr:\n{}",
                stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Every file under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = fs::remove_dir_all(to);
    fs::create_dir_all(to).unwrap();
    for f in tree(from) {
        let dest = to.join(&f);
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::copy(from.join(&f), dest).unwrap();
    }
}

fn train(cache: &Path, run: &Path, extra: &[&str]) -> Output {
    tlearn()
        .args(["train", "--head", "logistic", "--folds", "2"])
        .args(extra)
        .arg(cache)
        .arg("--out")
        .arg(run)
        .output()
        .unwrap()
}

// ---------------------------------------------------------------- cut sets

/// A set updated with new images by a run killed after every step of its write in turn: after
/// each kill the set reads whole (the old one before the commit point, the new one after it,
/// finished by whoever opens it next), and the next run reuses every row and ends with the
/// same set as an uninterrupted run, without a stale temp file.
#[test]
fn a_cut_set_update_killed_at_any_step_leaves_a_whole_set_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let (old_data, new_data) = (tmp.path().join("old"), tmp.path().join("new"));
    photo_set(&old_data, 0..9);
    photo_set(&new_data, 0..12);
    let reference = tmp.path().join("reference");
    ok(extract(&new_data, &reference, &tiny(), &SET));
    let base = tmp.path().join("base");
    ok(extract(&old_data, &base, &tiny(), &SET));
    let (old_x, new_x) = (
        tlearn_cache::set::read_joined(&base).unwrap().unwrap().x,
        tlearn_cache::set::read_joined(&reference)
            .unwrap()
            .unwrap()
            .x,
    );
    let set = tmp.path().join("set");
    let mut step = 1;
    loop {
        copy_dir(&base, &set);
        let killed = extract_cmd(&new_data, &set, &tiny(), &SET)
            .env("TLEARN_ABORT_SET_WRITE", step.to_string())
            .output()
            .unwrap();
        if killed.status.success() {
            break;
        }
        assert!(
            stderr(&killed).contains(&format!("aborting after step {step}")),
            "step {step}: {}",
            stderr(&killed)
        );
        // Half the time read it first (a reader finishes an interrupted switch), else let the
        // next extract find it as the kill left it.
        if step % 2 == 1 {
            let joined = tlearn_cache::set::read_joined(&set).unwrap().unwrap();
            assert!(
                joined.x == old_x || joined.x == new_x,
                "step {step}: the set read is neither the old nor the new one"
            );
            assert_eq!(tlearn_cache::resolve(&set).unwrap().len(), 2, "step {step}");
        }
        ok(extract(&new_data, &set, &tiny(), &SET));
        let s = read_json(&set.join("summary.json"));
        assert_eq!(s["extracted"], 0, "step {step}: {s}");
        assert_eq!(
            s["reused"].as_u64().unwrap() + s["resumed"].as_u64().unwrap(),
            12,
            "step {step}: {s}"
        );
        for cut in ["relu1", "flat"] {
            for f in ["features.npy", "index.csv", "meta.json"] {
                let (a, b) = (set.join(cut).join(f), reference.join(cut).join(f));
                if f == "meta.json" {
                    let (mut a, mut b) = (read_json(&a), read_json(&b));
                    a["created"] = serde_json::Value::Null;
                    b["created"] = serde_json::Value::Null;
                    a["dataset"] = serde_json::Value::Null;
                    b["dataset"] = serde_json::Value::Null;
                    assert_eq!(a, b, "step {step}: {cut}/{f}");
                } else {
                    assert_eq!(
                        fs::read(a).unwrap(),
                        fs::read(b).unwrap(),
                        "step {step}: {cut}/{f}"
                    );
                }
            }
        }
        let left: Vec<String> = tree(&set)
            .into_iter()
            .filter(|f| f.ends_with(".tmp") || f.contains("update") || f.ends_with("journal.bin"))
            .collect();
        assert!(left.is_empty(), "step {step}: left behind {left:?}");
        step += 1;
    }
    // Two cuts staged, the step list, 18 steps: every one was a kill point.
    assert_eq!(step, 22, "the write has a different number of steps");
}

/// A set whose update runs out of space (`ulimit -f`: a file can grow to 2 KiB) while it writes
/// the new caches: the old set stays as it was, with no temp file left.
#[test]
fn a_cut_set_update_out_of_space_leaves_the_old_set_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    photo_set(&data, 0..60);
    let set = tmp.path().join("set");
    ok(extract(&data, &set, &tiny(), &SET));
    let before: Vec<(String, Vec<u8>)> = tree(&set)
        .into_iter()
        .filter(|f| !f.ends_with("summary.json") && !f.ends_with(".lock"))
        .map(|f| (f.clone(), fs::read(set.join(&f)).unwrap()))
        .collect();
    assert!(
        fs::metadata(set.join("relu1/index.csv")).unwrap().len() > 2048,
        "the index must not fit in the limit"
    );
    let cmd = format!(
        "ulimit -f 2 && exec '{}' extract --quiet --model '{}' {} '{}' --out '{}'",
        env!("CARGO_BIN_EXE_tlearn"),
        tiny(),
        SET.join(" "),
        data.display(),
        set.display()
    );
    let out = Command::new("sh").args(["-c", &cmd]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("File too large"), "{}", stderr(&out));
    for (f, bytes) in &before {
        assert_eq!(&fs::read(set.join(f)).unwrap(), bytes, "{f} changed");
    }
    let left: Vec<String> = tree(&set)
        .into_iter()
        .filter(|f| f.ends_with(".tmp") || f.contains("update"))
        .collect();
    assert!(left.is_empty(), "left behind {left:?}");
    assert_eq!(tlearn_cache::resolve(&set).unwrap().len(), 2);
}

/// One cut's `meta.json` edited to another layer is refused by `train` before any work, and a
/// cut whose index disagrees with the other's (another sha256) is repaired by `extract` without
/// `--overwrite`, as the message says.
#[test]
fn a_cut_that_is_not_the_sets_is_refused_and_a_disagreeing_one_repaired() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    photo_set(&data, 0..12);
    let set = tmp.path().join("set");
    ok(extract(&data, &set, &tiny(), &SET));
    let meta_path = set.join("flat/meta.json");
    let meta = fs::read_to_string(&meta_path).unwrap();
    fs::write(
        &meta_path,
        meta.replace("\"layer\": \"flat\"", "\"layer\": \"relu1\""),
    )
    .unwrap();
    let o = train(&set, &tmp.path().join("run"), &[]);
    assert!(
        !o.status.success()
            && stderr(&o).contains("flat/meta.json")
            && stderr(&o).contains("extractor.layer is 'relu1'"),
        "{}",
        stderr(&o)
    );
    fs::write(&meta_path, &meta).unwrap();
    let good = fs::read(set.join("flat/features.npy")).unwrap();
    let index_path = set.join("flat/index.csv");
    let index = fs::read_to_string(&index_path).unwrap();
    let line = index.lines().nth(3).unwrap().to_owned();
    let sha = line.rsplit(',').next().unwrap();
    fs::write(&index_path, index.replace(sha, &"0".repeat(64))).unwrap();
    let o = train(&set, &tmp.path().join("run"), &[]);
    assert!(
        !o.status.success() && stderr(&o).contains("re-run `tlearn extract`"),
        "{}",
        stderr(&o)
    );
    ok(extract(&data, &set, &tiny(), &SET));
    let s = read_json(&set.join("summary.json"));
    assert_eq!(
        (s["extracted"].as_u64(), s["reused"].as_u64()),
        (Some(1), Some(11)),
        "{s}"
    );
    assert_eq!(fs::read(set.join("flat/features.npy")).unwrap(), good);
    assert_eq!(fs::read_to_string(&index_path).unwrap(), index);
    ok(train(&set, &tmp.path().join("run"), &[]));
}

// ---------------------------------------------------------------- rows of index.csv

/// Rows of `index.csv` reordered (or one repeated) no longer match `features.npy`: `train`
/// refuses naming the file and the first bad line; `extract` extracts again exactly the rows it
/// cannot match and ends with the cache as it was.
#[test]
fn rows_reordered_or_repeated_are_refused_by_train_and_repaired_by_extract() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    photo_set(&data, 0..12);
    let cache = tmp.path().join("cache");
    ok(extract(&data, &cache, "pixels8", &[]));
    let index_path = cache.join("index.csv");
    let (index, features) = (
        fs::read_to_string(&index_path).unwrap(),
        fs::read(cache.join("features.npy")).unwrap(),
    );
    let lines: Vec<&str> = index.lines().collect();
    let mut swapped = lines.clone();
    swapped.swap(2, 6);
    let mut repeated = lines.clone();
    repeated[9] = repeated[8];
    for (what, rows, first_bad) in [("swapped", swapped, 4), ("repeated", repeated, 10)] {
        fs::write(&index_path, rows.join("\n") + "\n").unwrap();
        let o = train(&cache, &tmp.path().join("run"), &[]);
        let err = stderr(&o);
        assert!(
            !o.status.success()
                && err.contains(&format!("index.csv: line {first_bad} ("))
                && err.contains("path order"),
            "{what}: {err}"
        );
        assert!(!err.contains("cv "), "{what}: trained first:\n{err}");
        ok(extract(&data, &cache, "pixels8", &[]));
        let s = read_json(&cache.join("summary.json"));
        assert_eq!(
            (s["extracted"].as_u64(), s["reused"].as_u64()),
            (Some(2), Some(10)),
            "{what}: {s}"
        );
        assert_eq!(fs::read_to_string(&index_path).unwrap(), index, "{what}");
        assert_eq!(
            fs::read(cache.join("features.npy")).unwrap(),
            features,
            "{what}"
        );
    }
}

// ---------------------------------------------------------------- files that are not files

/// A FIFO and a link to `/dev/zero` among the images, and a 300 MiB file named `.jpg`: skipped
/// at once with a reason, never read (memory bounded by `ulimit -v`, time by a timeout), by
/// `extract`, `predict` and `show` alike; `--max-file-size` sets the cap.
#[test]
fn fifos_devices_and_huge_files_are_skipped_without_being_read() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    photo_set(&data, 0..9);
    let fifo = data.join("cat/pipe.png");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    std::os::unix::fs::symlink("/dev/zero", data.join("dog/z.png")).unwrap();
    let big = data.join("owl/big.jpg");
    fs::File::create(&big).unwrap().set_len(300 << 20).unwrap();
    let cache = tmp.path().join("cache");
    let limited = |args: &str| {
        let cmd = format!(
            "ulimit -v 4000000 && exec '{}' {args}",
            env!("CARGO_BIN_EXE_tlearn")
        );
        let mut c = Command::new("sh");
        c.args(["-c", &cmd]).env("CI", "1");
        c
    };
    let o = within(
        &mut limited(&format!(
            "extract --quiet --model pixels8 '{}' --out '{}'",
            data.display(),
            cache.display()
        )),
        Duration::from_secs(60),
    );
    ok(o);
    let s = read_json(&cache.join("summary.json"));
    assert_eq!(s["rows"], 9, "{s}");
    let reasons = skipped_reasons(&s);
    let reason = |p: &str| {
        reasons
            .iter()
            .find(|(q, _)| q == p)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("{p} not skipped: {reasons:?}"))
    };
    assert_eq!(
        reason("cat/pipe.png"),
        "not a regular file (a named pipe (FIFO)); not read"
    );
    assert_eq!(
        reason("dog/z.png"),
        "not a regular file (a character device); not read"
    );
    assert!(
        reason("owl/big.jpg").starts_with("file too large: 300.0 MiB (over the 256.0 MiB limit"),
        "{}",
        reason("owl/big.jpg")
    );
    assert!(!cache.join("journal.bin").exists());
    // A cap above the file: it is read (and is not an image).
    ok(extract(
        &data,
        &cache,
        "pixels8",
        &["--max-file-size", "512MiB"],
    ));
    let s = read_json(&cache.join("summary.json"));
    assert!(
        skipped_reasons(&s)
            .iter()
            .any(|(p, r)| p == "owl/big.jpg" && r.contains("not an image")),
        "{s}"
    );
    // predict and show, given such paths, refuse them at once.
    let run = tmp.path().join("run");
    ok(train(&cache, &run, &[]));
    let head = run.join("head.json");
    let o = within(
        &mut limited(&format!(
            "predict --head '{}' '{}' '{}' '{}'",
            head.display(),
            fifo.display(),
            data.join("dog/z.png").display(),
            data.join("cat/img000.png").display()
        )),
        Duration::from_secs(60),
    );
    let err = stderr(&o);
    assert!(
        err.contains("pipe.png: cannot read") && err.contains("a named pipe (FIFO)"),
        "{err}"
    );
    assert!(
        err.contains("z.png: cannot read") && err.contains("a character device"),
        "{err}"
    );
    assert!(
        err.contains("2 of 3 images could not be classified"),
        "{err}"
    );
    let o = within(
        &mut limited(&format!("show '{}' --layer stage6", fifo.display())),
        Duration::from_secs(60),
    );
    assert!(
        !o.status.success() && stderr(&o).contains("not a regular file"),
        "{}",
        stderr(&o)
    );
}

/// `--threads 100000` on 24 images is capped (at most one per image and a few per core) with a
/// note, and the run is as quick as with the default.
#[test]
fn an_absurd_thread_count_is_capped_with_a_note() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    photo_set(&data, 0..24);
    let cache = tmp.path().join("cache");
    let o = within(
        &mut extract_cmd(&data, &cache, "pixels8", &["--threads", "100000"]),
        Duration::from_secs(60),
    );
    let err = stderr(&o);
    ok(o);
    assert!(
        err.contains("note: --threads 100000 is more than this run can use; using "),
        "{err}"
    );
    let s = read_json(&cache.join("summary.json"));
    let threads = s["threads"].as_u64().unwrap();
    let cores = std::thread::available_parallelism().unwrap().get() as u64;
    assert!(threads <= 24 && threads <= 4 * cores, "{s}");
    assert_eq!(s["rows"], 24);
}

/// A PNG declaring 19,000² RGB pixels (1.08 GB decoded) is under the side limit but over the
/// 512 MiB decoder allocation limit the README gives: skipped as too large, whatever the
/// memory budget, not decoded alone.
#[test]
fn an_image_over_the_allocation_limit_is_skipped_as_too_large() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    photo_set(&data, 0..6);
    fs::write(data.join("cat/huge.png"), png_header_only(19_000, 19_000)).unwrap();
    let cache = tmp.path().join("cache");
    ok(extract(
        &data,
        &cache,
        "pixels8",
        &["--decode-memory", "256MiB"],
    ));
    let s = read_json(&cache.join("summary.json"));
    let reasons = skipped_reasons(&s);
    assert!(
        reasons
            .iter()
            .any(|(p, r)| p == "cat/huge.png" && r.starts_with("image too large: a 19000×19000")),
        "{reasons:?}"
    );
}

/// PNG bytes whose header claims `w`×`h` RGB8 (valid chunk CRCs, an empty IDAT).
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        let crc = !body.iter().fold(0xffff_ffffu32, |mut c, &b| {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            c
        });
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(
        &mut png,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut png, b"IEND", &[]);
    png
}

// ---------------------------------------------------------------- train's --out

/// A second `train` on an `--out` being written waits for the first (held here by its lock),
/// and the lock holder removes what a `train` killed at start left there.
#[test]
fn train_runs_on_one_out_take_turns_and_clean_up_a_killed_runs_probe() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    photo_set(&data, 0..12);
    let cache = tmp.path().join("cache");
    ok(extract(&data, &cache, "pixels8", &[]));
    let run = tmp.path().join("run");
    fs::create_dir_all(&run).unwrap();
    let probe = run.join(".write-probe.Ab12Cd.tmp");
    fs::write(&probe, b"tlearn write probe\n").unwrap();
    let lock = fs::File::create(run.join(".lock")).unwrap();
    lock.lock().unwrap();
    let mut child = tlearn()
        .args(["train", "--head", "logistic", "--folds", "2"])
        .arg(&cache)
        .arg("--out")
        .arg(&run)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    assert!(
        first.starts_with(&format!("waiting: {} is being written by", run.display())),
        "{first}"
    );
    assert!(!run.join("head.json").exists());
    drop(lock);
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(run.join("head.json").exists() && run.join("cv.json").exists());
    assert!(!probe.exists(), "a killed run's probe file was left");
}

// ---------------------------------------------------------------- duplicates and messages

#[test]
fn duplicates_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    photo_set(&data, 0..12);
    let set = tmp.path().join("set");
    ok(extract(&data, &set, &tiny(), &SET));
    let o = train(&set, &tmp.path().join("run"), &["--cut", "flat+flat"]);
    assert!(
        !o.status.success() && stderr(&o).contains("--cut flat+flat: 'flat' is named twice"),
        "{}",
        stderr(&o)
    );
    // A head with a class twice, or a key twice.
    let run = tmp.path().join("run");
    ok(train(&set, &run, &["--cut", "flat"]));
    let text = fs::read_to_string(run.join("head.json")).unwrap();
    let head: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut twice = head.clone();
    twice["classes"][1] = twice["classes"][0].clone();
    let dup_key = text.replacen("\"classes\":", "\"classes\": [],\"classes\":", 1);
    for (what, bad, want) in [
        ("class", twice.to_string(), "class \"cat\" is listed twice"),
        ("key", dup_key, "duplicate key \"classes\""),
    ] {
        let p = tmp.path().join("bad.json");
        fs::write(&p, bad).unwrap();
        let o = tlearn()
            .args(["predict", "--head"])
            .arg(&p)
            .arg(data.join("cat/img000.png"))
            .output()
            .unwrap();
        assert!(
            o.status.code() == Some(1) && stderr(&o).contains(want),
            "{what}: {}",
            stderr(&o)
        );
    }
}

/// Options no candidate can use are refused before the cross-validation, naming themselves.
#[test]
fn bad_grids_are_refused_before_any_cv_naming_the_option() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    photo_set(&data, 0..12);
    let set = tmp.path().join("set");
    ok(extract(&data, &set, &tiny(), &SET));
    for (args, want) in [
        (&["--screen-c-grid", "0"][..], "--screen-c-grid must be"),
        (
            &["--gamma-grid=-1", "--head", "rbf-svm"],
            "--gamma-grid must be",
        ),
        (
            &["--linear-tol", "0", "--head", "linear-svm"],
            "--linear-tol must be",
        ),
    ] {
        let o = tlearn()
            .arg("train")
            .args(args)
            .args(["--folds", "2"])
            .arg(&set)
            .arg("--out")
            .arg(tmp.path().join("run"))
            .output()
            .unwrap();
        let err = stderr(&o);
        assert!(!o.status.success() && err.contains(want), "{args:?}: {err}");
        assert!(
            !err.contains("  cv "),
            "{args:?}: cross-validated first:\n{err}"
        );
    }
    // show has no --pool: a grid cut is refused with what to give instead.
    let img = data.join("cat/img000.png");
    let o = tlearn()
        .args(["show", "--layer", "stage6@2x2"])
        .arg(&img)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(
        !o.status.success() && err.contains("--layer stage6") && !err.contains("--pool"),
        "{err}"
    );
}
