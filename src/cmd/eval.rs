use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use tlearn_heads::Evaluation;

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

/// The files `eval` writes into --out (atomically, through temp files).
const REPORT_FILES: [&str; 6] = [
    "report.json",
    "confusion.png",
    "report.html",
    "cv-curve.png",
    "cv-cuts.png",
    "codes-map.png",
];

pub fn run(args: EvalArgs) -> Result<()> {
    // Not while a `train` (or another `eval`) writes --out: its head.json and cv.json would be
    // from two runs.
    let _lock = tlearn_cache::CacheLock::acquire_for(&args.out, &REPORT_FILES, |holder| {
        eprintln!(
            "waiting: {} is being written by {holder}",
            args.out.display()
        )
    })?;
    let ev = Evaluation::run(&args.head, &args.caches, args.all)?;
    print!(
        "{}",
        tlearn_report::eval_text(&ev.report, ev.head.classes(), true)
    );
    let written = tlearn_report::eval_files::write(
        &ev,
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
