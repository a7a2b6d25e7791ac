//! "What the network sees": the feature maps of one image at a spatial cut, drawn as a PNG grid
//! (`tlearn show`). The input view the network got is on the left; the channels follow in a
//! grid, strongest first (by mean activation over the map, the value average pooling would put
//! in the CNN code), each scaled to its own min..max and coloured with a viridis ramp.

use anyhow::{bail, Context, Result};
use image::{imageops, Rgb, RgbImage};
use ndarray::Array3;

use crate::augment::Augment;
use crate::backbone::Backbone;
use crate::decode;
use crate::preprocess;
use crate::spec::{Layout, Pooling};

/// One image's maps at a cut: `[channels, height, width]`, plus the view the network saw.
pub struct FeatureMaps {
    pub view: RgbImage,
    pub maps: Array3<f32>,
}

/// A channel and its statistics, for the ranking `show` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelStat {
    pub channel: usize,
    pub mean: f32,
    pub min: f32,
    pub max: f32,
}

/// Run `bb` (loaded with `Pooling::Flatten`, so nothing is pooled away) on one image file's
/// bytes. `what` names the image in errors. Fails for a non-image and for a cut that is not a
/// spatial map `[1, C, H, W]` (`[1, H, W, C]` for NHWC networks).
pub fn feature_maps(bb: &Backbone, bytes: &[u8], what: &str) -> Result<FeatureMaps> {
    if bb.pool() != Pooling::Flatten {
        bail!("feature maps need the backbone loaded with flatten pooling");
    }
    let shape = bb.output_shape().to_vec();
    if shape.len() != 4 {
        bail!(
            "layer '{}' of {} gives {:?}, not a spatial map [1, C, H, W]; choose an earlier cut \
             (`tlearn layers {}` lists the shapes)",
            bb.layer(),
            bb.name(),
            shape,
            bb.name()
        );
    }
    let p = bb.preprocess();
    let img = decode::decode_rgb(bytes, p.background)
        .with_context(|| format!("{what} cannot be read as an image"))?;
    let view = preprocess::view_image(&img, p, crate::augment::views(Augment::None)[0])
        .with_context(|| format!("preprocessing {what}"))?;
    let input = preprocess::to_tensor(std::slice::from_ref(&view), p)?;
    let flat = bb.encode(input)?;
    let maps = match p.layout {
        Layout::Nchw => Array3::from_shape_vec((shape[1], shape[2], shape[3]), flat)?,
        Layout::Nhwc => Array3::from_shape_vec((shape[1], shape[2], shape[3]), flat)?
            .permuted_axes([2, 0, 1])
            .as_standard_layout()
            .to_owned(),
    };
    Ok(FeatureMaps { view, maps })
}

/// Channels ordered strongest first (highest mean activation; ties by index).
pub fn rank_channels(maps: &Array3<f32>) -> Vec<ChannelStat> {
    let mut stats: Vec<ChannelStat> = maps
        .outer_iter()
        .enumerate()
        .map(|(c, m)| ChannelStat {
            channel: c,
            mean: m.mean().unwrap_or(0.0),
            min: m.iter().copied().fold(f32::INFINITY, f32::min),
            max: m.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        })
        .collect();
    stats.sort_by(|a, b| b.mean.total_cmp(&a.mean).then(a.channel.cmp(&b.channel)));
    stats
}

/// Viridis, sampled at 9 stops and linearly interpolated (t in 0..=1).
fn viridis(t: f32) -> Rgb<u8> {
    const STOPS: [[u8; 3]; 9] = [
        [68, 1, 84],
        [71, 44, 122],
        [59, 81, 139],
        [44, 113, 142],
        [33, 144, 141],
        [39, 173, 129],
        [92, 200, 99],
        [170, 220, 50],
        [253, 231, 37],
    ];
    let x = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f32;
    let mix = |a: u8, b: u8| (a as f32 + (b as f32 - a as f32) * f).round() as u8;
    Rgb([
        mix(STOPS[i][0], STOPS[i + 1][0]),
        mix(STOPS[i][1], STOPS[i + 1][1]),
        mix(STOPS[i][2], STOPS[i + 1][2]),
    ])
}

