//! A run killed (SIGKILL) mid-extraction resumes and ends with the same cache as an
//! uninterrupted run. Needs `make models data` (run by `make test`).

mod common;
use common::*;
use std::time::{Duration, Instant};

fn read_npy(path: &std::path::Path) -> Vec<f32> {
    // .npy v1: magic, version, header length (u16 LE), header, raw little-endian f32.
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let hl = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    bytes[10 + hl..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn killed_extraction_resumes_to_the_same_cache() {
    require_model("efficientnet-lite0");
    let data = dataset("tuxpaint");
    let work = workdir("resume");
    let reference = work.join("uninterrupted");
    let _ = std::fs::remove_dir_all(&reference);
    extract("efficientnet-lite0", &data, &reference, &["--chunk", "16"]);

    let cache = work.join("interrupted");
    let _ = std::fs::remove_dir_all(&cache);
    let mut child = tlearn()
        .args([
            "extract",
            "--quiet",
            "--chunk",
            "16",
            "--model",
            "efficientnet-lite0",
        ])
        .arg(&data)
        .arg("--out")
        .arg(&cache)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once some vectors are journaled but well before the end.
    let journal = cache.join("journal.bin");
    let t0 = Instant::now();
    loop {
        let len = std::fs::metadata(&journal).map(|m| m.len()).unwrap_or(0);
        if len > 40 * 1280 * 4 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no journal progress"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "extraction ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !cache.join("features.npy").exists(),
        "a killed first run must not leave a cache that looks complete"
    );

    let summary = extract("efficientnet-lite0", &data, &cache, &["--chunk", "16"]);
    let resumed = summary["resumed"].as_u64().unwrap();
    assert!(
        resumed >= 40,
        "the re-run should reuse the journaled vectors: {summary}"
    );
    assert!(!journal.exists(), "journal removed after a complete run");

    assert_eq!(
        std::fs::read_to_string(cache.join("index.csv")).unwrap(),
        std::fs::read_to_string(reference.join("index.csv")).unwrap()
    );
    let a = read_npy(&cache.join("features.npy"));
    let b = read_npy(&reference.join("features.npy"));
    assert_eq!(a.len(), b.len());
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= 1e-5,
        "resumed cache differs from the uninterrupted one by {worst}"
    );
}
