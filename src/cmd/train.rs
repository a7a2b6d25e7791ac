//! `tlearn train`: the selection and fit by the library's `Training`, its table and files.

use anyhow::{bail, Context, Result};
use tlearn_extract::registry::{self, Registry};
use tlearn_heads::train::{Event, Training};

use crate::flags::train::{HeadFlag, TrainArgs};

/// The files `train` writes into --out (atomically, through temp files).
const RUN_FILES: [&str; 4] = [
    "head.json",
    "cv.json",
    "cv-cuts.png",
    tlearn_cache::atomic::PROBE_FILE,
];

pub fn run(args: TrainArgs) -> Result<()> {
    // Fail now, not after the cross-validation, when the results cannot be saved. One `train`
    // at a time per --out (two at once mixed their head.json and cv.json); the lock holder also
    // removes what a killed run left half-written there.
    let _lock = tlearn_cache::CacheLock::acquire_for(&args.out, &RUN_FILES, |holder| {
        eprintln!(
            "waiting: {} is being written by {holder}",
            args.out.display()
        )
    })
    .with_context(|| format!("--out {} is not writable", args.out.display()))?;
    tlearn_cache::check_writable(&args.out)
        .with_context(|| format!("--out {} is not writable", args.out.display()))?;
    if let HeadFlag::Finetune = args.head {
        let [cache] = args.caches.as_slice() else {
            bail!("--head finetune trains on one spatial cache");
        };
        return super::finetune::train(
            cache,
            args.seed,
            args.test_size,
            &args.finetune,
            args.models_dir.as_deref(),
            &args.out,
        );
    }
    // Each backbone's bottleneck (its registry default cut), for the CS231n scenario.
    let reg = Registry::load(&registry::models_dir(args.models_dir.as_deref())).ok();
    let bottleneck = |backbone: &str| {
        reg.as_ref()
            .and_then(|r| r.get(backbone).ok())
            .map(|m| m.default_cut.clone())
    };
    let training = Training::open(&args.caches, &bottleneck, args.config())?;
    for note in training.notes() {
        eprintln!("note: {note}");
    }
    let finetune = match &args.finetune.finetune_on {
        Some(maps) => super::finetune::Candidate::open(
            maps,
            &args.head,
            &training,
            &args.finetune,
            args.models_dir.as_deref(),
        )?,
        None => None,
    };
    let inputs = training.inputs();
    for i in inputs {
        println!(
            "cache {}: {} rows, dim {}, {} classes{}{}",
            i.cache.dir.display(),
            i.cache.rows(),
            i.cache.meta.dim,
            i.cache.classes().len(),
            if inputs.len() > 1 {
                format!(" (cut {})", i.name)
            } else {
                String::new()
            },
            if i.cache.meta.views.is_empty() {
                String::new()
            } else {
                format!(", {} kept views", i.cache.meta.views.len())
            }
        );
    }
    if let Some(rule) = training.selection_rule() {
        println!("selection over cuts: {rule}");
    }
    let mut out = training.run(|ev| match ev {
        Event::Stage(s) => eprintln!("{s}"),
        Event::Skipped { set, why } => eprintln!("  {set}: not screened ({why})"),
        Event::Cv { .. } if !args.verbose => {}
        Event::Cv { set, result: r } => eprintln!(
            "  cv {set} {} [{}{}]: {} ({:.2} s)",
            r.params,
            r.transform,
            if r.view_rows { ", view rows" } else { "" },
            match &r.error {
                None if r.skipped => "skipped (C path stopped)".into(),
                None => format!("{:.4}", r.mean_accuracy),
                Some(e) => format!("failed: {e}"),
            },
            r.seconds
        ),
    })?;
    let cv = &out.cv.report;
    println!(
        "split: {} training rows ({} folds), {} held out",
        cv.split.train_rows.len(),
        cv.folds,
        cv.split.test_rows.len()
    );
    print!("{}", tlearn_report::cv_table(cv, args.verbose));
    if let Some(cuts) = &out.cv.cuts {
        print!("{}", tlearn_report::cuts::text(cuts, args.verbose));
    }
    let kept = match finetune {
        Some(candidate) => candidate.compete(&training, &mut out, args.seed, &args.finetune)?,
        None => None,
    };
    let written = match kept {
        None => tlearn_report::train_files::write(&out, &args.out)?,
        Some(mut head) => {
            tlearn_report::train_files::write_replacing_head(&out, &args.out, |path| {
                head.save(path)
            })?
        }
    };
    match &written.cuts_png {
        Some(png) => println!(
            "wrote {}, {} and {}",
            written.files.head.display(),
            written.files.cv.display(),
            png.display()
        ),
        None => println!(
            "wrote {} and {}",
            written.files.head.display(),
            written.files.cv.display()
        ),
    }
    Ok(())
}
