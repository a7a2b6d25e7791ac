//! Codes as Parquet: npy cache → Parquet → the same cache (byte for byte), list columns as
//! Spark and Ray write them, and every damaged or mismatched directory refused by name.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, Float64Array, ListArray, RecordBatch, StringArray};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field, Schema};
use tlearn_cache::parquet_codes::{self, CodeRow, ListKind, Sidecar};
use tlearn_cache::*;

fn fp() -> Fingerprint {
    tlearn_cache::testing::fingerprint("efficientnet-lite0", "00")
}

/// An npy cache of three images (two classes) and one skipped file.
fn npy_cache(dir: &Path) {
    let classes = vec!["a".to_string(), "b".to_string()];
    let meta = Meta::new("/d", 2, 3, classes, fp(), "2026-01-01T00:00:00Z");
    let row = |p: &str, l: &str, s: &str| IndexRow {
        path: p.into(),
        label: l.into(),
        sha256: s.into(),
    };
    let index = vec![
        row("a/1.png", "a", "11"),
        row("a/2, \"odd\".png", "a", "22"),
        row("b/3.png", "b", "33"),
    ];
    let skipped = vec![SkipRow {
        path: "b/bad.jpg".into(),
        reason: "cannot decode image: invalid JPEG".into(),
    }];
    write(
        dir,
        &meta,
        &index,
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        &skipped,
    )
    .unwrap();
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_cache_exported_and_imported_is_the_same_cache_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let (npy, pq, back) = (
        tmp.path().join("npy"),
        tmp.path().join("pq"),
        tmp.path().join("back"),
    );
    npy_cache(&npy);
    let cache = FeatureCache::load(&npy).unwrap();
    assert_eq!(parquet_codes::export(&cache, &pq, 2).unwrap(), 2);
    let side = parquet_codes::read_sidecar(&pq).unwrap();
    assert_eq!(side.extractor, fp());
    assert_eq!(side.fingerprint, parquet_codes::fingerprint_hash(&fp()));
    // train and eval read the Parquet directory as the cache itself.
    let direct = FeatureCache::load(&pq).unwrap();
    assert_eq!(direct.x, cache.x);
    assert_eq!(
        (direct.paths.clone(), direct.y.clone()),
        (cache.paths.clone(), cache.y.clone())
    );
    assert_eq!(direct.skipped, cache.skipped);
    assert_eq!(resolve(&pq).unwrap()[0].dir, pq);
    parquet_codes::import(&pq, &back).unwrap();
    let (a, b) = (files(&npy), files(&back));
    assert_eq!(a.len(), b.len());
    for ((na, ba), (nb, bb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        if na != META_FILE {
            assert_eq!(ba, bb, "{na} differs");
        }
    }
    let meta = |d: &Path| FeatureCache::load(d).unwrap().meta;
    let (ma, mb) = (meta(&npy), meta(&back));
    assert_eq!(ma, mb);
    // Exporting again into the same directory is refused, not mixed.
    let e = parquet_codes::export(&cache, &pq, 2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("already holds Parquet files"), "{e}");
    // An npy reader (extract updating a cache) is told what the directory is.
    let e = FeatureCache::read(&pq).unwrap_err().to_string();
    assert!(e.contains("Parquet codes"), "{e}");
}

fn sidecar(dir: &Path, dim: usize) {
    fs::create_dir_all(dir).unwrap();
    parquet_codes::write_sidecar(dir, &Sidecar::new(fp(), dim, "/d", "2026-01-01T00:00:00Z"))
        .unwrap();
}

/// A Parquet file with `features` as a plain list of `values` (f32 or f64 items, optional
/// nulls), the way Spark and Ray write it; only the required columns.
fn list_file(path: &Path, rows: &[(&str, &str, &str)], values: ArrayRef, lengths: &[usize]) {
    let item = Arc::new(Field::new("element", values.data_type().clone(), true));
    let list = ListArray::try_new(
        item.clone(),
        OffsetBuffer::from_lengths(lengths.to_vec()),
        values,
        None,
    )
    .unwrap();
    let strings = |k: usize| -> ArrayRef {
        Arc::new(StringArray::from(
            rows.iter().map(|r| [r.0, r.1, r.2][k]).collect::<Vec<_>>(),
        ))
    };
    let schema = Schema::new(vec![
        Field::new("path", DataType::Utf8, true),
        Field::new("label", DataType::Utf8, true),
        Field::new("sha256", DataType::Utf8, true),
        Field::new("features", DataType::List(item), true),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![strings(0), strings(1), strings(2), Arc::new(list)],
    )
    .unwrap();
    parquet_codes::write_shard(path, &batch).unwrap();
}

#[test]
fn plain_list_columns_without_error_or_fingerprint_columns_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    sidecar(dir, 2);
    let values: ArrayRef = Arc::new(Float32Array::from(vec![1.0, 2.0, 3.0, 4.0]));
    list_file(
        &dir.join("part-00000-spark.snappy.parquet"),
        &[("b/2.png", "b", "22"), ("a/1.png", "a", "11")],
        values,
        &[2, 2],
    );
    fs::write(dir.join("_SUCCESS"), b"").unwrap();
    fs::write(dir.join(".part-00000-spark.snappy.parquet.crc"), b"xx").unwrap();
    let c = FeatureCache::load(dir).unwrap();
    assert_eq!(c.paths, ["a/1.png", "b/2.png"]);
    assert_eq!(c.x.as_slice().unwrap(), &[3.0, 4.0, 1.0, 2.0]);
    assert_eq!(c.meta.classes, ["a", "b"]);
}

fn err(dir: &Path) -> String {
    FeatureCache::load(dir).unwrap_err().to_string()
}

#[test]
fn wrong_width_float64_and_nulls_inside_a_vector_are_refused_naming_file_and_row() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = [("a/1.png", "a", "11"), ("b/2.png", "b", "22")];

    let d = tmp.path().join("width");
    sidecar(&d, 2);
    list_file(
        &d.join("x.parquet"),
        &rows,
        Arc::new(Float32Array::from(vec![1.0; 5])),
        &[2, 3],
    );
    let e = err(&d);
    assert!(
        e.contains("x.parquet") && e.contains("row 1 (b/2.png): 3 values"),
        "{e}"
    );

    let d = tmp.path().join("f64");
    sidecar(&d, 2);
    list_file(
        &d.join("x.parquet"),
        &rows,
        Arc::new(Float64Array::from(vec![1.0; 4])),
        &[2, 2],
    );
    let e = err(&d);
    assert!(e.contains("x.parquet") && e.contains("float64"), "{e}");

    let d = tmp.path().join("nulls");
    sidecar(&d, 2);
    let values = Float32Array::from(vec![Some(1.0), Some(2.0), None, Some(4.0)]);
    list_file(&d.join("x.parquet"), &rows, Arc::new(values), &[2, 2]);
    let e = err(&d);
    assert!(
        e.contains("x.parquet") && e.contains("row 1 (b/2.png): null values inside"),
        "{e}"
    );

    let d = tmp.path().join("nan");
    sidecar(&d, 2);
    list_file(
        &d.join("x.parquet"),
        &rows,
        Arc::new(Float32Array::from(vec![1.0, f32::NAN, 3.0, 4.0])),
        &[2, 2],
    );
    let e = err(&d);
    assert!(
        e.contains("row 0 (a/1.png)") && e.contains("not a finite number"),
        "{e}"
    );
}

