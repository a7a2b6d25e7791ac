//! `tlearn fit`: the whole job by the library's `fit` (extract, train, eval, report); prints
//! what a person reads first, the rest stays in the files (and on the terminal with `-v`).

use anyhow::Result;
use tlearn_heads::train::Event;
use tlearn_model::fit::{fit, FitEvent};

use crate::flags::hiargs::Fit;

pub fn run(a: Fit) -> Result<()> {
    let verbose = a.verbose;
    // The second backbone's summary leaves out the classes when they are the first's.
    let mut classes_said = None;
    let out = fit(&a.dataset, &a.out, &a.options, |ev| match ev {
        FitEvent::Extracting { model, cache } => {
            eprintln!("extracting {model} into {}", cache.display())
        }
        FitEvent::Extracted(summary) => {
            if classes_said.as_ref() == Some(&summary.classes) {
                let mut brief = summary.clone();
                brief.classes.clear();
                eprint!("{}", brief.render());
            } else {
                classes_said = Some(summary.classes.clone());
                eprint!("{}", summary.render());
            }
        }
        FitEvent::Note(n) => eprintln!("note: {n}"),
        FitEvent::Train(Event::Stage(s)) if verbose => eprintln!("{s}"),
        FitEvent::Train(Event::Skipped { set, why }) if verbose => {
            eprintln!("  {set}: not screened ({why})")
        }
        FitEvent::Train(Event::Cv { set, result: r }) if verbose => eprintln!(
            "  cv {set} {} [{}]: {:.4} ({:.2} s)",
            r.params, r.transform, r.mean_accuracy, r.seconds
        ),
        FitEvent::Train(_) => {}
    })?;
    let cv = &out.trained.cv.report;
    println!(
        "split: {} training images ({} folds), {} held out",
        cv.split.train_rows.len(),
        cv.folds,
        cv.split.test_rows.len()
    );
    print!("{}", tlearn_report::cv_table(cv, verbose));
    if let Some(cuts) = &out.trained.cv.cuts {
        print!("{}", tlearn_report::cuts::text(cuts, verbose));
    }
    let ev = &out.evaluation;
    if verbose {
        print!(
            "{}",
            tlearn_report::eval_text(&ev.report, ev.head.classes(), true)
        );
    } else {
        print!("{}", tlearn_report::held_out_text(&ev.report));
    }
    for n in &out.eval_files.notes {
        eprintln!("note: {n}");
    }
    println!(
        "wrote {}, {}, {} and {}",
        out.train_files.files.head.display(),
        out.train_files.files.cv.display(),
        out.eval_files.json.display(),
        out.eval_files.html.display()
    );
    Ok(())
}
