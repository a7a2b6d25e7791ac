//! The extractor fingerprint: everything that determines a cache's vectors. Two caches (or a
//! cache and a saved head) are compatible iff their fingerprints are equal **by value**: a
//! `meta.json` or `head.json` re-indented, or rewritten with `127` for `127.0` (as `jq .`
//! does), parses to the same [`Fingerprint`]; a real difference is named field by field
//! ([`Fingerprint::compare`]).
//!
//! The types that make up the fingerprint (pooling, preprocessing, augmentation) are part of
//! the format, so they are defined here; what they mean at extraction time (how a view is cut,
//! how a tensor is filled) lives in `tlearn-extract`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Tensor layout the network expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Layout {
    Nchw,
    Nhwc,
}

/// Channel order the network expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChannelOrder {
    Rgb,
    Bgr,
}

/// How an image becomes the input tensor, exactly as the backbone was trained.
///
/// Pipeline: decode → RGB (alpha composited on `background`) → resize so the short side is
/// `round(crop * resize_ratio)` → centre crop `crop×crop` → value `v` in `0..=255` becomes
/// `(v * value_scale - mean[c]) / std[c]` (mean/std in the same units as `v * value_scale`) →
/// channel order → layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// Square crop side fed to the network (224, 240, 260, ...).
    pub crop: u32,
    /// Short side before cropping = crop * resize_ratio (256/224 for the ImageNet convention).
    pub resize_ratio: f32,
    /// Multiplier applied to 0..255 pixel values before mean/std (1.0 or 1/255).
    pub value_scale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub channels: ChannelOrder,
    pub layout: Layout,
    /// RGB background for alpha compositing.
    #[serde(default = "white")]
    pub background: [u8; 3],
    /// How JPEGs are decoded. `Full` is not written out, so fingerprints made before this field
    /// existed (always full decodes) and full-decode fingerprints made now are the same JSON.
    #[serde(default, skip_serializing_if = "DecodeMode::is_full")]
    pub decode: DecodeMode,
}

/// How a JPEG becomes pixels before the resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DecodeMode {
    /// Every pixel decoded, then resized: reproduces the reference tensors.
    #[default]
    Full,
    /// JPEGs decoded at the smallest DCT scale (1/2, 1/4, 1/8) whose short side is still at
    /// least the resize target, then resized exactly; other formats as `Full`.
    Reduced,
}

impl DecodeMode {
    pub fn is_full(&self) -> bool {
        *self == DecodeMode::Full
    }
}

impl std::str::FromStr for DecodeMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(DecodeMode::Full),
            "reduced" => Ok(DecodeMode::Reduced),
            _ => Err(format!(
                "unknown decode mode '{s}' (expected reduced or full)"
            )),
        }
    }
}

impl std::fmt::Display for DecodeMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DecodeMode::Full => "full",
            DecodeMode::Reduced => "reduced",
        })
    }
}

fn white() -> [u8; 3] {
    [255, 255, 255]
}

/// How a spatial cut `[1, C, H, W]` becomes a vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    #[default]
    Avg,
    Max,
    Flatten,
}

impl std::str::FromStr for Pooling {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "avg" | "mean" => Ok(Pooling::Avg),
            "max" => Ok(Pooling::Max),
            "flatten" | "none" => Ok(Pooling::Flatten),
            _ => Err(format!(
                "unknown pooling '{s}' (expected avg, max or flatten)"
            )),
        }
    }
}

impl std::fmt::Display for Pooling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Pooling::Avg => "avg",
            Pooling::Max => "max",
            Pooling::Flatten => "flatten",
        })
    }
}

/// Test-time augmentation: which views of an image are encoded (their features averaged).
/// `none`: the centre crop; `flip`: centre + mirror; `crops5`: centre + four corners;
/// `crops10`: the five crops and their mirrors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Augment {
    #[default]
    None,
    Flip,
    Crops5,
    Crops10,
}

impl Augment {
    pub fn as_str(self) -> &'static str {
        match self {
            Augment::None => "none",
            Augment::Flip => "flip",
            Augment::Crops5 => "crops5",
            Augment::Crops10 => "crops10",
        }
    }
}

