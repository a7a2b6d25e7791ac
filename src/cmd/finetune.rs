//! The fine-tuning head on the command line: `train --head finetune`, and `eval` / `predict`
//! of a saved fine-tuned head (they hand over here when head.json says `params.kind =
//! "finetune"`). The work is `tlearn_finetune`'s; this module parses and prints.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tlearn_extract::budget::MemoryBudget;
use tlearn_extract::classify::{self, Failure, Prediction};
use tlearn_extract::open::{encoder_for_fingerprint, entry_for, OwnModel};
use tlearn_extract::registry;
use tlearn_finetune::{contest, pipeline, FinetuneHead, TopBlock};
use tlearn_heads::train::{HeadChoice, TrainOutcome, Training};
use tlearn_heads::FeatureCache;
use tlearn_model::ModelOptions;

use crate::flags::train::{FinetuneArgs, HeadFlag};

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
    pipeline::check_spatial(&cache)?;
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

/// Fine-tuning as a candidate of `train --head auto --finetune-on MAPS`, checked before the
/// frozen heads' CV starts.
pub struct Candidate {
    maps: FeatureCache,
    block: TopBlock,
}

impl Candidate {
    /// The spatial cache and its block, checked; `None` (with a note) when the training part is
    /// under `--finetune-min-images`.
    pub fn open(
        maps: &Path,
        head: &HeadFlag,
        training: &Training,
        args: &FinetuneArgs,
        models_dir: Option<&Path>,
    ) -> Result<Option<Candidate>> {
        let HeadFlag::Heads(HeadChoice::Auto) = head else {
            bail!(
                "--finetune-on makes fine-tuning a candidate of --head auto; to fine-tune alone, \
                 train --head finetune {}",
                maps.display()
            );
        };
        let maps = FeatureCache::load(maps)?;
        pipeline::check_spatial(&maps)?;
        let block = block_for(&maps, models_dir)?;
        pipeline::check_cache(&maps, &block)?;
        let n_train = training.training_images();
        if n_train < args.finetune_min_images {
            eprintln!(
                "note: fine-tuning left out: about {n_train} training images, fewer than \
                 {} (--finetune-min-images)",
                args.finetune_min_images
            );
            return Ok(None);
        }
        let per = pipeline::bytes_per_image(maps.meta.dim);
        println!(
            "fine-tuning candidate: {} layers after {} '{}' ({} pretrained parameters) on {} \
             ({:.1} KB per image, {:.1} MB in all), cross-validated on the frozen heads' folds",
            block.ops.len(),
            block.backbone,
            block.cut,
            block.parameters(),
            maps.dir.display(),
            per as f64 / 1e3,
            (per * maps.rows()) as f64 / 1e6,
        );
        Ok(Some(Candidate { maps, block }))
    }

    /// Cross-validate fine-tuning on the folds of `out` (the frozen heads' outcome), record it in
    /// `out`'s cv.json and return the fine-tuned head, fitted on the whole training part, when
    /// it is kept.
    pub fn compete(
        self,
        training: &Training,
        out: &mut TrainOutcome,
        seed: u64,
        args: &FinetuneArgs,
    ) -> Result<Option<FinetuneHead>> {
        let params = args.params(seed);
        let quiet = std::env::var_os("CI").is_some();
        let folds = out.cv.report.folds;
        let frozen = &training.inputs()[0].cache;
        let c = contest::compete(
            &out.cv,
            frozen,
            &self.maps,
            &self.block,
            &params,
            &mut |f, e| {
                if !quiet {
                    eprintln!(
                        "  fine-tuning fold {}/{folds}, {} epoch {:>2}: validation accuracy {:.4} ({:.1} s)",
                        f + 1,
                        e.phase,
                        e.epoch,
                        e.val_accuracy,
                        e.seconds
                    );
                }
            },
        )?;
        let r = &c.record;
        let report = &out.cv.report;
        let frozen_mean = report.candidates[report.chosen].mean_accuracy;
        println!(
            "fine-tuned {} after '{}': CV {:.4} against the frozen head's {:.4} on the same {} \
             folds, paired difference {:+.4} ± {:.4} ({:.0} s): {}",
            r.backbone,
            r.cut,
            r.mean_accuracy,
            frozen_mean,
            folds,
            r.difference,
            r.standard_error,
            r.seconds,
            if r.chosen {
                "the fine-tuned network is kept"
            } else {
                "the frozen head is kept (fine-tuning must win by more than one standard error)"
            }
        );
        let head = if r.chosen {
            let head = pipeline::train_on(
                &self.maps,
                &self.block,
                &c.rows,
                &params,
                Some(c.cv_summary()),
                &mut |_| {},
            )?;
            println!(
                "fine-tuned on all {} training images: kept joint epoch {} ({:.1} s)",
                c.rows.train.len(),
                head.file.fit.best_epoch,
                head.file.fit.seconds
            );
            Some(head)
        } else {
            None
        };
        c.record_in(&mut out.cv);
        Ok(head)
    }
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
    // The spatial cache of the head's cut, among the caches (or cut sets) given: `eval` of a
    // run where `--finetune-on` won may be given the frozen caches beside the map cache.
    let want = &head.file.extractor;
    let mut found = None;
    for cache in caches {
        for n in tlearn_cache::resolve(cache)? {
            if FeatureCache::read(&n.dir)
                .ok()
                .flatten()
                .is_some_and(|c| c.meta.extractor == *want)
            {
                found.get_or_insert(n.dir.clone());
            }
        }
    }
    let dir = match (found, caches) {
        (Some(d), _) => d,
        // One cache that is not the map: loaded, so that the check names what differs.
        (None, [one]) => one.clone(),
        (None, _) => bail!(
            "{}: a fine-tuned head reads the spatial map of {} cut '{}' (`--pool flatten`), and \
             none of the {} caches given holds it; give the map cache it was trained on ({})",
            head_path.display(),
            want.backbone,
            want.layer,
            caches.len(),
            head.file.split.cache
        ),
    };
    let cache = FeatureCache::load(&dir)?;
    let rep = pipeline::evaluate(&head, &cache, all)?;
    let m = &rep.metrics;
    println!(
        "head: finetune ({} '{}', kept joint epoch {})",
        head.block.backbone, head.block.cut, head.file.fit.best_epoch
    );
    println!("prediction: {}", rep.prediction_rule);
    println!("evaluated on {} {} rows of {}", m.n, rep.rows, rep.cache);
    println!(
        "accuracy           {:.4} ({}/{}, 95% interval {:.3}-{:.3})",
        m.accuracy, m.correct, m.n, m.accuracy_interval.0, m.accuracy_interval.1
    );
    println!("balanced accuracy  {:.4}", m.balanced_accuracy);
    println!("macro F1           {:.4}", m.macro_f1);
    print!(
        "{}",
        tlearn_report::text::class_tables(m, &rep.misclassified, &head.file.classes)
    );
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let json = out.join("report.json");
    tlearn_cache::write_atomic_bytes(&json, serde_json::to_string_pretty(&rep)?.as_bytes())?;
    let confusion = out.join("confusion.png");
    if let Some(n) = tlearn_report::confusion::report_confusion_png(
        m,
        &head.file.classes,
        "finetune",
        &rep.rows,
        &confusion,
    )? {
        eprintln!("note: {n}");
    }
    println!("wrote {} and {}", json.display(), confusion.display());
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
