//! Reading a backbone file and verifying it before anything runs it: present, non-empty,
//! its sha256 equal to the registry's (or `models/manifest.json`'s), decodable ONNX.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};
use tract_onnx::pb;
use tract_onnx::prelude::*;

use crate::registry::ModelEntry;
/// Read the ONNX file, check its sha256 (registry pin, else `manifest.json`), decode it.
pub(super) fn read_verified(
    entry: &ModelEntry,
    models_dir: &Path,
) -> Result<(pb::ModelProto, String)> {
    let path = entry.path(models_dir);
    let bytes = std::fs::read(&path).with_context(|| {
        if entry.source.kind == "local" {
            format!("cannot read model file {}", path.display())
        } else {
            format!(
                "cannot read model file {} for {} (run `make models MODELS={}`?)",
                path.display(),
                entry.name,
                entry.name
            )
        }
    })?;
    if bytes.is_empty() {
        bail!(
            "model file {} is empty (0 bytes); delete it and re-fetch",
            path.display()
        );
    }
    let sha = hex::encode(Sha256::digest(&bytes));
    let want = if entry.sha256.is_empty() {
        manifest_sha(models_dir, &entry.name)
    } else {
        Some(entry.sha256.to_lowercase())
    };
    if let Some(want) = want {
        if want != sha {
            bail!(
                "sha256 mismatch for {} ({}): expected {want}, file has {sha}; \
                 refusing it (delete it and run `make models MODELS={}`)",
                path.display(),
                entry.name,
                entry.name
            );
        }
    }
    let proto = onnx().proto_model_for_read(&mut &bytes[..]).map_err(|e| {
        anyhow!(
            "{}: not a valid ONNX file (truncated or corrupt?): {e}",
            path.display()
        )
    })?;
    Ok((proto, sha))
}

fn manifest_sha(models_dir: &Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(models_dir.join("manifest.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get(name)?
        .get("sha256")?
        .as_str()
        .map(|s| s.to_lowercase())
}
