//! What ties a row of `index.csv` to its vector and its class, and what keeps a cut set whole:
//! rows out of path order or repeated are refused by `load` and listed by `read` (only rows
//! whose vector is proven to be theirs are kept, whatever was reordered); a cut set stays whole
//! when its update fails; the next writer removes every cut's stale temp files; the lock file is
//! never followed; duplicates and cuts that are not the set's are refused by name.

use std::fs;
use std::path::Path;

use proptest::prelude::*;
use tlearn_cache::set::{cut_dir_name, read_joined, resolve, write_split, CutEntry, CutSet};
use tlearn_cache::*;

fn fp(layer: &str) -> Fingerprint {
    let mut f = tlearn_cache::testing::fingerprint("efficientnet-lite0", "00");
    f.layer = layer.into();
    f
}

/// A cache of `n` rows in classes `a`, `b`, `c` (row i: `[i, -i]`), as the writer puts it.
fn cache(dir: &Path, n: usize) -> Vec<IndexRow> {
    let index: Vec<IndexRow> = (0..n)
        .map(|i| {
            let class = ["a", "b", "c"][i * 3 / n.max(1)];
            IndexRow {
                path: format!("{class}/{i:03}.png"),
                label: class.into(),
                sha256: format!("{i:064x}"),
            }
        })
        .collect();
    let mut classes: Vec<String> = index.iter().map(|r| r.label.clone()).collect();
    classes.dedup();
    let meta = Meta::new("/d", 2, n, classes, fp("features"), "2026-01-01T00:00:00Z");
    let x: Vec<f32> = (0..n).flat_map(|i| [i as f32, -(i as f32)]).collect();
    write(dir, &meta, &index, &x, &[]).unwrap();
    index
}

fn write_index(dir: &Path, rows: &[IndexRow]) {
    let mut text = String::from("path,label,sha256\n");
    for r in rows {
        text += &format!("{},{},{}\n", r.path, r.label, r.sha256);
    }
    fs::write(dir.join(INDEX_FILE), text).unwrap();
}

#[test]
fn rows_out_of_path_order_or_repeated_are_refused_naming_the_first_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let index = cache(dir.path(), 6);
    // Two rows swapped (what a sort by another column, or a hand edit, does).
    let mut swapped = index.clone();
    swapped.swap(1, 3);
    write_index(dir.path(), &swapped);
    let e = FeatureCache::load(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("index.csv: line 4 (b/002.png) comes before line 3 (b/003.png)")
            && e.contains("2 of 6 rows cannot be matched")
            && e.contains("tlearn extract /d --out"),
        "{e}"
    );
    let read = FeatureCache::read(dir.path()).unwrap().unwrap();
    assert_eq!(read.misplaced, vec![1, 3]);
    // One row copied over the next.
    let mut repeated = index.clone();
    repeated[4] = repeated[3].clone();
    write_index(dir.path(), &repeated);
    let e = FeatureCache::load(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("line 6 (b/003.png) names the same image as line 5"),
        "{e}"
    );
    assert_eq!(
        FeatureCache::read(dir.path()).unwrap().unwrap().misplaced,
        vec![3, 4]
    );
    // A label that is not the class folder of its path.
    let mut relabelled = index.clone();
    relabelled[1].label = "b".into();
    write_index(dir.path(), &relabelled);
    let e = FeatureCache::load(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("line 3 (a/001.png) has label \"b\", but its class folder is \"a\""),
        "{e}"
    );
    // The index as written loads.
    write_index(dir.path(), &index);
    assert_eq!(FeatureCache::load(dir.path()).unwrap().rows(), 6);
}

#[test]
fn the_writer_refuses_an_index_the_reader_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let index = cache(dir.path(), 4);
    let meta = FeatureCache::load(dir.path()).unwrap().meta;
    let mut swapped = index.clone();
    swapped.swap(0, 1);
    let e = write(dir.path(), &meta, &swapped, &[0.0; 8], &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("index row 1 (a/000.png) is not after"), "{e}");
    let mut relabelled = index.clone();
    relabelled[3].label = "a".into();
    let e = write(dir.path(), &meta, &relabelled, &[0.0; 8], &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("label other than its class folder"), "{e}");
}

