//! The cache format end to end: write → read, atomic writes, by-value fingerprint comparison,
//! damaged files, the resume journal.

use std::fs;
use std::path::Path;

use tlearn_cache::journal::{read_journal, JournalWriter};
use tlearn_cache::*;

fn fp() -> Fingerprint {
    tlearn_cache::testing::fingerprint("efficientnet-lite0", "00")
}

fn sample(dir: &Path) -> (Meta, Vec<IndexRow>, Vec<f32>, Vec<SkipRow>) {
    let classes = vec!["a, \"quoted\"".to_string(), "b".to_string()];
    let meta = Meta::new("/d", 2, 2, classes, fp(), "2026-01-01T00:00:00Z");
    let index = vec![
        IndexRow {
            path: "a, \"quoted\"/x.png".into(),
            label: "a, \"quoted\"".into(),
            sha256: "11".into(),
        },
        IndexRow {
            path: "b/y.png".into(),
            label: "b".into(),
            sha256: "22".into(),
        },
    ];
    let skipped = vec![SkipRow {
        path: "b/z.jpg".into(),
        reason: "empty file (0 bytes)".into(),
    }];
    let features = vec![1.0, 2.0, 3.0, 4.0];
    write(dir, &meta, &index, &features, &skipped).unwrap();
    (meta, index, features, skipped)
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn write_read_round_trip_in_numpy_layout_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, index, features, skipped) = sample(dir.path());
    let back = FeatureCache::load(dir.path()).unwrap();
    assert_eq!(back.meta, meta);
    assert_eq!(back.x.as_slice().unwrap(), &features[..]);
    assert_eq!(back.row(1), &[3.0, 4.0]);
    assert_eq!(back.skipped, skipped);
    assert_eq!(back.y, vec![0, 1]);
    for (i, r) in index.iter().enumerate() {
        assert_eq!(&back.index_row(i), r);
    }
    assert_eq!(
        names(dir.path()),
        ["features.npy", "index.csv", "meta.json", "skipped.csv"]
    );
    // numpy's header: little-endian float32, C order, shape (2, 2).
    let raw = fs::read(dir.path().join("features.npy")).unwrap();
    let head = String::from_utf8_lossy(&raw[..80]);
    assert!(
        head.contains("'descr': '<f4'") && head.contains("(2, 2)"),
        "{head}"
    );
    let idx = fs::read_to_string(dir.path().join("index.csv")).unwrap();
    assert!(
        idx.starts_with("path,label,sha256\n\"a, \"\"quoted\"\"/x.png\""),
        "{idx}"
    );
    // Rewriting replaces every file and still leaves no temp file behind.
    sample(dir.path());
    assert_eq!(names(dir.path()).len(), 4, "{:?}", names(dir.path()));
}

#[test]
fn atomic_write_replaces_the_file_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("head.json");
    write_atomic_bytes(&p, b"old").unwrap();
    write_atomic_bytes(&p, b"new").unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"new");
    // A writer that fails leaves the old file and no temp file.
    let err = write_atomic(&p, |w| {
        w.write_all(b"half")?;
        Err("disk on fire".into())
    })
    .unwrap_err();
    assert!(err.to_string().contains("head.json"), "{err}");
    assert!(err.to_string().contains("disk on fire"), "{err}");
    assert_eq!(fs::read(&p).unwrap(), b"new");
    assert_eq!(names(dir.path()), ["head.json"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }
}

