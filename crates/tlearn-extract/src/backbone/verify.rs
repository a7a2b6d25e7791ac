//! Reading a backbone file and verifying it before anything runs it: present, non-empty,
//! its sha256 equal to the registry's (or `models/manifest.json`'s), decodable ONNX.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};
use tract_onnx::pb;

use crate::registry::ModelEntry;

/// Read the ONNX file, check its sha256 (registry pin, else `manifest.json`), decode it.
pub(super) fn read_verified(
    entry: &ModelEntry,
    models_dir: &Path,
) -> Result<(pb::ModelProto, String)> {
    let bytes = read_model(entry, models_dir)?;
    // The hash and the protobuf decoding both read all of the file (about 20 ms each for
    // Lite0's 18 MB): they run side by side, and the decoding reads the bytes in place (tract's
    // `proto_model_for_read` copies them into a second buffer first, another 16 ms).
    let (sha, proto) = std::thread::scope(|s| {
        let hashing = s.spawn(|| verified_sha(entry, models_dir, &bytes));
        let proto = decode_proto(entry, models_dir, &bytes);
        (hashing.join(), proto)
    });
    let sha =
        sha.map_err(|_| anyhow!("hashing {} panicked", entry.path(models_dir).display()))??;
    Ok((proto?, sha))
}

/// The model file's bytes: present, readable and not empty.
fn read_model(entry: &ModelEntry, models_dir: &Path) -> Result<Vec<u8>> {
    let path = entry.path(models_dir);
    let bytes = std::fs::read(&path).with_context(|| {
        if entry.source.kind == "local" {
            format!("cannot read model file {}", path.display())
        } else {
            format!(
                "cannot read model file {} for {} (models are looked for in: {}; fetch it with \
                 `make models MODELS={}` in a checkout, or set TLEARN_MODELS to a directory \
                 that holds it)",
                path.display(),
                entry.name,
                {
                    let found = crate::registry::find_models_dir(None);
                    if found.dir == models_dir {
                        found.searched.join(", then ")
                    } else {
                        format!("{} as given", models_dir.display())
                    }
                },
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
    Ok(bytes)
}

/// The sha256 of the model file's `bytes`, refused when it is not the registry's pin (or, for
/// an entry without one, `manifest.json`'s).
fn verified_sha(entry: &ModelEntry, models_dir: &Path, bytes: &[u8]) -> Result<String> {
    let sha = hex::encode(Sha256::digest(bytes));
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
                entry.path(models_dir).display(),
                entry.name,
                entry.name
            );
        }
    }
    Ok(sha)
}

/// The ONNX protobuf of the model file's `bytes`, decoded in place.
fn decode_proto(entry: &ModelEntry, models_dir: &Path, bytes: &[u8]) -> Result<pb::ModelProto> {
    <pb::ModelProto as prost::Message>::decode(bytes).map_err(|e| {
        anyhow!(
            "{}: not a valid ONNX file (truncated or corrupt?): {e}",
            entry.path(models_dir).display()
        )
    })
}

fn manifest_sha(models_dir: &Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(models_dir.join("manifest.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get(name)?
        .get("sha256")?
        .as_str()
        .map(|s| s.to_lowercase())
}
