//! `train --head finetune` and `eval` of a fine-tuned head on a spatial cache: the same seeded,
//! stratified, hash-grouped split as every other head (`tlearn_heads::split`), the fit of
//! `train`, the held-out metrics of `tlearn_heads::metrics`.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{bail, Result};
use serde::Serialize;
use tlearn_cache::{FeatureCache, Pooling};
use tlearn_heads::evaluate::Misclassified;
use tlearn_heads::metrics::{self, Metrics};
use tlearn_heads::model_file::{CvSummary, SplitRecord, FORMAT, VERSION};
use tlearn_heads::split::train_test_split;

use crate::block::TopBlock;
use crate::saved::{BlockRecord, FinetuneHead, FitRecord, HeadFile, Params, SidecarRecord, KIND};
use crate::train::{fit, Epoch, FinetuneParams};

/// Bytes of one cached cut map (float32 C·H·W) — what `train` states before a long run.
pub fn bytes_per_image(dim: usize) -> usize {
    dim * std::mem::size_of::<f32>()
}

/// Refuse a cache that is not the spatial map of `block`'s cut of the same backbone file.
pub fn check_cache(cache: &FeatureCache, block: &TopBlock) -> Result<()> {
    check_spatial(cache)?;
    let fp = &cache.meta.extractor;
    let meta = cache.dir.join(tlearn_cache::META_FILE);
    if fp.backbone != block.backbone || fp.layer != block.cut || fp.sha256 != block.sha256 {
        bail!(
            "{}: field `extractor` is {} cut '{}' (sha256 {}), but the block is {} cut '{}' (sha256 {})",
            meta.display(),
            fp.backbone,
            fp.layer,
            fp.sha256,
            block.backbone,
            block.cut,
            block.sha256
        );
    }
    let [c, h, w] = block.input;
    if cache.meta.dim != c * h * w {
        bail!(
            "{}: field `dim` is {}, the block's input [{c},{h},{w}] holds {}",
            meta.display(),
            cache.meta.dim,
            c * h * w
        );
    }
    Ok(())
}

/// Refuse a cache of pooled codes: fine-tuning reads the whole map of a cut (checked before
/// the layers after the cut are looked for, so the message says what is wrong).
pub fn check_spatial(cache: &FeatureCache) -> Result<()> {
    let fp = &cache.meta.extractor;
    if fp.pool != Pooling::Flatten {
        bail!(
            "{}: field `extractor.pool` is {:?}: fine-tuning needs the spatial map (extract with \
             `--layer {} --pool flatten`)",
            cache.dir.join(tlearn_cache::META_FILE).display(),
            fp.pool,
            fp.layer
        );
    }
    Ok(())
}

/// Train a fine-tuned head on `cache` (the spatial map of `block`'s cut): split like every
/// head (seed, test_size), fit on the training part with an inner validation split.
pub fn train(
    cache: &FeatureCache,
    block: &TopBlock,
    seed: u64,
    test_size: f64,
    params: &FinetuneParams,
    progress: &mut dyn FnMut(&Epoch),
) -> Result<FinetuneHead> {
    check_cache(cache, block)?;
    cache.check_trainable()?;
    let k = cache.classes().len();
    let split = train_test_split(&cache.y, &cache.sha256, k, test_size, seed)?;
    let rows = SplitRows {
        train: split.train,
        held_out: split.test,
        seed,
        test_size,
        folds: 0,
    };
    train_on(cache, block, &rows, params, None, progress)
}

/// The rows of a spatial cache a head is fitted on and held out from, with how they were drawn
/// (recorded in the head as its split).
pub struct SplitRows {
    pub train: Vec<usize>,
    pub held_out: Vec<usize>,
    pub seed: u64,
    pub test_size: f64,
    /// Folds of the CV that chose the head (0: none).
    pub folds: usize,
}

