//! The "raw pixels" pseudo-backbone: an image resized to a small square and flattened.
//! It is the baseline a CNN code has to beat; it goes through the same decode/resize/cache
//! pipeline and is fingerprinted like a backbone.
//!
//! Names: `pixels` (grey 28×28), `pixelsN` (grey N×N), `pixels-rgbN` (RGB N×N, channel-major).
//! Values are `v / 255` in `[0, 1]`; grey is ITU-R 601 luma (exact for grey inputs).

use anyhow::{bail, Result};
use image::RgbImage;
use sha2::{Digest, Sha256};

use tlearn_cache::{ChannelOrder, Layout, Pooling, Preprocess};

#[derive(Debug, Clone)]
pub struct Pixels {
    name: String,
    side: u32,
    grey: bool,
    sha256: String,
    preprocess: Preprocess,
}

impl Pixels {
    /// `Some(..)` if `name` is a pixels model name, `None` if it is not one.
    pub fn parse(name: &str) -> Option<Result<Pixels>> {
        let (grey, rest) = if let Some(r) = name.strip_prefix("pixels-rgb") {
            (false, r)
        } else if let Some(r) = name.strip_prefix("pixels") {
            (true, r)
        } else {
            return None;
        };
        let side = if rest.is_empty() && grey {
            28
        } else {
            match rest.parse::<u32>() {
                Ok(s) if (1..=512).contains(&s) => s,
                _ => {
                    return Some(Err(anyhow::anyhow!(
                        "bad pixels model '{name}': expected pixels, pixelsN or pixels-rgbN \
                         with 1 <= N <= 512"
                    )))
                }
            }
        };
        Some(Ok(Pixels::new(side, grey)))
    }

    pub fn new(side: u32, grey: bool) -> Pixels {
        let name = if grey {
            format!("pixels{side}")
        } else {
            format!("pixels-rgb{side}")
        };
        let desc = format!(
            "tlearn raw-pixels v1: {} {side}x{side}, value/255, bilinear short-side resize + centre crop",
            if grey { "grey" } else { "rgb" }
        );
        Pixels {
            name,
            side,
            grey,
            sha256: hex::encode(Sha256::digest(desc.as_bytes())),
            preprocess: Preprocess {
                crop: side,
                resize_ratio: 1.0,
                value_scale: 1.0 / 255.0,
                mean: [0.0; 3],
                std: [1.0; 3],
                channels: ChannelOrder::Rgb,
                layout: Layout::Nchw,
                background: [255, 255, 255],
                decode: Default::default(),
            },
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    pub fn layer(&self) -> &str {
        if self.grey {
            "grey"
        } else {
            "rgb"
        }
    }
    pub fn pool(&self) -> Pooling {
        Pooling::Flatten
    }
    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }
    pub fn dim(&self) -> usize {
        let n = (self.side * self.side) as usize;
        if self.grey {
            n
        } else {
            3 * n
        }
    }

    /// One `side×side` view → its flattened pixel vector.
    pub fn encode(&self, view: &RgbImage) -> Result<Vec<f32>> {
        if view.dimensions() != (self.side, self.side) {
            bail!(
                "pixels: view is {:?}, expected {}×{}",
                view.dimensions(),
                self.side,
                self.side
            );
        }
        Ok(if self.grey {
            view.pixels()
                .map(|p| {
                    let [r, g, b] = p.0.map(f32::from);
                    (0.299 * r + 0.587 * g + 0.114 * b) / 255.0
                })
                .collect()
        } else {
            (0..3)
                .flat_map(|c| view.pixels().map(move |p| p.0[c] as f32 / 255.0))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_dims_and_values() {
        let p = Pixels::parse("pixels").unwrap().unwrap();
        assert_eq!((p.name(), p.dim()), ("pixels28", 784));
        let q = Pixels::parse("pixels-rgb8").unwrap().unwrap();
        assert_eq!(q.dim(), 192);
        assert_ne!(p.sha256(), q.sha256());
        assert!(Pixels::parse("efficientnet-lite0").is_none());
        assert!(Pixels::parse("pixels0").unwrap().is_err());
        let img = RgbImage::from_pixel(8, 8, image::Rgb([51, 51, 51]));
        let v = q.encode(&img).unwrap();
        assert!(v.iter().all(|x| (x - 0.2).abs() < 1e-6));
        assert!(p.encode(&img).is_err());
    }
}