/// The picture: the input view (scaled to the grid's height) on the left, then the `k`
/// strongest channels in a near-square grid of tiles, each map scaled to its own range
/// (a constant map is drawn at the bottom of the ramp) and enlarged with nearest neighbour.
pub fn grid_image(fm: &FeatureMaps, k: usize) -> RgbImage {
    const GAP: u32 = 4;
    let ranked = rank_channels(&fm.maps);
    let k = k.clamp(1, ranked.len());
    let cols = (k as f64).sqrt().ceil() as u32;
    let rows = (k as u32).div_ceil(cols);
    let (h, w) = (fm.maps.shape()[1] as u32, fm.maps.shape()[2] as u32);
    // Tiles of about 96 px on their longer side, at least one pixel per map cell.
    let scale = (96 / h.max(w)).max(1);
    let (th, tw) = (h * scale, w * scale);
    let grid_w = cols * (tw + GAP) + GAP;
    let grid_h = rows * (th + GAP) + GAP;
    let side = grid_h.saturating_sub(2 * GAP).max(64);
    let input = imageops::resize(&fm.view, side, side, imageops::FilterType::Triangle);
    let mut out = RgbImage::from_pixel(
        side + 2 * GAP + grid_w,
        grid_h.max(side + 2 * GAP),
        Rgb([255, 255, 255]),
    );
    imageops::replace(&mut out, &input, GAP as i64, GAP as i64);
    let x0 = side + 2 * GAP;
    for (n, s) in ranked.iter().take(k).enumerate() {
        let m = fm.maps.index_axis(ndarray::Axis(0), s.channel);
        let range = s.max - s.min;
        let small = RgbImage::from_fn(w, h, |x, y| {
            let v = m[[y as usize, x as usize]];
            viridis(if range > 0.0 {
                (v - s.min) / range
            } else {
                0.0
            })
        });
        let tile = imageops::resize(&small, tw, th, imageops::FilterType::Nearest);
        let (c, r) = (n as u32 % cols, n as u32 / cols);
        imageops::replace(
            &mut out,
            &tile,
            (x0 + GAP + c * (tw + GAP)) as i64,
            (GAP + r * (th + GAP)) as i64,
        );
    }
    out
}

/// [`grid_image`] written as a PNG (temporary file + rename).
pub fn write_grid_png(fm: &FeatureMaps, k: usize, path: &std::path::Path) -> Result<()> {
    let img = grid_image(fm, k);
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)
        .with_context(|| format!("encoding {}", path.display()))?;
    tlearn_cache::write_atomic_bytes(path, png.get_ref())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strongest_channel_comes_first_and_tiles_use_their_own_range() {
        // Channel 1 has the larger mean; channel 0 is constant.
        let maps = Array3::from_shape_fn(
            (2, 2, 2),
            |(c, y, x)| {
                if c == 0 {
                    0.5
                } else {
                    (y * 2 + x) as f32
                }
            },
        );
        let r = rank_channels(&maps);
        assert_eq!(r[0].channel, 1);
        assert_eq!((r[0].min, r[0].max), (0.0, 3.0));
        let fm = FeatureMaps {
            view: RgbImage::from_pixel(8, 8, Rgb([255, 0, 0])),
            maps,
        };
        let img = grid_image(&fm, 2);
        // The first tile (channel 1) spans the whole ramp: its first cell is the ramp's start,
        // its last cell the ramp's end.
        let side = img.height() - 8;
        let x0 = side + 8 + 4;
        assert_eq!(*img.get_pixel(x0, 4), viridis(0.0));
        assert_eq!(*img.get_pixel(x0 + 95, 4 + 95), viridis(1.0));
        // The input view is drawn on the left.
        assert_eq!(*img.get_pixel(10, 10), Rgb([255, 0, 0]));
    }
}
