//! The fine-tuning head on the command line: `train --head finetune`, and `eval` / `predict`
//! of a saved fine-tuned head (they hand over here when head.json says `params.kind =
//! "finetune"`). The work is `tlearn_finetune`'s; this module parses and prints.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tlearn_extract::budget::MemoryBudget;
use tlearn_extract::classify::{self, Failure, Prediction};
use tlearn_extract::open::{encoder_for_fingerprint, entry_for, OwnModel};
use tlearn_extract::registry;
use tlearn_finetune::{pipeline, FinetuneHead, TopBlock};
use tlearn_heads::FeatureCache;
use tlearn_model::ModelOptions;

use crate::flags::train::FinetuneArgs;

/// The layers after the cut a spatial cache was extracted at, read from its backbone's file.
fn block_for(cache: &FeatureCache, models_dir: Option<&Path>) -> Result<TopBlock> {
    let fp = &cache.meta.extractor;
    let dir = registry::models_dir(models_dir);
    let entry = entry_for(&fp.backbone, &dir, Some(&fp.layer), &OwnModel::default()).with_context(
        || {
            format!(
                "finding the backbone '{}' of {}",
                fp.backbone,
                cache.dir.display()
            )
        },
    )?;
    TopBlock::read(&entry, &dir, &fp.layer, cache.meta.dim)
}

pub fn train(
    cache_path: &Path,
    seed: u64,
    test_size: f64,
    args: &FinetuneArgs,
    models_dir: Option<&Path>,
    out: &Path,
) -> Result<()> {
    let cache = FeatureCache::load(cache_path)?;
    let block = block_for(&cache, models_dir)?;
    let per = pipeline::bytes_per_image(cache.meta.dim);
    println!(
        "cache {}: {} rows of {} cut maps {:?} ({} float32 = {:.1} KB per image, {:.1} MB in all), {} classes",
        cache.dir.display(),
        cache.rows(),
        cache.meta.extractor.layer,
        block.input,
        cache.meta.dim,
        per as f64 / 1e3,
        (per * cache.rows()) as f64 / 1e6,
        cache.classes().len()
    );
    println!(
        "fine-tuning {} layers after {} '{}' ({} pretrained parameters, {} features) and a new classifier",
        block.ops.len(),
        block.backbone,
        block.cut,
        block.parameters(),
        block.features()
    );
    let params = args.params(seed);
    let quiet = std::env::var_os("CI").is_some();
    let mut head = pipeline::train(&cache, &block, seed, test_size, &params, &mut |e| {
        if !quiet || e.phase == "joint" {
            eprintln!(
                "  {} epoch {:>2}: train loss {:.4}, validation loss {:.4}, accuracy {:.4} ({:.1} s)",
                e.phase, e.epoch, e.train_loss, e.val_loss, e.val_accuracy, e.seconds
            );
        }
    })?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join("head.json");
    head.save(&path)?;
    let f = &head.file.fit;
    println!(
        "split: {} training rows ({} for fitting, {} for early stopping), {} held out",
        head.file.split.train_rows,
        f.train_rows,
        f.val_rows,
        head.file.split.held_out.len()
    );
    println!(
        "kept joint epoch {} (validation accuracy {:.4}); {:.1} s in all",
        f.best_epoch, head.file.cv.mean_accuracy, f.seconds
    );
    println!(
        "wrote {} and {}",
        path.display(),
        tlearn_finetune::saved::sidecar_path(&path).display()
    );
    Ok(())
}

/// Load a fine-tuned head and check its block against the backbone's file when it is at hand.
fn load(head_path: &Path, models_dir: Option<&Path>) -> Result<FinetuneHead> {
    let head = FinetuneHead::load(head_path)?;
    let dir = registry::models_dir(models_dir);
    let layer = &head.file.extractor.layer;
    let entry = entry_for(
        &head.file.block.backbone,
        &dir,
        Some(layer),
        &OwnModel::default(),
    )?;
    let actual = TopBlock::read(&entry, &dir, layer, head.file.dim).with_context(|| {
        format!(
            "{}: reading the backbone's layers after its cut",
            head_path.display()
        )
    })?;
    head.check_backbone(&actual, head_path)?;
    Ok(head)
}

pub fn eval(head_path: &Path, caches: &[PathBuf], all: bool, out: &Path) -> Result<()> {
    let head = load(head_path, None)?;
    let [cache] = caches else {
        bail!(
            "a fine-tuned head reads one spatial cache; {} given",
            caches.len()
        );
    };
    let named = tlearn_cache::resolve(cache)?;
    let want = &head.file.extractor;
    let dir = named
        .iter()
        .find(|n| {
            FeatureCache::read(&n.dir)
                .ok()
                .flatten()
                .is_some_and(|c| c.meta.extractor == *want)
        })
        .map(|n| n.dir.clone())
        .unwrap_or_else(|| cache.clone());
    let cache = FeatureCache::load(&dir)?;
    let rep = pipeline::evaluate(&head, &cache, all)?;
    let m = &rep.metrics;
    println!(
        "head: finetune ({} '{}', kept joint epoch {})",
        head.block.backbone, head.block.cut, head.file.fit.best_epoch
    );
    println!("prediction: {}", rep.prediction_rule);
    println!("evaluated on {} {} rows of {}", m.n, rep.rows, rep.cache);
    println!("accuracy           {:.4}", m.accuracy);
    println!("balanced accuracy  {:.4}", m.balanced_accuracy);
    println!("macro F1           {:.4}", m.macro_f1);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let json = out.join("report.json");
    tlearn_cache::write_atomic_bytes(&json, serde_json::to_string_pretty(&rep)?.as_bytes())?;
    println!("wrote {}", json.display());
    Ok(())
}

pub fn predict(
    head_path: &Path,
    images: &[PathBuf],
    options: &ModelOptions,
    top: usize,
) -> Result<(Vec<Prediction>, Vec<Failure>)> {
    let models_dir = options.models_dir.as_deref();
    let head = load(head_path, models_dir)?;
    let fp = &head.file.extractor;
    let encoder = encoder_for_fingerprint(
        fp,
        options.model.as_deref(),
        models_dir,
        &head_path.display().to_string(),
        &options.backbone,
    )?;
    let budget = MemoryBudget::from_setting(options.decode_memory);
    let (rows, failures) = classify::encode_images(encoder.as_ref(), images, fp.augment, &budget);
    if rows.is_empty() {
        return Ok((vec![], failures));
    }
    let x: Vec<&[f32]> = rows.iter().map(|(_, v)| v.as_slice()).collect();
    let probs = head.predict_proba(&x)?;
    let names = |i: usize| head.file.classes[i].clone();
    let preds = rows
        .iter()
        .enumerate()
        .map(|(i, (path, _))| {
            classify::prediction(path.clone(), &probs.row(i).to_vec(), &names, top)
        })
        .collect();
    Ok((preds, failures))
}