/// Fit a fine-tuned head on `rows.train` of `cache`; `cv`: the CV score that chose it (`None`:
/// the inner validation split's accuracy at the kept epoch is recorded).
pub fn train_on(
    cache: &FeatureCache,
    block: &TopBlock,
    rows: &SplitRows,
    params: &FinetuneParams,
    cv: Option<CvSummary>,
    progress: &mut dyn FnMut(&Epoch),
) -> Result<FinetuneHead> {
    check_cache(cache, block)?;
    cache.check_trainable()?;
    let k = cache.classes().len();
    let x: Vec<&[f32]> = rows.train.iter().map(|&i| cache.row(i)).collect();
    let y: Vec<usize> = rows.train.iter().map(|&i| cache.y[i]).collect();
    let groups: Vec<String> = rows
        .train
        .iter()
        .map(|&i| cache.sha256[i].clone())
        .collect();
    let t0 = Instant::now();
    let fitted = fit(block, &x, &y, &groups, k, params, progress)?;
    let seconds = t0.elapsed().as_secs_f64();
    let best_val = fitted
        .history
        .iter()
        .filter(|e| e.phase == "joint" && e.epoch == fitted.best_epoch)
        .chain(fitted.history.iter().rfind(|e| e.phase == "probe"))
        .map(|e| e.val_accuracy)
        .next()
        .unwrap_or(0.0);
    // Without a CV of its own: the inner validation split's accuracy at the kept epoch.
    let cv = cv.unwrap_or(CvSummary {
        mean_accuracy: best_val,
        std_accuracy: 0.0,
        fold_accuracy: vec![best_val],
        grid_edge: vec![],
    });
    let file = HeadFile {
        format: FORMAT.into(),
        version: VERSION,
        tlearn_version: env!("CARGO_PKG_VERSION").into(),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        classes: cache.classes().to_vec(),
        extractor: cache.meta.extractor.clone(),
        dim: cache.meta.dim,
        params: Params {
            kind: KIND.into(),
            finetune: params.clone(),
        },
        block: BlockRecord::of(&fitted.block),
        sidecar: SidecarRecord {
            file: String::new(),
            sha256: String::new(),
        },
        fit: FitRecord {
            best_epoch: fitted.best_epoch,
            train_rows: fitted.train_rows,
            val_rows: fitted.val_rows,
            seconds,
            history: fitted.history.clone(),
        },
        cv,
        split: SplitRecord {
            cache: cache.dir.display().to_string(),
            seed: rows.seed,
            test_size: rows.test_size,
            folds: rows.folds,
            train_rows: rows.train.len(),
            held_out: rows
                .held_out
                .iter()
                .map(|&i| cache.paths[i].clone())
                .collect(),
        },
    };
    Ok(FinetuneHead {
        file,
        block: fitted.block,
        cls_w: fitted.cls_w,
        cls_b: fitted.cls_b,
    })
}

/// What `eval` reports for a fine-tuned head (report.json's fields, as for other heads).
#[derive(Debug, Clone, Serialize)]
pub struct FinetuneEval {
    pub cache: String,
    pub rows: String,
    pub params: Params,
    pub prediction_rule: String,
    pub metrics: Metrics,
    pub misclassified: Vec<Misclassified>,
}

/// Held-out (or, with `all`, every row's) metrics of a fine-tuned head on a spatial cache.
pub fn evaluate(head: &FinetuneHead, cache: &FeatureCache, all: bool) -> Result<FinetuneEval> {
    check_cache(cache, &head.block)?;
    let classes = &head.file.classes;
    let class_map: Vec<usize> = cache
        .classes()
        .iter()
        .map(|c| {
            classes.iter().position(|h| h == c).ok_or_else(|| {
                anyhow::anyhow!(
                    "feature cache {} has class {c:?}, which the head was not trained on",
                    cache.dir.display()
                )
            })
        })
        .collect::<Result<_>>()?;
    let rows: Vec<usize> = if all {
        (0..cache.rows()).collect()
    } else {
        let by_path: HashMap<&str, usize> = cache
            .paths
            .iter()
            .enumerate()
            .map(|(i, p)| (p.as_str(), i))
            .collect();
        let missing: Vec<&str> = head
            .file
            .split
            .held_out
            .iter()
            .filter(|p| !by_path.contains_key(p.as_str()))
            .map(|p| p.as_str())
            .collect();
        if !missing.is_empty() {
            bail!(
                "{} held-out image(s) recorded in the head are not in feature cache {} (e.g. {:?}); evaluate on the \
                 cache the head was trained on, or use --all for a separate test cache",
                missing.len(),
                cache.dir.display(),
                &missing[..missing.len().min(3)]
            );
        }
        head.file
            .split
            .held_out
            .iter()
            .map(|p| by_path[p.as_str()])
            .collect()
    };
    if rows.is_empty() {
        bail!(
            "nothing to evaluate: 0 rows selected from {}",
            cache.dir.display()
        );
    }
    let x: Vec<&[f32]> = rows.iter().map(|&i| cache.row(i)).collect();
    let y: Vec<usize> = rows.iter().map(|&i| class_map[cache.y[i]]).collect();
    let proba = head.predict_proba(&x)?;
    let m = metrics::compute(classes, &y, proba.view());
    let mut misclassified = Vec::new();
    for (j, &i) in rows.iter().enumerate() {
        let p = proba.row(j);
        let pred = metrics::argmax_f32(p.iter().copied());
        if pred != y[j] {
            misclassified.push(Misclassified {
                path: cache.paths[i].clone(),
                truth: classes[y[j]].clone(),
                predicted: classes[pred].clone(),
                p_predicted: p[pred],
                p_truth: p[y[j]],
            });
        }
    }
    Ok(FinetuneEval {
        cache: cache.dir.display().to_string(),
        rows: if all { "all" } else { "held-out" }.into(),
        params: head.file.params.clone(),
        prediction_rule: "argmax of the fine-tuned network's logits (softmax probabilities)".into(),
        metrics: m,
        misclassified,
    })
}