fn tlearn_file(path: &Path, rows: &[CodeRow<'_>], dim: usize, hash: &str) {
    let batch = parquet_codes::record_batch(rows, dim, hash, ListKind::Fixed).unwrap();
    parquet_codes::write_shard(path, &batch).unwrap();
}

fn ok<'a>(path: &'a str, sha: &'a str, v: &'a [f32]) -> CodeRow<'a> {
    CodeRow {
        path,
        label: path.split_once('/').map(|p| p.0),
        sha256: Some(sha),
        features: Some(v),
        error: None,
    }
}

#[test]
fn duplicates_error_rows_fingerprints_and_truncated_files() {
    let tmp = tempfile::tempdir().unwrap();
    let hash = parquet_codes::fingerprint_hash(&fp());

    // The same bytes twice (a retried task): one row. An error row and a row with codes of
    // one path: the codes.
    let d = tmp.path().join("dup-same");
    sidecar(&d, 2);
    tlearn_file(
        &d.join("a.parquet"),
        &[
            ok("a/1.png", "11", &[1.0, 2.0]),
            ok("b/2.png", "22", &[3.0, 4.0]),
        ],
        2,
        &hash,
    );
    let failed = CodeRow {
        features: None,
        error: Some("cannot decode"),
        sha256: Some("11"),
        ..ok("a/1.png", "11", &[])
    };
    tlearn_file(
        &d.join("b.parquet"),
        &[failed, ok("b/2.png", "22", &[3.0, 4.0])],
        2,
        &hash,
    );
    let c = FeatureCache::load(&d).unwrap();
    assert_eq!((c.rows(), c.skipped.len()), (2, 0));

    // Different bytes under one path.
    let d = tmp.path().join("dup-diff");
    sidecar(&d, 2);
    tlearn_file(
        &d.join("a.parquet"),
        &[ok("a/1.png", "11", &[1.0, 2.0])],
        2,
        &hash,
    );
    tlearn_file(
        &d.join("b.parquet"),
        &[ok("a/1.png", "99", &[1.0, 2.0])],
        2,
        &hash,
    );
    let e = err(&d);
    assert!(
        e.contains("b.parquet") && e.contains("two different images under one path"),
        "{e}"
    );

    // An error row is a skipped file.
    let d = tmp.path().join("errors");
    sidecar(&d, 2);
    let bad = CodeRow {
        features: None,
        error: Some("cannot decode image"),
        sha256: None,
        ..ok("a/9.png", "", &[])
    };
    tlearn_file(
        &d.join("a.parquet"),
        &[ok("a/1.png", "11", &[1.0, 2.0]), bad],
        2,
        &hash,
    );
    let c = FeatureCache::load(&d).unwrap();
    assert_eq!(
        c.skipped,
        vec![SkipRow {
            path: "a/9.png".into(),
            reason: "cannot decode image".into()
        }]
    );

    // Rows of another extractor than the sidecar's.
    let d = tmp.path().join("other-fp");
    sidecar(&d, 2);
    tlearn_file(
        &d.join("a.parquet"),
        &[ok("a/1.png", "11", &[1.0, 2.0])],
        2,
        "beef",
    );
    let e = err(&d);
    assert!(
        e.contains("a.parquet") && e.contains("another extractor"),
        "{e}"
    );

    // A fixed-size list of another width than the sidecar's.
    let d = tmp.path().join("fixed-width");
    sidecar(&d, 3);
    tlearn_file(
        &d.join("a.parquet"),
        &[ok("a/1.png", "11", &[1.0, 2.0])],
        2,
        &hash,
    );
    let e = err(&d);
    assert!(
        e.contains("a.parquet") && e.contains("length 2") && e.contains("dim 3"),
        "{e}"
    );

    // A file cut short.
    let d = tmp.path().join("truncated");
    sidecar(&d, 2);
    tlearn_file(
        &d.join("a.parquet"),
        &[ok("a/1.png", "11", &[1.0, 2.0])],
        2,
        &hash,
    );
    let bytes = fs::read(d.join("a.parquet")).unwrap();
    fs::write(d.join("a.parquet"), &bytes[..bytes.len() / 2]).unwrap();
    let e = err(&d);
    assert!(e.contains("a.parquet") && e.contains("cut short"), "{e}");

    // Codes of another extractor are not added to a directory.
    let mut other = fp();
    other.preprocess.mean[1] = 100.0;
    let e = parquet_codes::write_sidecar(&d, &Sidecar::new(other, 2, "/d", ""))
        .unwrap_err()
        .to_string();
    assert!(e.contains("extractor.preprocess.mean[1]"), "{e}");

    // A sidecar whose hash is not its extractor's.
    let d = tmp.path().join("edited");
    sidecar(&d, 2);
    let text = fs::read_to_string(d.join(parquet_codes::SIDECAR_FILE)).unwrap();
    fs::write(
        d.join(parquet_codes::SIDECAR_FILE),
        text.replace("\"sha256\": \"00\"", "\"sha256\": \"01\""),
    )
    .unwrap();
    let e = err(&d);
    assert!(e.contains("field `fingerprint`"), "{e}");
}
