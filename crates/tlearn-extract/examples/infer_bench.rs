//! Inference alone, per image, on real photos: the backbone as `tlearn extract` loads it
//! (`TLEARN_OPS=all|gemm|depthwise|tract` picks the operators, as for the CLI), on the first N
//! images of a data set
//! folder (decoded and preprocessed once, before timing), one thread. `bench/infer_bench.py`
//! runs it alternately with onnxruntime on the same tensors.
//!
//! cargo run --release -p tlearn-extract --example infer_bench -- DIR N PASSES [INPUTS.npy [CODES.npy]]
//!
//! Prints one JSON line: `ms` (median ms per image of each pass over the N images), the load
//! time, and the operators used. With INPUTS.npy it writes the `[N,3,S,S]` input tensors there
//! (for the onnxruntime side), with CODES.npy the codes `[N, dim]`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use tlearn_extract::augment::{Anchor, View};
use tlearn_extract::backbone::{Backbone, BackboneOptions, Ops};
use tlearn_extract::registry::{models_dir, Registry};
use tlearn_extract::spec::Pooling;
use tlearn_extract::{decode, listing, preprocess};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        bail!("usage: infer_bench DIR N PASSES [INPUTS.npy [CODES.npy]]");
    }
    let dir = PathBuf::from(&args[1]);
    let n: usize = args[2].parse().context("N")?;
    let passes: usize = args[3].parse().context("PASSES")?;
    let model = std::env::var("MODEL").unwrap_or_else(|_| "efficientnet-lite0".into());
    let mdir = models_dir(None);
    let reg = Registry::load(&mdir)?;
    let entry = reg.get(&model)?;
    let ops: Ops = match std::env::var("TLEARN_OPS") {
        Ok(v) => v.parse().with_context(|| format!("TLEARN_OPS={v:?}"))?,
        Err(_) => Ops::default(),
    };
    let backbone = Backbone::load_with(entry, &mdir, None, Pooling::Avg, &BackboneOptions { ops })?;
    let p = backbone.preprocess().clone();

    // The files `tlearn extract` would read, in its order.
    let files: Vec<PathBuf> = listing::list_dataset(&dir)?
        .files
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    if files.len() < n {
        bail!("{}: {} images, {n} asked", dir.display(), files.len());
    }
    let view = View {
        anchor: Anchor::Centre,
        flip: false,
    };
    let mut inputs = Vec::with_capacity(n);
    for f in &files[..n] {
        let bytes = std::fs::read(f).with_context(|| f.display().to_string())?;
        let img =
            decode::decode_rgb(&bytes, p.background).with_context(|| f.display().to_string())?;
        let v = preprocess::view_image(&img, &p, view)?;
        inputs.push(preprocess::to_tensor(std::slice::from_ref(&v), &p)?);
    }
    // Warm-up: one pass (allocations, caches, lazily packed weights).
    let mut codes = Vec::with_capacity(n);
    for t in &inputs {
        codes.push(backbone.encode(t.clone())?);
    }
    let mut ms = Vec::with_capacity(passes);
    for _ in 0..passes {
        let t0 = Instant::now();
        for t in &inputs {
            std::hint::black_box(backbone.encode(t.clone())?);
        }
        ms.push(t0.elapsed().as_secs_f64() * 1e3 / n as f64);
    }
    if let Some(path) = args.get(4) {
        let mut shape = inputs[0].shape().to_vec();
        shape[0] = n;
        let mut flat = Vec::with_capacity(shape.iter().product());
        for t in &inputs {
            flat.extend_from_slice(t.try_as_plain_ram()?.as_slice::<f32>()?);
        }
        let arr = ndarray::ArrayD::from_shape_vec(shape, flat)?;
        ndarray_npy::write_npy(path, &arr).with_context(|| path.clone())?;
    }
    if let Some(path) = args.get(5) {
        let dim = backbone.dim();
        let flat: Vec<f32> = codes.concat();
        let arr = ndarray::Array2::from_shape_vec((n, dim), flat)?;
        ndarray_npy::write_npy(path, &arr).with_context(|| path.clone())?;
    }
    let mut sorted = ms.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "{{\"side\":\"tlearn\",\"ops\":\"{ops}\",\"n\":{n},\"ms\":{:?},\"median_ms\":{:.4},\"load_s\":{:.3}}}",
        ms,
        sorted[sorted.len() / 2],
        backbone.load_time().as_secs_f64()
    );
    Ok(())
}
