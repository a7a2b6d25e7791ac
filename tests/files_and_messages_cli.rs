//! Files and messages, through the real `tlearn` binary with the raw-pixels
//! backbone on generated photos (and the tiny real CNN of tlearn-extract's tests for
//! `--mean`/`--std`): what an input error leaves behind, stale temp files, a full disk, an
//! unwritable `--out`, file names that are not UTF-8, hidden files, one file in two classes, two
//! processes on one cache.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{ok, picture, read_json, repo, tlearn};

/// `n` generated photos over two classes.
fn photo_set(dir: &Path, n: u32) {
    for i in 0..n {
        let p = dir
            .join(["cat", "dog"][i as usize % 2])
            .join(format!("{i:02}.png"));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        picture(48 + i, 40, i).save(&p).unwrap();
    }
}

fn extract(data: &Path, out: &Path, model: &str, extra: &[&str]) -> Output {
    tlearn()
        .args(["extract", "--quiet", "--model", model])
        .args(extra)
        .arg(data)
        .arg("--out")
        .arg(out)
        .env("CI", "1")
        .output()
        .expect("spawn tlearn")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn an_input_error_leaves_no_folder_journal_or_lock_behind() {
    let tmp = tempfile::tempdir().unwrap();
    // No images at all: refused before anything is created.
    let empty = tmp.path().join("empty");
    fs::create_dir_all(empty.join("cat")).unwrap();
    let out = tmp.path().join("c1");
    let o = extract(&empty, &out, "pixels8", &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no image files under"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists(), "left behind: {:?}", names(&out));

    // Only bad files: the run reads them all, writes nothing, and removes what it made.
    let bad = tmp.path().join("bad");
    fs::create_dir_all(bad.join("cat")).unwrap();
    fs::write(bad.join("cat/a.jpg"), b"not a jpeg").unwrap();
    fs::write(bad.join("cat/b.png"), b"").unwrap();
    let o = extract(&bad, &out, "pixels8", &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no image of"), "{}", stderr(&o));
    assert!(!out.exists(), "left behind: {:?}", names(&out));

    // The same into an existing cache: the cache is untouched and no journal is left.
    let good = tmp.path().join("good");
    photo_set(&good, 4);
    ok(extract(&good, &out, "pixels8", &[]));
    let before = fs::read(out.join("features.npy")).unwrap();
    let o = extract(&bad, &out, "pixels8", &[]);
    assert!(!o.status.success());
    assert_eq!(fs::read(out.join("features.npy")).unwrap(), before);
    assert!(!out.join("journal.bin").exists(), "{:?}", names(&out));
}

#[test]
fn temp_files_of_a_killed_write_are_removed_by_the_next_extract() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    photo_set(&data, 4);
    let out = tmp.path().join("cache");
    ok(extract(&data, &out, "pixels8", &[]));
    // What writers killed between writing and renaming leave: this version's unique names,
    // and an older version's fixed names. Another program's temp file stays.
    let stale = [
        ".features.npy.Ab12Cd.tmp",
        ".meta.json.x9Y8z7.tmp",
        ".summary.json.000000.tmp",
        "index.csv.tmp",
    ];
    for s in stale {
        fs::write(out.join(s), b"half a file").unwrap();
    }
    fs::write(out.join(".notes.txt.abcdef.tmp"), b"not ours").unwrap();
    let o = ok(extract(&data, &out, "pixels8", &[]));
    let left = names(&out);
    for s in stale {
        assert!(!left.contains(&s.to_string()), "{s} left: {left:?}");
    }
    assert!(
        left.contains(&".notes.txt.abcdef.tmp".to_string()),
        "{left:?}"
    );
    assert!(stderr(&o).contains("4 unchanged"), "{}", stderr(&o));
}

#[test]
fn train_refuses_an_unwritable_out_before_cross_validation() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    photo_set(&data, 12);
    let cache = tmp.path().join("cache");
    ok(extract(&data, &cache, "pixels8", &[]));
    // A path below a regular file cannot be created, not even by root.
    let file = tmp.path().join("a-file");
    fs::write(&file, b"x").unwrap();
    let run = file.join("run");
    let o = tlearn()
        .args(["train", "--head", "logistic", "--folds", "2"])
        .arg(&cache)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(&format!("--out {} is not writable", run.display())),
        "{err}"
    );
    assert!(!err.contains("cv "), "cross-validation ran first:\n{err}");
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // A writable --out gets no probe file left in it.
    let run = tmp.path().join("run");
    let o = tlearn()
        .args(["train", "--head", "logistic", "--folds", "2"])
        .arg(&cache)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    ok(o);
    assert_eq!(names(&run), [".lock", "cv.json", "head.json"]);
}

