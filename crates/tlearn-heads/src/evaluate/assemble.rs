//! The one cache a head is evaluated on, from the caches a user names: each of the head's
//! parts found by its fingerprint, the parts joined in the head's column order.

use crate::cache::FeatureCache;
use crate::model_file::SavedHead;
use crate::train::inputs::{check_same_images, concat, CutInput, CutsError};
use anyhow::Result;
use tlearn_cache::NamedCache;

/// The one cache (columns laid out as the head's parts) that `eval` scores a head on, from the
/// caches `named` (a set's cuts and/or plain caches, possibly of two backbones). Each part is
/// found by its fingerprint, compared by value; a part in none of them is refused, naming it
/// and what was searched. A head with one part given one cache gets that cache as it is (the
/// fingerprint check, with its field-by-field reason, is then `evaluate`'s).
/// The cache among `named` that holds `part` (its fingerprint, compared by value).
pub(crate) fn find_part<'a>(
    part: &crate::model_file::FeaturePart,
    named: &'a [NamedCache],
) -> Option<&'a NamedCache> {
    named.iter().find(|n| {
        tlearn_cache::existing_fingerprint(&n.dir)
            .is_some_and(|f| f.compare(&part.extractor, "", "").is_none())
    })
}

pub fn assemble_for_head(head: &SavedHead, named: &[NamedCache]) -> Result<FeatureCache> {
    let parts = head.parts();
    if named.is_empty() {
        return Err(CutsError::Empty.into());
    }
    if parts.len() == 1 && named.len() == 1 {
        return Ok(FeatureCache::load(&named[0].dir)?);
    }
    let mut caches = Vec::with_capacity(parts.len());
    for p in &parts {
        match find_part(p, named) {
            Some(n) => caches.push(FeatureCache::load(&n.dir)?),
            None => {
                let searched: Vec<String> = named
                    .iter()
                    .map(|n| match tlearn_cache::existing_fingerprint(&n.dir) {
                        Some(f) => match f.compare(&p.extractor, "cache", "head") {
                            Some(d) => format!("{} ({d})", n.dir.display()),
                            None => n.dir.display().to_string(),
                        },
                        None => format!("{} (no meta.json)", n.dir.display()),
                    })
                    .collect();
                return Err(CutsError::PartMissing {
                    part: p.name.clone(),
                    what: format!(
                        "{} layer {} {} pooling, {} dims",
                        p.extractor.backbone, p.extractor.layer, p.extractor.pool, p.dim
                    ),
                    searched: searched.join("; "),
                }
                .into());
            }
        }
    }
    let inputs: Vec<CutInput> = caches
        .into_iter()
        .zip(&parts)
        .map(|(cache, p)| CutInput {
            name: p.name.clone(),
            backbone: 0,
            bottleneck: false,
            cache,
        })
        .collect();
    check_same_images(&inputs)?;
    let refs: Vec<&FeatureCache> = inputs.iter().map(|i| &i.cache).collect();
    Ok(concat(&refs))
}
