//! Plain data describing a backbone: where it comes from, what input it takes, where it can be
//! cut. Parsed from `models/registry.toml` (see `registry.rs`) or built for a user's own ONNX file.
//! Everything downstream (preprocessing, cache metadata, saved heads) keys off these values.

use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(decode: DecodeMode) -> Preprocess {
        Preprocess {
            crop: 224,
            resize_ratio: 256.0 / 224.0,
            value_scale: 1.0,
            mean: [127.0; 3],
            std: [128.0; 3],
            channels: ChannelOrder::Rgb,
            layout: Layout::Nchw,
            background: [255; 3],
            decode,
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