#[test]
fn mean_and_std_read_as_printed_by_help_or_with_commas() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    photo_set(&data, 4);
    let tiny = repo().join("crates/tlearn-extract/tests/data/tiny.onnx");
    let tiny = tiny.to_str().unwrap();
    let common = ["--layer", "flat", "--crop", "32"];
    let spaced = tmp.path().join("spaced");
    let commas = tmp.path().join("commas");
    let default = tmp.path().join("default");
    let spaced_args = [
        "--mean", "0.5", "0.5", "0.5", "--std", "0.25", "0.25", "0.25",
    ];
    ok(extract(
        &data,
        &spaced,
        tiny,
        &[&common[..], &spaced_args].concat(),
    ));
    let comma_args = ["--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25"];
    ok(extract(
        &data,
        &commas,
        tiny,
        &[&common[..], &comma_args].concat(),
    ));
    ok(extract(&data, &default, tiny, &common));
    let npy = |d: &PathBuf| fs::read(d.join("features.npy")).unwrap();
    assert_eq!(npy(&spaced), npy(&commas));
    assert_ne!(npy(&spaced), npy(&default), "--mean/--std were not applied");
    let meta = read_json(&spaced.join("meta.json"));
    assert_eq!(
        meta["extractor"]["preprocess"]["std"],
        serde_json::json!([0.25, 0.25, 0.25])
    );
    // What --help shows is a form that parses.
    let help = tlearn().args(["extract", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("[default: 0.485,0.456,0.406]"), "{help}");
    // Two numbers are refused, saying what is expected.
    let o = extract(
        &data,
        &tmp.path().join("x"),
        tiny,
        &["--mean", "0.5,0.5", "--layer", "flat"],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--mean needs 3 values"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn odd_names_hidden_files_and_one_file_in_two_classes_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    photo_set(&data, 6);
    // A Latin-1 name from an old camera or archive: not UTF-8.
    let latin1 = data.join("cat").join(OsStr::from_bytes(b"caf\xe9.png"));
    picture(30, 30, 9)
        .save_with_format(&latin1, image::ImageFormat::Png)
        .unwrap();
    fs::write(data.join("cat/.DS_Store"), b"\0\0\0\x01Bud1").unwrap();
    fs::create_dir_all(data.join("dog/.thumbnails")).unwrap();
    fs::write(data.join("dog/.thumbnails/00.png"), b"x").unwrap();
    fs::write(data.join("dog/Thumbs.db"), b"\xd0\xcf\x11\xe0").unwrap();
    // The same photo filed under both classes.
    fs::copy(data.join("cat/00.png"), data.join("dog/copy-of-00.png")).unwrap();
    let out = tmp.path().join("cache");
    let o = ok(extract(&data, &out, "pixels8", &[]));
    let err = stderr(&o);

    let skipped = fs::read_to_string(out.join("skipped.csv")).unwrap();
    assert!(
        skipped.contains(r"cat/caf\xe9.png,file name is not valid UTF-8 (bytes shown as \xNN)"),
        "{skipped}"
    );
    assert!(skipped.contains("cat/.DS_Store,hidden file"), "{skipped}");
    assert!(
        skipped.contains("dog/.thumbnails,hidden folder (not read)"),
        "{skipped}"
    );
    assert!(skipped.contains("dog/Thumbs.db,not an image"), "{skipped}");
    assert!(
        err.contains(r"cat/caf\xe9.png: file name is not valid UTF-8"),
        "{err}"
    );
    // Relative to the data set, as every other row.
    assert!(!skipped.contains(&data.display().to_string()), "{skipped}");

    let s = read_json(&out.join("summary.json"));
    assert_eq!(
        s["cross_class_duplicates"][0]["paths"],
        serde_json::json!(["cat/00.png", "dog/copy-of-00.png"])
    );
    assert_eq!(s["cross_class_duplicates"].as_array().unwrap().len(), 1);
    assert!(
        err.contains("is in more than one class: cat/00.png, dog/copy-of-00.png"),
        "{err}"
    );
}

/// Mounts a tmpfs of `size` at `dir` (root only); unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(st.success(), "mount -t tmpfs failed: this test needs root");
        Tmpfs(dir.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let st = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
#[ignore = "mounts a 1 MiB tmpfs: needs root (make test runs as root, as CI does)"]
fn a_full_disk_names_the_file_once_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    photo_set(&data, 14);
    let disk = Tmpfs::mount(&tmp.path().join("disk"), "1M");
    let out = disk.0.join("cache");
    // 14 rows × 12,288 floats: the journal (690 KB) fits, features.npy beside it does not.
    let o = extract(&data, &out, "pixels-rgb64", &[]);
    assert!(!o.status.success());
    let err = stderr(&o);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].contains(&out.join("features.npy").display().to_string())
            && errors[0].contains("No space left on device"),
        "{err}"
    );
    assert_eq!(err.matches("No space left").count(), 1, "{err}");
    // No temp file, no half-written cache; the journal holds the work done.
    assert_eq!(names(&out), [".lock", "journal.bin"]);
    // With room again the next run resumes every vector from the journal.
    disk.resize("4M");
    let o = ok(extract(&data, &out, "pixels-rgb64", &[]));
    assert!(
        stderr(&o).contains("(0 new, 0 unchanged, 14 resumed"),
        "{}",
        stderr(&o)
    );
    assert!(!out.join("journal.bin").exists());
}

