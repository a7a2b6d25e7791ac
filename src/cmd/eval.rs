use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use tlearn_heads::{cuts, eval_report, report, SavedHead};

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
    if tlearn_finetune::saved::is_finetune(&args.head) {
        return super::finetune::eval(&args.head, &args.caches, args.all, &args.out);
    }
    let head = SavedHead::load(&args.head)?;
    let mut named = Vec::new();
    for p in &args.caches {
        named.extend(tlearn_cache::resolve(p)?);
    }
    let cache = cuts::assemble_for_head(&head, &named)?;
    let rep = tlearn_heads::evaluate(&head, &cache, args.all)?;
    print!("{}", report::eval_text(&rep, head.classes()));
    let written = eval_report::write(
        &args.head,
        &head,
        &cache,
        &rep,
        &args.out,
        &tlearn_extract::thumbnail::thumbnail_jpeg,
    )?;
    for n in &written.notes {
        eprintln!("note: {n}");
    }
    println!(
        "wrote {}, {} and {}",
        written.json.display(),
        written.confusion.display(),
        written.html.display()
    );
    Ok(())
}
