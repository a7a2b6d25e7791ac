//! Test-time augmentation: which views of an image are encoded (their features are averaged).
//!
//! All views are `crop×crop` windows of the image resized so its short side is
//! `round(crop * resize_ratio)` (see `preprocess`), optionally mirrored left-right:
//! - `none`: the centre crop (what the backbone was evaluated with);
//! - `flip`: centre crop + its mirror (2 views);
//! - `crops5`: centre + the four corners (5 views);
//! - `crops10`: the five crops and their mirrors (10 views).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Augment {
    #[default]
    None,
    Flip,
    Crops5,
    Crops10,
}

/// Where a view sits in the resized image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Centre,
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
}

/// One view: a crop window and whether it is mirrored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub anchor: Anchor,
    pub flip: bool,
}

const CORNERS: [Anchor; 5] = [
    Anchor::Centre,
    Anchor::TopLeft,
    Anchor::TopRight,
    Anchor::BottomLeft,
    Anchor::BottomRight,
];

impl Augment {
    pub fn views(self) -> Vec<View> {
        let plain = |anchor| View {
            anchor,
            flip: false,
        };
        let flipped = |anchor| View { anchor, flip: true };
        match self {
            Augment::None => vec![plain(Anchor::Centre)],
            Augment::Flip => vec![plain(Anchor::Centre), flipped(Anchor::Centre)],
            Augment::Crops5 => CORNERS.iter().map(|&a| plain(a)).collect(),
            Augment::Crops10 => CORNERS
                .iter()
                .map(|&a| plain(a))
                .chain(CORNERS.iter().map(|&a| flipped(a)))
                .collect(),
        }
    }

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

/// Average equally long feature vectors (the per-image TTA feature).
pub fn average(vectors: &[Vec<f32>]) -> Vec<f32> {
    let n = vectors.len().max(1) as f32;
    let mut out = vec![0f32; vectors.first().map_or(0, Vec::len)];
    for v in vectors {
        for (o, x) in out.iter_mut().zip(v) {
            *o += x;
        }
    }
    out.iter_mut().for_each(|o| *o /= n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_counts_and_names_round_trip() {
        for (a, n) in [
            (Augment::None, 1),
            (Augment::Flip, 2),
            (Augment::Crops5, 5),
            (Augment::Crops10, 10),
        ] {
            assert_eq!(a.views().len(), n);
            assert_eq!(a.as_str().parse::<Augment>().unwrap(), a);
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
        assert!("rotate".parse::<Augment>().is_err());
        let v10 = Augment::Crops10.views();
        assert_eq!(v10.iter().filter(|v| v.flip).count(), 5);
    }

    #[test]
    fn average_is_elementwise_mean() {
        assert_eq!(average(&[vec![1.0, 2.0], vec![3.0, 6.0]]), vec![2.0, 4.0]);
    }
}