impl std::str::FromStr for Augment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Augment::None),
            "flip" => Ok(Augment::Flip),
            "crops5" | "5crop" | "five-crop" => Ok(Augment::Crops5),
            "crops10" | "10crop" | "ten-crop" => Ok(Augment::Crops10),
            _ => Err(format!(
                "unknown augmentation '{s}' (expected none, flip, crops5 or crops10)"
            )),
        }
    }
}

impl std::fmt::Display for Augment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that determines the vectors: stored as `extractor` in `meta.json` and `head.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub backbone: String,
    pub sha256: String,
    pub layer: String,
    pub pool: Pooling,
    pub preprocess: Preprocess,
    pub augment: Augment,
}

/// One field whose value differs between two fingerprints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDiff {
    /// Dotted path with array indices, e.g. `extractor.preprocess.mean[1]`.
    pub field: String,
    /// The value on each side, as it is written in the files.
    pub left: String,
    pub right: String,
}

/// The fields in which two fingerprints differ, with the names of the two sides
/// (`head`/`cache`, `cache`/`this run`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FingerprintDiff {
    pub left_name: String,
    pub right_name: String,
    pub fields: Vec<FieldDiff>,
}

impl std::fmt::Display for FingerprintDiff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, d) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(
                f,
                "{}: {} has {}, {} has {}",
                d.field, self.left_name, d.left, self.right_name, d.right
            )?;
        }
        Ok(())
    }
}

impl Fingerprint {
    /// `None` when equal by value; otherwise every differing field, named from `extractor.`.
    pub fn compare(
        &self,
        other: &Fingerprint,
        left_name: &str,
        right_name: &str,
    ) -> Option<FingerprintDiff> {
        if self == other {
            return None;
        }
        let mut fields = Vec::new();
        walk(
            "extractor",
            &self.canonical(),
            &other.canonical(),
            &mut fields,
        );
        if fields.is_empty() {
            // Equal text but unequal values: only a NaN can do that.
            fields.push(FieldDiff {
                field: "extractor".into(),
                left: "a NaN value".into(),
                right: "a NaN value".into(),
            });
        }
        Some(FingerprintDiff {
            left_name: left_name.into(),
            right_name: right_name.into(),
            fields,
        })
    }

    /// The JSON a file holds (numbers as written, `0.456` not `0.45600000023841858`), with the
    /// decode mode spelt out even where the file leaves `full` implicit, so that a difference
    /// reads `full` against `reduced`.
    fn canonical(&self) -> Value {
        let text = serde_json::to_string(self).expect("a fingerprint serialises");
        let mut v: Value = serde_json::from_str(&text).expect("serde_json reads what it wrote");
        if let Some(p) = v.get_mut("preprocess").and_then(Value::as_object_mut) {
            p.entry("decode")
                .or_insert_with(|| Value::from(self.preprocess.decode.to_string()));
        }
        v
    }
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<FieldDiff>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let null = Value::Null;
                walk(
                    &format!("{path}.{k}"),
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                walk(&format!("{path}[{i}]"), u, v, out);
            }
        }
        _ if a != b => out.push(FieldDiff {
            field: path.into(),
            left: a.to_string(),
            right: b.to_string(),
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(decode: DecodeMode) -> Preprocess {
        Preprocess {
            decode,
            ..crate::testing::fingerprint("efficientnet-lite0", "00").preprocess
        }
    }

    #[test]
    fn full_decode_keeps_the_fingerprint_of_caches_made_before_the_field() {
        let full = serde_json::to_value(spec(DecodeMode::Full)).unwrap();
        assert!(full.get("decode").is_none(), "{full}");
        let old: Preprocess = serde_json::from_value(full).unwrap();
        assert_eq!(old.decode, DecodeMode::Full);
        let reduced = serde_json::to_value(spec(DecodeMode::Reduced)).unwrap();
        assert_eq!(reduced["decode"], "reduced");
        let back: Preprocess = serde_json::from_value(reduced).unwrap();
        assert_eq!(back, spec(DecodeMode::Reduced));
        assert_eq!("full".parse::<DecodeMode>(), Ok(DecodeMode::Full));
        assert!("half".parse::<DecodeMode>().is_err());
    }
}