/// Rewrite every integer-valued float as an integer and re-indent, as `jq .` does.
fn jq_like(text: &str) -> String {
    fn ints(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Number(n) => {
                if let Some(f) = n.as_f64() {
                    if f.fract() == 0.0 && n.is_f64() {
                        *v = serde_json::json!(f as i64);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(ints),
            serde_json::Value::Object(o) => o.values_mut().for_each(ints),
            _ => {}
        }
    }
    let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
    ints(&mut v);
    serde_json::to_string_pretty(&v).unwrap()
}

#[test]
fn fingerprints_compare_by_value_in_a_rewritten_meta_json() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let meta_path = dir.path().join("meta.json");
    let text = fs::read_to_string(&meta_path).unwrap();
    assert!(text.contains("127.0"), "{text}");
    let rewritten = jq_like(&text);
    assert!(!rewritten.contains("127.0") && rewritten.contains("127"));
    fs::write(&meta_path, rewritten).unwrap();
    let back = FeatureCache::load(dir.path()).unwrap();
    assert_eq!(back.meta.extractor, fp());
    assert_eq!(back.meta.extractor.compare(&fp(), "head", "cache"), None);
    // Compact (one line) is the same value too.
    let compact: Fingerprint =
        serde_json::from_str(&serde_json::to_string(&fp()).unwrap()).unwrap();
    assert_eq!(compact.compare(&fp(), "head", "cache"), None);
}

#[test]
fn a_real_difference_is_refused_naming_the_field() {
    let mut other = fp();
    other.preprocess.mean = [0.485, 0.5, 0.406];
    other.layer = "stem".into();
    let d = fp().compare(&other, "head", "cache").unwrap();
    let text = d.to_string();
    assert!(
        text.contains("extractor.preprocess.mean[1]: head has 127.0, cache has 0.5"),
        "{text}"
    );
    assert!(
        text.contains("extractor.layer: head has \"features\", cache has \"stem\""),
        "{text}"
    );
    assert_eq!(d.fields.len(), 4, "{text}"); // layer + mean[0..3]
}

#[test]
fn a_decode_mode_difference_is_named_full_against_reduced() {
    let mut reduced = fp();
    reduced.preprocess.decode = DecodeMode::Reduced;
    let d = fp().compare(&reduced, "cache", "this run").unwrap();
    assert_eq!(
        d.to_string(),
        "extractor.preprocess.decode: cache has \"full\", this run has \"reduced\""
    );
}

#[test]
fn the_existing_fingerprint_is_the_caches_else_an_unfinished_runs_journals() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(existing_fingerprint(dir.path()), None);
    let mut reduced = fp();
    reduced.preprocess.decode = DecodeMode::Reduced;
    // A killed first run: only its journal tells what it was extracting.
    drop(JournalWriter::open(dir.path(), &reduced).unwrap());
    assert_eq!(existing_fingerprint(dir.path()), Some(reduced.clone()));
    // A finished cache (full decode, written before the decode field existed) wins.
    sample(dir.path());
    let meta = fs::read_to_string(dir.path().join(META_FILE)).unwrap();
    assert!(!meta.contains("decode"), "{meta}");
    assert_eq!(existing_fingerprint(dir.path()), Some(fp()));
    // A damaged meta.json gives no fingerprint (the reader reports it); a damaged journal
    // header neither.
    fs::write(dir.path().join(META_FILE), "{").unwrap();
    fs::write(dir.path().join(JOURNAL_FILE), "not json\n").unwrap();
    assert_eq!(existing_fingerprint(dir.path()), None);
}

#[test]
fn damaged_files_are_errors_naming_the_file() {
    let make = || {
        let dir = tempfile::tempdir().unwrap();
        sample(dir.path());
        dir
    };
    let expect = |dir: &Path, file: &str, what: &str| {
        let e = FeatureCache::load(dir).unwrap_err().to_string();
        assert!(e.contains(&*dir.join(file).to_string_lossy()), "{e}");
        assert!(e.contains(what), "{e}");
    };
    // Truncated features.npy.
    let d = make();
    let p = d.path().join("features.npy");
    let raw = fs::read(&p).unwrap();
    fs::write(&p, &raw[..raw.len() - 3]).unwrap();
    expect(d.path(), "features.npy", "float32");
    // Garbage meta.json.
    let d = make();
    fs::write(d.path().join("meta.json"), "{\"format\": \"tlearn-feat").unwrap();
    expect(d.path(), "meta.json", "not valid JSON");
    // Another format / version.
    let d = make();
    let p = d.path().join("meta.json");
    let t = fs::read_to_string(&p).unwrap();
    fs::write(&p, t.replace("\"version\": 1", "\"version\": 7")).unwrap();
    expect(d.path(), "meta.json", "version 7 is not supported");
    // An index with a row missing.
    let d = make();
    let p = d.path().join("index.csv");
    let t = fs::read_to_string(&p).unwrap();
    fs::write(&p, t.lines().take(2).collect::<Vec<_>>().join("\n") + "\n").unwrap();
    expect(d.path(), "index.csv", "1 rows");
    // A label that is not a class.
    let d = make();
    let p = d.path().join("index.csv");
    let t = fs::read_to_string(&p).unwrap();
    fs::write(&p, t.replace("b/y.png,b,", "b/y.png,c,")).unwrap();
    expect(d.path(), "index.csv", "label \"c\"");
    // meta.json disagreeing with the matrix.
    let d = make();
    let p = d.path().join("meta.json");
    let t = fs::read_to_string(&p).unwrap();
    fs::write(&p, t.replace("\"dim\": 2", "\"dim\": 3")).unwrap();
    expect(d.path(), "features.npy", "dim=3");
    // No meta.json: `read` says "no cache", `load` says what is missing.
    let d = make();
    fs::remove_file(d.path().join("meta.json")).unwrap();
    assert!(FeatureCache::read(d.path()).unwrap().is_none());
    expect(d.path(), "meta.json", "missing");
}