/// Two `tlearn extract` processes on one `--out` (across processes): the
/// second says who holds the cache and waits, then finds every image already there; both exit
/// 0 and the cache holds each image once.
#[test]
fn a_second_extract_on_the_same_out_waits_for_the_first_process() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Large enough pictures, one thread: the first run takes seconds, not milliseconds.
    for i in 0..60u32 {
        let p = data
            .join(["cat", "dog"][i as usize % 2])
            .join(format!("{i:02}.png"));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        picture(1400 + i, 1200, i).save(&p).unwrap();
    }
    let out = tmp.path().join("cache");
    let spawn = || {
        tlearn()
            .args(["extract", "--quiet", "--model", "pixels", "--threads", "1"])
            .arg(&data)
            .arg("--out")
            .arg(&out)
            .env("CI", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn tlearn")
    };
    let first = spawn();
    // The journal appears once the first run holds the lock.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !out.join("journal.bin").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first extract never started its journal"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let second = spawn();
    let first_pid = first.id();
    let a = first.wait_with_output().unwrap();
    let b = second.wait_with_output().unwrap();
    let (ea, eb) = (stderr(&a), stderr(&b));
    assert!(a.status.success(), "first run failed:\n{ea}");
    assert!(b.status.success(), "second run failed:\n{eb}");
    assert!(
        eb.contains(&format!(
            "waiting: cache {} is being written by tlearn pid {first_pid}",
            out.display()
        )),
        "the second run did not say it waits for the first:\n{eb}"
    );
    // The second run's summary (written last) reuses all 60 rows and encodes none.
    let s = read_json(&out.join("summary.json"));
    assert_eq!(s["rows"], 60, "{s}");
    assert_eq!(s["extracted"], 0, "the second run encoded again: {s}");
    assert_eq!(s["reused"], 60, "{s}");
    // The journal is folded into the cache; the lock file stays (a free flock, by design).
    assert!(!out.join("journal.bin").exists());
}
