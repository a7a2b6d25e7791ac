//! `tlearn extract`: a folder of images into a feature cache, by the library's `Extractor`.

use anyhow::Result;
use tlearn_extract::Extractor;

use crate::flags::hiargs::Extract;

pub fn run(a: Extract) -> Result<()> {
    let extractor = Extractor::open(&a.model, &a.layer, &a.options)?;
    let summary = extractor.extract_dir(&a.dataset, &a.out, &a.cache)?;
    eprint!("{}", summary.render());
    if let Some(p) = &a.report {
        tlearn_cache::write_atomic_bytes(
            p,
            (serde_json::to_string_pretty(&summary)? + "\n").as_bytes(),
        )?;
    }
    Ok(())
}