#[test]
fn non_finite_rows_are_named_with_the_repair_command() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, index, _, skipped) = sample(dir.path());
    write(
        dir.path(),
        &meta,
        &index,
        &[1.0, 2.0, f32::NAN, 4.0],
        &skipped,
    )
    .unwrap();
    let read = FeatureCache::read(dir.path()).unwrap().unwrap();
    assert_eq!(read.non_finite, vec![1]);
    let e = FeatureCache::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("features.npy"), "{e}");
    assert!(e.contains("row 1 (b/y.png)"), "{e}");
    assert!(e.contains("tlearn extract /d --out"), "{e}");
}

#[test]
fn journal_survives_a_torn_record_and_ignores_other_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let f = fp();
    let mut j = JournalWriter::open(dir.path(), &f).unwrap();
    j.append("a/1.png", "aa", &[1.0, 2.0]).unwrap();
    j.append("a/2.png", "bb", &[3.0, 4.0]).unwrap();
    j.flush().unwrap();
    drop(j);
    // Tear the last record.
    let p = dir.path().join(JOURNAL_FILE);
    let len = fs::metadata(&p).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let got = read_journal(dir.path(), &f).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[&("a/1.png".into(), "aa".into())], vec![1.0, 2.0]);
    let mut other = fp();
    other.augment = Augment::Flip;
    assert!(read_journal(dir.path(), &other).unwrap().is_empty());
    // Re-opening drops the torn record, so records appended now are readable.
    let mut j = JournalWriter::open(dir.path(), &f).unwrap();
    j.append("a/3.png", "cc", &[5.0, 6.0]).unwrap();
    j.flush().unwrap();
    let got = read_journal(dir.path(), &f).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[&("a/3.png".into(), "cc".into())], vec![5.0, 6.0]);
    // Another fingerprint starts a fresh journal.
    drop(JournalWriter::open(dir.path(), &other).unwrap());
    assert!(read_journal(dir.path(), &f).unwrap().is_empty());
}

#[test]
fn names_round_trip() {
    for (a, s) in [
        (Augment::None, "none"),
        (Augment::Flip, "flip"),
        (Augment::Crops5, "crops5"),
        (Augment::Crops10, "crops10"),
    ] {
        assert_eq!(s.parse::<Augment>().unwrap(), a);
        assert_eq!(serde_json::to_value(a).unwrap(), s);
    }
    assert!("rotate".parse::<Augment>().is_err());
    assert_eq!("mean".parse::<Pooling>().unwrap(), Pooling::Avg);
}

#[test]
fn one_writer_at_a_time_and_readers_are_told_a_cache_is_being_written() {
    let dir = tempfile::tempdir().unwrap();
    let held = CacheLock::try_acquire(dir.path()).unwrap();
    // A second lock (another open file description: as another process would) is refused,
    // naming the holder.
    let e = CacheLock::try_acquire(dir.path()).unwrap_err().to_string();
    let me = format!("pid {}", std::process::id());
    assert!(
        e.contains("is being written by tlearn") && e.contains(&me),
        "{e}"
    );
    assert!(CacheLock::holder(dir.path()).unwrap().contains(&me));
    // A reader of a directory whose first cache is being written: a clear message.
    let e = FeatureCache::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("being written by tlearn"), "{e}");
    drop(held);
    assert_eq!(CacheLock::holder(dir.path()), None);
    // A lock file left by a dead process (its OS lock is gone) is taken over.
    fs::write(
        dir.path().join(".lock"),
        "tlearn pid 999999 (since unix time 0)\n",
    )
    .unwrap();
    let again = CacheLock::try_acquire(dir.path()).unwrap();
    let text = fs::read_to_string(again.path()).unwrap();
    assert!(text.contains(&me), "{text}");
    // `acquire` waits for the holder: released from another thread after a moment.
    drop(again);
    let held = CacheLock::try_acquire(dir.path()).unwrap();
    let path = dir.path().to_path_buf();
    let waiter = std::thread::spawn(move || {
        let mut told = String::new();
        let l = CacheLock::acquire(&path, |h| told = h.to_owned()).unwrap();
        drop(l);
        told
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    drop(held);
    assert!(waiter.join().unwrap().contains(&me));
}

#[test]
fn a_cache_replaced_while_it_is_read_is_reported_not_mixed() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    // A writer that has retired meta.json but not yet renamed the new one in.
    fs::remove_file(dir.path().join("meta.json")).unwrap();
    let _held = CacheLock::try_acquire(dir.path()).unwrap();
    let e = FeatureCache::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("being written"), "{e}");
}