/// Rows of `index.csv` (and, with `both`, of `features.npy` alike) permuted by `perm`, or with
/// row `dup.1` overwritten by a copy of row `dup.0`.
#[derive(Debug, Clone)]
enum Mutation {
    Permute { perm: Vec<usize>, both: bool },
    Duplicate { from: usize, to: usize },
}

fn mutation() -> impl Strategy<Value = (usize, Mutation)> {
    (2usize..30).prop_flat_map(|n| {
        let permute = (
            Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
            any::<bool>(),
        )
            .prop_map(|(perm, both)| Mutation::Permute { perm, both });
        let duplicate = (0..n, 0..n).prop_map(|(from, to)| Mutation::Duplicate { from, to });
        (Just(n), prop_oneof![permute, duplicate])
    })
}

/// `PROPTEST_CASES`, else `default` (each case writes a cache with fsyncs).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(64)))]
    /// Whatever was reordered or repeated: `load` refuses it unless the rows are as written,
    /// and every row `read` does not list as misplaced holds its own image's vector, whether
    /// `index.csv` alone or both files were reordered.
    #[test]
    fn permuted_or_duplicated_rows_are_refused_and_never_mismatched((n, m) in mutation()) {
        let dir = tempfile::tempdir().unwrap();
        let index = cache(dir.path(), n);
        let original_row = |path: &str| index.iter().position(|r| r.path == path).unwrap();
        let (rows, x_order): (Vec<IndexRow>, Vec<usize>) = match &m {
            Mutation::Permute { perm, both } => (
                perm.iter().map(|&i| index[i].clone()).collect(),
                if *both { perm.clone() } else { (0..n).collect() },
            ),
            Mutation::Duplicate { from, to } => {
                let mut rows = index.clone();
                rows[*to] = rows[*from].clone();
                (rows, (0..n).collect())
            }
        };
        write_index(dir.path(), &rows);
        if x_order.iter().enumerate().any(|(i, &j)| i != j) {
            let x: Vec<f32> = x_order.iter().flat_map(|&i| [i as f32, -(i as f32)]).collect();
            let arr = ndarray::Array2::from_shape_vec((n, 2), x).unwrap();
            let mut f = fs::File::create(dir.path().join(FEATURES_FILE)).unwrap();
            ndarray_npy::WriteNpyExt::write_npy(&arr, &mut f).unwrap();
        }
        let unchanged = rows == index;
        let loaded = FeatureCache::load(dir.path());
        prop_assert_eq!(loaded.is_ok(), unchanged, "{:?}", loaded.err());
        if let Err(e) = loaded {
            let e = e.to_string();
            prop_assert!(e.contains("index.csv: line ") && e.contains("path order"), "{}", e);
        }
        let read = FeatureCache::read(dir.path()).unwrap().unwrap();
        prop_assert_eq!(read.misplaced.is_empty(), unchanged);
        for i in (0..n).filter(|i| !read.misplaced.contains(i)) {
            let want = original_row(&read.paths[i]) as f32;
            prop_assert_eq!(read.row(i), &[want, -want][..], "row {} ({})", i, &read.paths[i]);
        }
    }
}

// ---------------------------------------------------------------- cut sets

fn set_of(cuts: &[(&str, usize)]) -> CutSet {
    CutSet::new(
        "efficientnet-lite0",
        "/d",
        cuts.iter()
            .map(|&(n, d)| CutEntry {
                name: n.into(),
                dir: cut_dir_name(n),
                dim: d,
            })
            .collect(),
    )
}

/// Write the set `cuts` over the rows of `index` (row i: `[i + shift; dim]`).
fn write_set_rows(
    dir: &Path,
    cuts: &[(&str, usize)],
    index: &[IndexRow],
    shift: f32,
) -> Result<(), CacheError> {
    let set = set_of(cuts);
    let dim: usize = cuts.iter().map(|c| c.1).sum();
    let names: Vec<&str> = cuts.iter().map(|c| c.0).collect();
    let mut classes: Vec<String> = index.iter().map(|r| r.label.clone()).collect();
    classes.dedup();
    let meta = Meta::new(
        "/d",
        dim,
        index.len(),
        classes,
        fp(&tlearn_cache::set::set_layer(&names)),
        "now",
    );
    let x: Vec<f32> = (0..index.len())
        .flat_map(|i| vec![i as f32 + shift; dim])
        .collect();
    write_split(dir, &set, &meta, index, &x, None, &[])
}

