//! Decoding and preprocessing alone, per image, one thread: what `tlearn extract` does to a
//! file before the network sees it (read, decode in the backbone's mode, resize, crop, tensor),
//! timed over PASSES passes of the first N images of a folder. `bench/decode_bench.py` runs it
//! alternately with the savvy Python script's per-image function (PIL draft decoding) on the
//! same files, pinned to the same core: the part of the extraction cost both sides pay in the
//! same library (libjpeg-turbo) for JPEGs.
//!
//! cargo run --release -p tlearn-extract --example decode_bench -- DIR N PASSES [full|reduced]
//!
//! Prints one JSON line: `ms` (ms per image of each pass), `median_ms`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use tlearn_extract::augment::{Anchor, View};
use tlearn_extract::registry::{models_dir, Registry};
use tlearn_extract::spec::DecodeMode;
use tlearn_extract::{decode, listing, preprocess};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        bail!("usage: decode_bench DIR N PASSES [full|reduced]");
    }
    let dir = PathBuf::from(&args[1]);
    let n: usize = args[2].parse().context("N")?;
    let passes: usize = args[3].parse().context("PASSES")?;
    let mode = match args.get(4).map(String::as_str) {
        None | Some("reduced") => DecodeMode::Reduced,
        Some("full") => DecodeMode::Full,
        Some(m) => bail!("decode mode {m}: full or reduced"),
    };
    let model = std::env::var("MODEL").unwrap_or_else(|_| "efficientnet-lite0".into());
    let reg = Registry::load(&models_dir(None))?;
    let p = reg.get(&model)?.preprocess.clone();
    // The files `tlearn extract` would read, in its order.
    let files: Vec<PathBuf> = listing::list_dataset(&dir)?
        .files
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    if files.len() < n {
        bail!("{}: {} images, {n} asked", dir.display(), files.len());
    }
    let files = &files[..n];
    let view = View {
        anchor: Anchor::Centre,
        flip: false,
    };
    let one = |f: &PathBuf| -> Result<()> {
        let bytes = std::fs::read(f).with_context(|| f.display().to_string())?;
        let img = decode::decode_rgb_for(&bytes, p.background, mode, preprocess::short_side(&p))
            .with_context(|| f.display().to_string())?;
        let v = preprocess::view_image(&img, &p, view)?;
        std::hint::black_box(preprocess::to_tensor(std::slice::from_ref(&v), &p)?);
        Ok(())
    };
    files.iter().try_for_each(one)?; // warm-up: page cache, allocator
    let mut ms = Vec::with_capacity(passes);
    for _ in 0..passes {
        let t0 = Instant::now();
        files.iter().try_for_each(one)?;
        ms.push(t0.elapsed().as_secs_f64() * 1e3 / n as f64);
    }
    let mut sorted = ms.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "{{\"side\":\"tlearn\",\"mode\":\"{mode:?}\",\"n\":{n},\"ms\":{ms:?},\"median_ms\":{:.4}}}",
        sorted[sorted.len() / 2]
    );
    Ok(())
}
