//! `tlearn export-codes` and `tlearn import-codes`: a feature cache as Parquet codes and back,
//! by `tlearn_cache::parquet_codes`.

use anyhow::{bail, Result};
use tlearn_cache::{parquet_codes, FeatureCache};

use crate::flags::codes::{ExportCodesArgs, ImportCodesArgs};

pub fn export(a: ExportCodesArgs) -> Result<()> {
    if a.rows_per_file == 0 {
        bail!("--rows-per-file must be at least 1");
    }
    let named = tlearn_cache::resolve(&a.cache)?;
    let one = named.len() == 1;
    for n in &named {
        let out = if one {
            a.out.clone()
        } else {
            a.out.join(tlearn_cache::set::cut_dir_name(&n.name))
        };
        let cache = FeatureCache::load(&n.dir)?;
        let files = parquet_codes::export(&cache, &out, a.rows_per_file)?;
        eprintln!(
            "{} rows × {} dims ({} skipped) of {} → {} ({files} Parquet file{})",
            cache.rows(),
            cache.meta.dim,
            cache.skipped.len(),
            n.dir.display(),
            out.display(),
            if files == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

pub fn import(a: ImportCodesArgs) -> Result<()> {
    if a.out.join(tlearn_cache::META_FILE).exists() {
        bail!(
            "{} already holds a feature cache; import into a new or empty folder",
            a.out.display()
        );
    }
    let cache = parquet_codes::import(&a.codes, &a.out)?;
    eprintln!(
        "{} rows × {} dims ({} skipped) of {} → {}",
        cache.rows(),
        cache.meta.dim,
        cache.skipped.len(),
        a.codes.display(),
        a.out.display()
    );
    Ok(())
}