fn rows(n: usize) -> Vec<IndexRow> {
    (0..n)
        .map(|i| IndexRow {
            path: format!("{}/{i}.png", ["k", "m"][i % 2]),
            label: ["k", "m"][i % 2].into(),
            sha256: format!("{i:064x}"),
        })
        .map(|r| (r.path.clone(), r))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_values()
        .collect()
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

#[test]
fn a_set_update_that_fails_leaves_the_old_set_whole() {
    let dir = tempfile::tempdir().unwrap();
    let old_rows = rows(4);
    write_set_rows(dir.path(), &[("a", 2), ("b", 1)], &old_rows, 0.0).unwrap();
    let before = read_joined(dir.path()).unwrap().unwrap();
    let files = tree(dir.path());
    // The new set's second cut cannot be written (its directory is taken by a file): the write
    // fails after the first cut's files were written.
    fs::write(dir.path().join("c"), b"in the way").unwrap();
    let e = write_set_rows(dir.path(), &[("a", 2), ("c", 1)], &rows(6), 10.0).unwrap_err();
    assert!(e.to_string().contains("c"), "{e}");
    fs::remove_file(dir.path().join("c")).unwrap();
    // The old set reads as before, every cut of it, and no temp file is left.
    assert_eq!(tree(dir.path()), files);
    let after = read_joined(dir.path()).unwrap().unwrap();
    assert_eq!(after.x, before.x);
    assert_eq!(after.paths, before.paths);
    assert_eq!(resolve(dir.path()).unwrap().len(), 2);
    for c in ["a", "b"] {
        assert_eq!(
            FeatureCache::load(&dir.path().join(c)).unwrap().rows(),
            4,
            "{c}"
        );
    }
    // A successful update replaces it, cut c in, cut b retired.
    write_set_rows(dir.path(), &[("a", 2), ("c", 1)], &rows(6), 10.0).unwrap();
    let names: Vec<String> = resolve(dir.path())
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["a", "c"]);
    assert!(!dir.path().join("b").exists());
    assert_eq!(read_joined(dir.path()).unwrap().unwrap().row(5), &[15.0; 3]);
    assert!(!tree(dir.path()).iter().any(|f| f.ends_with(".tmp")));
}

#[test]
fn the_next_writer_removes_stale_temp_files_of_every_cut() {
    let dir = tempfile::tempdir().unwrap();
    write_set_rows(dir.path(), &[("a", 2), ("b/x", 1)], &rows(4), 0.0).unwrap();
    let bx = cut_dir_name("b/x");
    // What writers killed before their renames leave, and files that are not theirs.
    let stale = [
        "a/.features.npy.Ab12Cd.tmp".to_string(),
        format!("{bx}/.meta.json.zz99ZZ.tmp"),
        format!("{bx}/.views.npy.q1w2e3.tmp"),
        ".cuts.json.a1b2c3.tmp".to_string(),
    ];
    let kept = ["a/notes.txt", "a/.features.npy.tmp.bak"];
    for f in stale.iter().map(String::as_str).chain(kept) {
        fs::write(dir.path().join(f), b"x").unwrap();
    }
    drop(CacheLock::try_acquire(dir.path()).unwrap());
    for f in &stale {
        assert!(!dir.path().join(f).exists(), "{f} was left");
    }
    for f in kept {
        assert!(dir.path().join(f).exists(), "{f} was removed");
    }
    // A first multi-cut run killed before it wrote cuts.json: its journal names the cuts.
    let first = tempfile::tempdir().unwrap();
    drop(journal::JournalWriter::open(first.path(), &fp("p,q")).unwrap());
    fs::create_dir_all(first.path().join("q")).unwrap();
    fs::write(first.path().join("q/.index.csv.Zx81pQ.tmp"), b"x").unwrap();
    drop(CacheLock::try_acquire(first.path()).unwrap());
    assert!(!first.path().join("q/.index.csv.Zx81pQ.tmp").exists());
}

