//! `tlearn predict`: classify images with a saved head (`tlearn_model::Model`, which extracts
//! their codes with the backbone(s) the head records), or with the full ImageNet model
//! (`tlearn_extract::classify`); this module prints.

use anyhow::{bail, Result};
use tlearn_extract::budget::MemoryBudget;
use tlearn_extract::classify::{self, Failure, Prediction};
use tlearn_model::Model;

use crate::flags::hiargs::{Classifier, Predict};

pub fn run(a: Predict) -> Result<()> {
    let (preds, failures) = match &a.with {
        Classifier::Head { path, options } if tlearn_finetune::saved::is_finetune(path) => {
            super::finetune::predict(path, &a.images, options, a.top)?
        }
        Classifier::Head { path, options } => {
            let model = Model::open(path, options.clone())?;
            with_head(&model, &a)?
        }
        Classifier::Imagenet {
            model,
            models_dir,
            backbone,
            decode_memory,
        } => classify::imagenet_top_k(
            model,
            models_dir.as_deref(),
            &a.images,
            a.top,
            backbone,
            &MemoryBudget::from_setting(*decode_memory),
        )?,
    };
    if a.json {
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
            a.images.len()
        );
    }
    Ok(())
}

/// Each image's top classes by the head, and the images that could not be classified.
fn with_head(model: &Model, a: &Predict) -> Result<(Vec<Prediction>, Vec<Failure>)> {
    let out = model.predict_paths(&a.images)?;
    let names = |i: usize| model.classes()[i].clone();
    let failures = out
        .errors
        .iter()
        .map(|e| Failure {
            path: a.images[e.index].display().to_string(),
            error: e.error.clone(),
        })
        .collect();
    let mut failed = out.errors.iter().map(|e| e.index).peekable();
    let mut preds = Vec::new();
    for (i, path) in a.images.iter().enumerate() {
        if failed.peek() == Some(&i) {
            failed.next();
            continue;
        }
        let probs = out.probabilities.row(i).to_vec();
        preds.push(classify::prediction(
            path.display().to_string(),
            &probs,
            &names,
            a.top,
        ));
    }
    Ok((preds, failures))
}
