//! `tlearn predict`: classify images with a saved head (extracting their CNN codes with the
//! backbone the head records), or with the full ImageNet model (`--imagenet`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use ndarray::Array2;
use rayon::prelude::*;
use serde::Serialize;
use tlearn_extract::backbone::Backbone;
use tlearn_extract::extract::{encode_bytes, fingerprint, Encoder};
use tlearn_extract::imagenet::{self, ImagenetLabels};
use tlearn_extract::pixels::Pixels;
use tlearn_extract::registry::{self, Registry};
use tlearn_heads::SavedHead;

use super::encoder::{entry_for, CustomModelArgs};

#[derive(Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["head", "imagenet"])))]
pub struct PredictArgs {
    /// Images to classify.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// A saved head (head.json from `tlearn train`).
    #[arg(long)]
    pub head: Option<PathBuf>,
    /// Use the full (uncut) backbone and print its ImageNet top-k classes.
    #[arg(long)]
    pub imagenet: bool,
    /// Backbone for --imagenet (registry name; default efficientnet-lite0). With --head: where to
    /// find the head's backbone if it is an own ONNX file (a path).
    #[arg(long)]
    pub model: Option<String>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Models directory (default: $TLEARN_MODELS, else <repo>/models).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Prediction {
    path: String,
    /// Best class (name) and its probability.
    class: String,
    index: usize,
    probability: f32,
    /// Top classes, best first.
    top: Vec<Ranked>,
}

#[derive(Serialize)]
struct Ranked {
    class: String,
    index: usize,
    probability: f32,
}

#[derive(Serialize)]
struct Failure {
    path: String,
    error: String,
}

pub fn run(args: PredictArgs) -> Result<()> {
    let (preds, failures) = if let Some(head) = &args.head {
        predict_head(&args, head)?
    } else {
        predict_imagenet(&args)?
    };
    if args.json {
        let v = serde_json::json!({ "predictions": preds, "errors": failures });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for p in &preds {
            println!("{}", p.path);
            for r in &p.top {
                println!(
                    "  {:>6.2}%  {:>4}  {}",
                    100.0 * r.probability,
                    r.index,
                    r.class
                );
            }
        }
        for f in &failures {
            eprintln!("skipped {}: {}", f.path, f.error);
        }
    }
    if !failures.is_empty() {
        bail!(
            "{} of {} images could not be classified",
            failures.len(),
            args.images.len()
        );
    }
    Ok(())
}

type Outcome = (Vec<Prediction>, Vec<Failure>);

/// Encode every image in parallel; keeps the input order, collects per-file errors.
fn encode_all(
    enc: &dyn Encoder,
    images: &[PathBuf],
    augment: tlearn_extract::augment::Augment,
) -> Vec<Result<Vec<f32>>> {
    images
        .par_iter()
        .map(|p| {
            let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
            encode_bytes(enc, &bytes, augment).with_context(|| format!("{}", p.display()))
        })
        .collect()
}

/// One image's result: its `k` most probable classes, best first.
fn prediction(
    path: String,
    probs: &[f32],
    names: &dyn Fn(usize) -> String,
    k: usize,
) -> Prediction {
    let top = ranked(probs, names, k);
    Prediction {
        path,
        class: top[0].class.clone(),
        index: top[0].index,
        probability: top[0].probability,
        top,
    }
}

fn ranked(probs: &[f32], names: &dyn Fn(usize) -> String, k: usize) -> Vec<Ranked> {
    let mut idx: Vec<usize> = (0..probs.len()).collect();
    idx.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    idx.into_iter()
        .take(k.max(1))
        .map(|i| Ranked {
            class: names(i),
            index: i,
            probability: probs[i],
        })
        .collect()
}

fn split_outcomes(
    images: &[PathBuf],
    results: Vec<Result<Vec<f32>>>,
) -> (Vec<(String, Vec<f32>)>, Vec<Failure>) {
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for (p, r) in images.iter().zip(results) {
        match r {
            Ok(v) => ok.push((p.display().to_string(), v)),
            Err(e) => failed.push(Failure {
                path: p.display().to_string(),
                error: format!("{e:#}"),
            }),
        }
    }
    (ok, failed)
}

fn predict_imagenet(args: &PredictArgs) -> Result<Outcome> {
    let dir = registry::models_dir(args.models_dir.as_deref());
    let name = args.model.as_deref().unwrap_or("efficientnet-lite0");
    let reg = Registry::load(&dir)?;
    let entry = reg.get(name)?;
    let labels = ImagenetLabels::load(&dir)?;
    let backbone = Backbone::load_logits(entry, &dir)?;
    if backbone.dim() != labels.len() {
        bail!(
            "{name}: the full model gives {} scores, not the {} ImageNet classes",
            backbone.dim(),
            labels.len()
        );
    }
    let results = encode_all(
        &backbone,
        &args.images,
        tlearn_extract::augment::Augment::None,
    );
    let (ok, failures) = split_outcomes(&args.images, results);
    let names = |i: usize| labels.name(i).to_string();
    let preds = ok
        .into_iter()
        .map(|(path, logits)| prediction(path, &imagenet::probabilities(&logits), &names, args.top))
        .collect();
    Ok((preds, failures))
}

fn predict_head(args: &PredictArgs, head_path: &Path) -> Result<Outcome> {
    let head = SavedHead::load(head_path)?;
    let fp = head.extractor().clone();
    let encoder: Box<dyn Encoder> = if let Some(p) = Pixels::parse(&fp.backbone) {
        Box::new(p?)
    } else {
        let dir = registry::models_dir(args.models_dir.as_deref());
        let model = args.model.as_deref().unwrap_or(&fp.backbone);
        let mut entry = entry_for(model, &dir, Some(&fp.layer), &CustomModelArgs::defaults())
            .with_context(|| {
                format!(
                    "finding the backbone '{}' that {} was trained on",
                    fp.backbone,
                    head_path.display()
                )
            })?;
        entry.preprocess = fp.preprocess.clone();
        Box::new(Backbone::load(&entry, &dir, Some(&fp.layer), fp.pool)?)
    };
    let actual = fingerprint(encoder.as_ref(), fp.augment);
    head.check_extractor(&actual, "the backbone loaded for prediction")?;

    let results = encode_all(encoder.as_ref(), &args.images, fp.augment);
    let (ok, failures) = split_outcomes(&args.images, results);
    if ok.is_empty() {
        return Ok((vec![], failures));
    }
    let dim = encoder.dim();
    let mut x = Array2::<f32>::zeros((ok.len(), dim));
    for (i, (_, v)) in ok.iter().enumerate() {
        x.row_mut(i)
            .assign(&ndarray::ArrayView1::from(v.as_slice()));
    }
    let probs = head.predict_proba(x.view())?;
    let classes = head.classes().to_vec();
    let names = |i: usize| classes[i].clone();
    let preds = ok
        .into_iter()
        .enumerate()
        .map(|(i, (path, _))| prediction(path, &probs.row(i).to_vec(), &names, args.top))
        .collect();
    Ok((preds, failures))
}
