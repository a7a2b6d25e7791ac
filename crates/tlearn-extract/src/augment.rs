//! Test-time augmentation: which views of an image are encoded (their features are averaged;
//! with `extract --keep-views` every view's features are also kept, for training rows).
//!
//! All views are `crop×crop` windows of the image resized so its short side is
//! `round(crop * resize_ratio)` (see `preprocess`), optionally mirrored left-right:
//! - `none`: the centre crop (what the backbone was evaluated with);
//! - `flip`: centre crop + its mirror (2 views);
//! - `crops5`: centre + the four corners (5 views);
//! - `crops10`: the five crops and their mirrors (10 views).

pub use tlearn_cache::Augment;

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

/// The views `augment` encodes, in order.
pub fn views(augment: Augment) -> Vec<View> {
    let plain = |anchor| View {
        anchor,
        flip: false,
    };
    let flipped = |anchor| View { anchor, flip: true };
    match augment {
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

impl View {
    /// The view's name in a cache's `meta.json` (`centre`, `top-left`, `bottom-right-flip`).
    pub fn name(&self) -> String {
        let anchor = match self.anchor {
            Anchor::Centre => "centre",
            Anchor::TopLeft => "top-left",
            Anchor::TopRight => "top-right",
            Anchor::BottomLeft => "bottom-left",
            Anchor::BottomRight => "bottom-right",
        };
        if self.flip {
            format!("{anchor}-flip")
        } else {
            anchor.to_owned()
        }
    }
}

/// The names of the views `augment` encodes, in order.
pub fn view_names(augment: Augment) -> Vec<String> {
    views(augment).iter().map(View::name).collect()
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
            assert_eq!(views(a).len(), n);
        }
        let v10 = views(Augment::Crops10);
        assert_eq!(v10.iter().filter(|v| v.flip).count(), 5);
    }

    #[test]
    fn average_is_elementwise_mean() {
        assert_eq!(average(&[vec![1.0, 2.0], vec![3.0, 6.0]]), vec![2.0, 4.0]);
    }
}
