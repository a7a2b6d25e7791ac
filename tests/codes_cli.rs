//! `tlearn export-codes` / `import-codes` and Parquet codes read where a cache is read: a cache
//! exported and imported is the same cache byte for byte, `train` and `eval` on the Parquet
//! directory give what they give on the cache, a set exports one directory per cut, and a head
//! is refused on codes of another extractor (fast: the raw-pixels pseudo-backbone on generated
//! photos, one of them corrupt; the cut set with the real EfficientNet-Lite0, ignored: needs
//! `make models`).

mod common;

use std::fs;
use std::path::Path;

use common::{picture, read_json, run_ok, tlearn};
use image::ImageFormat;

/// 24 generated photos over 3 classes, and one file that is not an image.
fn photo_set(dir: &Path) {
    for i in 0..24u32 {
        let class = ["cat", "dog", "owl"][(i % 3) as usize];
        let p = dir.join(class).join(format!("img{i:02}.png"));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        picture(30 + i % 5, 20 + i % 3, i * (1 + i % 3))
            .save_with_format(&p, ImageFormat::Png)
            .unwrap();
    }
    fs::write(
        dir.join("dog").join("broken.png"),
        b"\x89PNG\r\n\x1a\nnot really",
    )
    .unwrap();
}

fn extract(data: &Path, out: &Path) {
    run_ok(
        tlearn()
            .args(["extract", "--quiet", "--model", "pixels8"])
            .arg(data)
            .arg("--out")
            .arg(out),
    );
}

fn train(input: &Path, out: &Path) {
    run_ok(
        tlearn()
            .args(["train", "--head", "logistic", "--folds", "3", "--seed", "5"])
            .args(["--out"])
            .arg(out)
            .arg(input),
    );
}

fn eval(input: &Path, head: &Path, out: &Path) -> serde_json::Value {
    run_ok(
        tlearn()
            .args(["eval", "--head"])
            .arg(head.join("head.json"))
            .arg("--out")
            .arg(out)
            .arg(input),
    );
    read_json(&out.join("report.json"))
}

#[test]
fn parquet_codes_round_trip_and_train_and_eval_as_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = t.join("data");
    photo_set(&data);
    let cache = t.join("cache");
    extract(&data, &cache);

    let codes = t.join("codes");
    run_ok(
        tlearn()
            .arg("export-codes")
            .arg(&cache)
            .arg("--out")
            .arg(&codes)
            .args(["--rows-per-file", "10"]),
    );
    let shards: Vec<_> = fs::read_dir(&codes)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".parquet"))
        .collect();
    // 24 codes and one error row, 10 rows per file.
    assert_eq!(shards.len(), 3, "{shards:?}");
    let sidecar = read_json(&codes.join("_tlearn.json"));
    assert_eq!(sidecar["extractor"]["backbone"], "pixels8");

    let back = t.join("back");
    run_ok(
        tlearn()
            .arg("import-codes")
            .arg(&codes)
            .arg("--out")
            .arg(&back),
    );
    for f in ["features.npy", "index.csv", "skipped.csv", "meta.json"] {
        assert_eq!(
            fs::read(cache.join(f)).unwrap(),
            fs::read(back.join(f)).unwrap(),
            "{f} differs after export and import"
        );
    }
    assert!(fs::read_to_string(back.join("skipped.csv"))
        .unwrap()
        .contains("dog/broken.png,"));
    // A second import into a cache is refused, not merged.
    let again = tlearn()
        .arg("import-codes")
        .arg(&codes)
        .arg("--out")
        .arg(&back)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a feature cache"));

    // train and eval read the Parquet directory as they read the cache.
    let (m_cache, m_codes) = (t.join("m-cache"), t.join("m-codes"));
    train(&cache, &m_cache);
    train(&codes, &m_codes);
    let head = |m: &Path| {
        let mut h = read_json(&m.join("head.json"));
        h["split"]["cache"] = serde_json::Value::Null;
        h
    };
    let (h_cache, h_codes) = (head(&m_cache), head(&m_codes));
    assert_eq!(h_cache["split"], h_codes["split"]);
    for k in ["params", "transform", "head", "classes"] {
        assert!(!h_cache[k].is_null(), "head.json has no {k}");
        assert_eq!(h_cache[k], h_codes[k], "{k}");
    }
    let r_cache = eval(&cache, &m_cache, &t.join("r-cache"));
    let r_codes = eval(&codes, &m_codes, &t.join("r-codes"));
    let r_cross = eval(&cache, &m_codes, &t.join("r-cross"));
    assert_eq!(r_cache["metrics"]["n"], 6);
    for k in ["metrics", "misclassified"] {
        assert!(!r_cache[k].is_null(), "report.json has no {k}");
        assert_eq!(r_cache[k], r_codes[k], "{k}");
        assert_eq!(r_cache[k], r_cross[k], "{k}");
    }

    // A head of another extractor is refused on these codes, naming the field.
    let other = t.join("other");
    run_ok(
        tlearn()
            .args(["extract", "--quiet", "--model", "pixels-rgb8"])
            .arg(&data)
            .arg("--out")
            .arg(&other),
    );
    let m_other = t.join("m-other");
    train(&other, &m_other);
    let refused = tlearn()
        .args(["eval", "--head"])
        .arg(m_other.join("head.json"))
        .arg("--out")
        .arg(t.join("r-refused"))
        .arg(&codes)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(err.contains("backbone"), "{err}");
}

#[test]
#[ignore = "needs make models; run by make test"]
fn a_cut_set_exports_one_codes_directory_per_cut() {
    common::require_model("efficientnet-lite0");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = t.join("data");
    photo_set(&data);
    let set = t.join("set");
    run_ok(
        tlearn()
            .args(["extract", "--quiet", "--layer", "features,stage6"])
            .arg(&data)
            .arg("--out")
            .arg(&set),
    );
    let cuts = read_json(&set.join("cuts.json"));
    let names: Vec<String> = cuts["cuts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["dir"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.len() >= 2, "{names:?}");
    let codes = t.join("codes");
    run_ok(
        tlearn()
            .arg("export-codes")
            .arg(&set)
            .arg("--out")
            .arg(&codes),
    );
    for dir in &names {
        let side = read_json(&codes.join(dir).join("_tlearn.json"));
        let meta = read_json(&set.join(dir).join("meta.json"));
        assert_eq!(side["extractor"], meta["extractor"], "{dir}");
        // Each cut's codes train as its cache does.
        let m = t.join(format!("m-{dir}"));
        train(&codes.join(dir), &m);
        assert!(m.join("head.json").is_file());
    }
}
