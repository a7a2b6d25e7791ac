use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use tlearn_heads::{cuts, report, SavedHead};

#[derive(Args)]
pub struct EvalArgs {
    /// Saved head (head.json written by `tlearn train`).
    #[arg(long)]
    pub head: PathBuf,
    /// Feature cache or cut set: the one the head was trained on (its held-out rows are used),
    /// or a separate test cache with --all. The head's cut(s) are found in a set by their
    /// fingerprints; a head on two backbones' codes needs the second backbone's cache or set
    /// as a second PATH.
    #[arg(required = true, num_args = 1..=2, value_name = "PATH")]
    pub caches: Vec<PathBuf>,
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
    let mut named = Vec::new();
    for p in &args.caches {
        named.extend(tlearn_cache::resolve(p)?);
    }
    let cache = cuts::assemble_for_head(&head, &named)?;
    let rep = tlearn_heads::evaluate(&head, &cache, args.all)?;
    print!("{}", report::eval_text(&rep, head.classes()));
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let json = args.out.join("report.json");
    let mut v = serde_json::to_value(&rep)?;
    v["classes"] = serde_json::to_value(head.classes())?;
    v["parts"] = serde_json::to_value(head.parts())?;
    // The selection over cuts, as `train` recorded it in the cv.json beside the head.
    if let Some(c) = super::eval_html::cut_selection(&args.head) {
        v["cuts"] = c;
    }
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
