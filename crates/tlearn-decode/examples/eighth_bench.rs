//! JPEG decoding alone at 1/8 scale, one thread: libjpeg-turbo (`jpeg::libjpeg_scaled`)
//! against the fast path (`jpeg_eighth::decode_eighth`) on the same files, alternating passes.
//! Checks the two agree on every file first (and says how many took the fast path).
//!
//! cargo run --release -p tlearn-decode --example eighth_bench -- DIR N PASSES
//!
//! Prints one JSON line: ms per image of each pass, and the medians.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use tlearn_decode::jpeg::libjpeg_scaled;
use tlearn_decode::jpeg_eighth::decode_eighth;

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        bail!("usage: eighth_bench DIR N PASSES");
    }
    let dir = PathBuf::from(&args[1]);
    let n: usize = args[2].parse().context("N")?;
    let passes: usize = args[3].parse().context("PASSES")?;
    // The files under DIR (a data set's class folders, or a flat folder), in name order.
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(&dir)
        .sort_by_file_name()
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    if files.is_empty() {
        bail!("{}: no files", dir.display());
    }
    files.truncate(n);
    let bytes: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).with_context(|| f.display().to_string()))
        .collect::<Result<_>>()?;
    let mut fast_taken = 0;
    for (f, b) in files.iter().zip(&bytes) {
        let reference = libjpeg_scaled(b, 1)?;
        if let Some(fast) = decode_eighth(b) {
            if Some(&fast) != reference.as_ref() {
                eprintln!("differs {}", f.display());
            }
            fast_taken += 1;
        }
    }
    let (mut lib, mut fast) = (Vec::new(), Vec::new());
    for _ in 0..passes {
        let t0 = Instant::now();
        for b in &bytes {
            std::hint::black_box(libjpeg_scaled(b, 1)?);
        }
        lib.push(t0.elapsed().as_secs_f64() * 1e3 / bytes.len() as f64);
        let t0 = Instant::now();
        for b in &bytes {
            std::hint::black_box(decode_eighth(b));
        }
        fast.push(t0.elapsed().as_secs_f64() * 1e3 / bytes.len() as f64);
    }
    println!(
        "{{\"n\":{},\"fast_path\":{fast_taken},\"libjpeg_ms\":{lib:?},\"fast_ms\":{fast:?},\"libjpeg_median_ms\":{:.3},\"fast_median_ms\":{:.3}}}",
        bytes.len(),
        median(&lib),
        median(&fast)
    );
    Ok(())
}
