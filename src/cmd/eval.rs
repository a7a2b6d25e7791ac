use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use tlearn_heads::{report, FeatureCache, SavedHead};

#[derive(Args)]
pub struct EvalArgs {
    /// Saved head (head.json written by `tlearn train`).
    #[arg(long)]
    pub head: PathBuf,
    /// Feature cache: the one the head was trained on (its held-out rows are used), or a
    /// separate test cache with --all.
    pub cache: PathBuf,
    /// Evaluate on every row of the cache instead of the held-out rows recorded in the head.
    #[arg(long)]
    pub all: bool,
    /// Output directory for report.json, confusion.png and report.html (one self-contained page;
    /// also cv-curve.png and codes-map.png).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let head = SavedHead::load(&args.head)?;
    let cache = FeatureCache::load(&args.cache)?;
    let rep = tlearn_heads::evaluate(&head, &cache, args.all)?;
    print!("{}", report::eval_text(&rep, head.classes()));
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let json = args.out.join("report.json");
    let mut v = serde_json::to_value(&rep)?;
    v["classes"] = serde_json::to_value(head.classes())?;
    tlearn_cache::write_atomic_bytes(&json, serde_json::to_string_pretty(&v)?.as_bytes())?;
    let png = args.out.join("confusion.png");
    let title = format!(
        "{} — accuracy {:.2}% on {} {} images",
        rep.params.kind(),
        100.0 * rep.metrics.accuracy,
        rep.metrics.n,
        rep.rows
    );
    let with_text = report::confusion_png(&rep.metrics.confusion, head.classes(), &title, &png)?;
    if !with_text {
        eprintln!(
            "note: no TrueType font found (set TLEARN_FONT=/path/to/font.ttf); {} has no labels",
            png.display()
        );
    }
    let html = super::eval_html::write(&args.head, &head, &cache, &rep, &args.out, &png)?;
    println!(
        "wrote {}, {} and {}",
        json.display(),
        png.display(),
        html.display()
    );
    Ok(())
}