#[cfg(unix)]
#[test]
fn a_lock_file_that_is_a_link_or_not_a_file_is_refused_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("precious.txt");
    fs::write(&target, b"precious").unwrap();
    let cache = dir.path().join("cache");
    fs::create_dir_all(&cache).unwrap();
    std::os::unix::fs::symlink(&target, cache.join(".lock")).unwrap();
    let e = CacheLock::try_acquire(&cache).unwrap_err().to_string();
    assert!(e.contains(".lock") && e.contains("symbolic link"), "{e}");
    assert_eq!(fs::read(&target).unwrap(), b"precious");
    assert_eq!(CacheLock::holder(&cache), None);
    // A FIFO there is refused at once (opening it does not wait for a writer).
    let fifo_dir = dir.path().join("fifo");
    fs::create_dir_all(&fifo_dir).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(fifo_dir.join(".lock"))
        .status()
        .unwrap();
    assert!(made.success());
    let e = CacheLock::try_acquire(&fifo_dir).unwrap_err().to_string();
    assert!(e.contains("not a regular file"), "{e}");
    assert_eq!(CacheLock::holder(&fifo_dir), None);
}

#[test]
fn duplicates_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    write_set_rows(dir.path(), &[("a", 2), ("b", 1)], &rows(4), 0.0).unwrap();
    let manifest = fs::read_to_string(dir.path().join("cuts.json")).unwrap();
    // A cut listed twice.
    let twice = manifest.replace(
        "\"name\": \"b\",\n      \"dir\": \"b\"",
        "\"name\": \"a\",\n      \"dir\": \"a\"",
    );
    assert_ne!(twice, manifest);
    fs::write(dir.path().join("cuts.json"), &twice).unwrap();
    let e = resolve(dir.path()).unwrap_err().to_string();
    assert!(e.contains("lists cut 'a' twice"), "{e}");
    // A key given twice in cuts.json and in a meta.json.
    let dup = manifest.replacen("\"model\":", "\"model\": \"x\",\n  \"model\":", 1);
    fs::write(dir.path().join("cuts.json"), dup).unwrap();
    let e = resolve(dir.path()).unwrap_err().to_string();
    assert!(e.contains("duplicate key \"model\""), "{e}");
    fs::write(dir.path().join("cuts.json"), &manifest).unwrap();
    let meta_path = dir.path().join("a/meta.json");
    let meta = fs::read_to_string(&meta_path).unwrap();
    fs::write(
        &meta_path,
        meta.replacen("\"dim\":", "\"dim\": 99,\n  \"dim\":", 1),
    )
    .unwrap();
    let e = FeatureCache::load(&dir.path().join("a"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("meta.json") && e.contains("duplicate key \"dim\""),
        "{e}"
    );
}

#[test]
fn a_cut_whose_meta_json_is_not_the_sets_cut_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_set_rows(dir.path(), &[("a", 2), ("b", 1)], &rows(4), 0.0).unwrap();
    let meta_path = dir.path().join("b/meta.json");
    let meta = fs::read_to_string(&meta_path).unwrap();
    for (from, to, field) in [
        (
            "\"layer\": \"b\"",
            "\"layer\": \"stage5\"",
            "extractor.layer is 'stage5'",
        ),
        (
            "\"backbone\": \"efficientnet-lite0\"",
            "\"backbone\": \"mobilenetv2\"",
            "extractor.backbone is 'mobilenetv2'",
        ),
        ("\"pool\": \"avg\"", "\"pool\": \"max\"", "extractor.pool"),
    ] {
        assert!(meta.contains(from), "{meta}");
        fs::write(&meta_path, meta.replace(from, to)).unwrap();
        let e = resolve(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("b/meta.json") && e.contains(field),
            "{field}: {e}"
        );
    }
    fs::write(&meta_path, meta).unwrap();
    assert_eq!(resolve(dir.path()).unwrap().len(), 2);
}
