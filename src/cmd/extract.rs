//! `tlearn extract`: a folder of images into a feature cache (with `--model2`, two backbones'
//! caches in one pass), by the library's `Extractor`.

use anyhow::Result;
use tlearn_extract::{Extractor, ExtractorOptions};

use crate::flags::hiargs::Extract;

pub fn run(a: Extract) -> Result<()> {
    let Some(second) = &a.second else {
        let extractor = Extractor::open(&a.model, &a.layer, &a.options)?;
        let summary = extractor.extract_dir(&a.dataset, &a.out, &a.cache)?;
        eprint!("{}", summary.render());
        return write_report(&a, &summary);
    };
    let options2 = ExtractorOptions {
        decode: second.decode,
        ..a.options.clone()
    };
    // Both backbones load side by side.
    let (first, other) = std::thread::scope(|s| {
        let other = s.spawn(|| Extractor::open(&second.model, &second.layer, &options2));
        let first = Extractor::open(&a.model, &a.layer, &a.options);
        (
            first,
            other.join().expect("opening a backbone does not panic"),
        )
    });
    let (first, other) = (first?, other?);
    let summaries = Extractor::extract_dir_together(
        &[(&first, a.out.as_path()), (&other, second.out.as_path())],
        &a.dataset,
        &a.cache,
    )?;
    for (i, s) in summaries.iter().enumerate() {
        // The second summary leaves out the classes when they are the first's.
        if i > 0 && s.classes == summaries[0].classes {
            let mut brief = s.clone();
            brief.classes.clear();
            eprint!("{}", brief.render());
        } else {
            eprint!("{}", s.render());
        }
    }
    write_report(&a, &summaries)
}

/// `--report FILE`: the summary (or summaries) as JSON.
fn write_report(a: &Extract, summary: &impl serde::Serialize) -> Result<()> {
    if let Some(p) = &a.report {
        tlearn_cache::write_atomic_bytes(
            p,
            (serde_json::to_string_pretty(summary)? + "\n").as_bytes(),
        )?;
    }
    Ok(())
}
