//! `tlearn eval`: the held-out report of a saved head, as text and files.

use anyhow::Result;
use tlearn_heads::Evaluation;

use crate::flags::eval::EvalArgs;

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
    if tlearn_finetune::saved::is_finetune(&args.head) {
        return super::finetune::eval(&args.head, &args.caches, args.all, &args.out);
    }
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
