//! Example values for tests, here and in the crates that read caches (feature `testing`), so
//! that a fingerprint literal is written once.

use crate::{Augment, ChannelOrder, Fingerprint, Layout, Pooling, Preprocess};

/// A fingerprint as `tlearn extract` writes it for EfficientNet-Lite-style preprocessing
/// (224 crop, `(v - 127) / 128`), cut `features`, average pooling, no augmentation.
pub fn fingerprint(backbone: &str, sha256: &str) -> Fingerprint {
    Fingerprint {
        backbone: backbone.into(),
        sha256: sha256.into(),
        layer: "features".into(),
        pool: Pooling::Avg,
        preprocess: Preprocess {
            crop: 224,
            resize_ratio: 256.0 / 224.0,
            value_scale: 1.0,
            mean: [127.0; 3],
            std: [128.0; 3],
            channels: ChannelOrder::Rgb,
            layout: Layout::Nchw,
            background: [255; 3],
            decode: Default::default(),
        },
        augment: Augment::None,
    }
}
