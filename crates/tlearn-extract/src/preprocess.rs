//! Decoded RGB image → the network's input tensor, exactly as the backbone was trained.
//!
//! With `t = crop * resize_ratio`: short side resized to `round(t)`, long side
//! `round_half_even(long * t / short)`, then a `crop×crop` window at offset
//! `floor((side - crop) / 2)`: exactly the arithmetic of the PIL-made reference fixtures
//! (checked pixel for pixel on the six reference photos; torchvision's `Resize`/`CenterCrop`
//! round differently and shift some images by one pixel). Resampling is
//! `fast_image_resize`'s convolution with the bilinear (triangle) filter, whose support grows
//! with the downscale factor: the same antialiased resampling as PIL's `Image.BILINEAR`, in SIMD
//! fixed point. Only the crop window is resampled (a source crop box with the full-resize
//! scale), which gives the same pixels as resizing the whole image and cropping afterwards.
//! Images smaller than the crop are upscaled the same way (never rejected).

use std::cell::RefCell;

use anyhow::{Context, Result};
use fast_image_resize::{images::Image, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use tract_onnx::prelude::{tract_ndarray, IntoTensor, Tensor};

use crate::augment::{Anchor, View};
use crate::spec::{ChannelOrder, Layout, Preprocess};

/// Short-side target length for a preprocessing spec (never below the crop).
pub fn short_side(p: &Preprocess) -> u32 {
    ((p.crop as f32 * p.resize_ratio).round() as u32).max(p.crop)
}

/// Size of the image after the short-side resize for spec `p`.
pub fn resized_dims(w: u32, h: u32, p: &Preprocess) -> (u32, u32) {
    // f32 ratios like 256/224 are inexact: snap t to 1e-4 so 224*1.1428571 is exactly 256 and
    // ties (773*256/512 = 386.5) round as in the reference.
    let target = (p.crop as f64 * p.resize_ratio as f64 * 1e4).round() / 1e4;
    let short = short_side(p);
    let scaled =
        |long: u32, s: u32| ((long as f64 * target / s as f64).round_ties_even() as u32).max(short);
    if w <= h {
        (short, scaled(h, w))
    } else {
        (scaled(w, h), short)
    }
}

fn offset(anchor_start: bool, anchor_end: bool, side: u32, crop: u32) -> u32 {
    if anchor_start {
        0
    } else if anchor_end {
        side - crop
    } else {
        (side - crop) / 2
    }
}

thread_local! {
    static RESIZER: RefCell<Resizer> = RefCell::new(Resizer::new());
}

/// One `crop×crop` RGB view of `img` (resize + crop window + optional mirror).
pub fn view_image(img: &RgbImage, p: &Preprocess, view: View) -> Result<RgbImage> {
    let (w, h) = img.dimensions();
    anyhow::ensure!(w > 0 && h > 0, "image has no pixels ({w}×{h})");
    let s = p.crop;
    let (rw, rh) = resized_dims(w, h, p);
    let (left_a, right_a, top_a, bottom_a) = match view.anchor {
        Anchor::Centre => (false, false, false, false),
        Anchor::TopLeft => (true, false, true, false),
        Anchor::TopRight => (false, true, true, false),
        Anchor::BottomLeft => (true, false, false, true),
        Anchor::BottomRight => (false, true, false, true),
    };
    let left = offset(left_a, right_a, rw, s);
    let top = offset(top_a, bottom_a, rh, s);
    let (sx, sy) = (w as f64 / rw as f64, h as f64 / rh as f64);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
        .crop(
            left as f64 * sx,
            top as f64 * sy,
            // Float rounding must not push the box past the image edge.
            (s as f64 * sx).min(w as f64 - left as f64 * sx),
            (s as f64 * sy).min(h as f64 - top as f64 * sy),
        );
    let src = fast_image_resize::images::ImageRef::new(w, h, img.as_raw(), PixelType::U8x3)
        .context("image buffer")?;
    let mut dst = Image::new(s, s, PixelType::U8x3);
    RESIZER
        .with(|r| r.borrow_mut().resize(&src, &mut dst, &options))
        .context("resize")?;
    let mut out = RgbImage::from_raw(s, s, dst.into_vec()).context("resized buffer")?;
    if view.flip {
        image::imageops::flip_horizontal_in_place(&mut out);
    }
    Ok(out)
}

/// Per-channel lookup table: output channel k, byte v → normalised value.
fn luts(p: &Preprocess) -> [[f32; 256]; 3] {
    let mut t = [[0f32; 256]; 3];
    for (c, lut) in t.iter_mut().enumerate() {
        for (v, x) in lut.iter_mut().enumerate() {
            *x = (v as f32 * p.value_scale - p.mean[c]) / p.std[c];
        }
    }
    t
}

/// Stack `crop×crop` RGB views into one input tensor `[N,3,S,S]` (NCHW) or `[N,S,S,3]` (NHWC),
/// normalised and in the network's channel order. `mean`/`std` are given in RGB order.
pub fn to_tensor(views: &[RgbImage], p: &Preprocess) -> Result<Tensor> {
    let s = p.crop as usize;
    let n = views.len();
    let lut = luts(p);
    // Source RGB channel for each output channel.
    let src_ch: [usize; 3] = match p.channels {
        ChannelOrder::Rgb => [0, 1, 2],
        ChannelOrder::Bgr => [2, 1, 0],
    };
    let mut data = vec![0f32; n * 3 * s * s];
    for (i, v) in views.iter().enumerate() {
        anyhow::ensure!(
            v.dimensions() == (p.crop, p.crop),
            "view is {:?}, expected {s}×{s}",
            v.dimensions()
        );
        let raw = v.as_raw();
        let out = &mut data[i * 3 * s * s..(i + 1) * 3 * s * s];
        match p.layout {
            Layout::Nchw => {
                for (k, &sc) in src_ch.iter().enumerate() {
                    let plane = &mut out[k * s * s..(k + 1) * s * s];
                    // mean/std are indexed by RGB channel of the source pixel.
                    let l = &lut[sc];
                    for (o, px) in plane.iter_mut().zip(raw.chunks_exact(3)) {
                        *o = l[px[sc] as usize];
                    }
                }
            }
            Layout::Nhwc => {
                for (o, px) in out.chunks_exact_mut(3).zip(raw.chunks_exact(3)) {
                    for (k, &sc) in src_ch.iter().enumerate() {
                        o[k] = lut[sc][px[sc] as usize];
                    }
                }
            }
        }
    }
    let shape = match p.layout {
        Layout::Nchw => [n, 3, s, s],
        Layout::Nhwc => [n, s, s, 3],
    };
    Ok(tract_ndarray::Array4::from_shape_vec(shape, data)?.into_tensor())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(layout: Layout, channels: ChannelOrder) -> Preprocess {
        Preprocess {
            crop: 4,
            resize_ratio: 1.0,
            value_scale: 1.0 / 255.0,
            mean: [0.5, 0.25, 0.0],
            std: [0.5, 0.25, 1.0],
            channels,
            layout,
            background: [255; 3],
            decode: Default::default(),
        }
    }

    #[test]
    fn resized_dims_follow_the_reference_arithmetic() {
        let mut p = spec(Layout::Nchw, ChannelOrder::Rgb);
        p.crop = 224;
        p.resize_ratio = 256.0 / 224.0;
        assert_eq!(resized_dims(640, 480, &p), (341, 256));
        assert_eq!(resized_dims(480, 640, &p), (256, 341));
        assert_eq!(resized_dims(28, 28, &p), (256, 256));
        assert_eq!(resized_dims(1000, 1, &p), (256_000, 256));
        // chelsea.png (451×300) → 384.85 rounds to 385, as in the PIL-made fixtures.
        assert_eq!(resized_dims(451, 300, &p), (385, 256));
        // eagle.jpg (773×512) → 386.5 rounds half to even.
        assert_eq!(resized_dims(773, 512, &p), (386, 256));
        // Lite1: t = 274.29, dog.jpg (768×576) long side 365.7 → 366 (not 768*274/576 = 365).
        p.crop = 240;
        assert_eq!(resized_dims(768, 576, &p), (366, 274));
    }

    #[test]
    fn small_image_is_upscaled_to_the_crop() {
        let img = RgbImage::from_pixel(3, 2, image::Rgb([10, 200, 30]));
        let p = spec(Layout::Nchw, ChannelOrder::Rgb);
        let v = view_image(
            &img,
            &p,
            View {
                anchor: Anchor::Centre,
                flip: false,
            },
        )
        .unwrap();
        assert_eq!(v.dimensions(), (4, 4));
        assert!(v.pixels().all(|px| px.0 == [10, 200, 30]));
    }

    #[test]
    fn crop_box_never_leaves_the_image() {
        // Sizes whose float crop box used to overshoot the edge by rounding (tuxpaint photos).
        let mut p = spec(Layout::Nchw, ChannelOrder::Rgb);
        p.crop = 224;
        for (w, h) in [
            (400, 239),
            (150, 116),
            (70, 29),
            (640, 513),
            (371, 999),
            (225, 224),
        ] {
            let img = RgbImage::from_pixel(w, h, image::Rgb([1, 2, 3]));
            for anchor in [Anchor::Centre, Anchor::BottomRight, Anchor::TopRight] {
                let v = view_image(
                    &img,
                    &p,
                    View {
                        anchor,
                        flip: false,
                    },
                );
                assert!(v.is_ok(), "{w}×{h} {anchor:?}: {v:?}");
            }
        }
    }

    #[test]
    fn flip_mirrors_and_corners_differ() {
        let mut img = RgbImage::new(8, 4);
        for (x, _, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb([x as u8 * 30, 0, 0]);
        }
        let mut p = spec(Layout::Nchw, ChannelOrder::Rgb);
        p.resize_ratio = 1.0;
        let v = |anchor, flip| view_image(&img, &p, View { anchor, flip }).unwrap();
        let left = v(Anchor::TopLeft, false);
        let right = v(Anchor::TopRight, false);
        assert_eq!(left.get_pixel(0, 0).0[0], 0);
        assert_eq!(right.get_pixel(3, 0).0[0], 210);
        let mut mirrored = v(Anchor::Centre, false);
        image::imageops::flip_horizontal_in_place(&mut mirrored);
        assert_eq!(v(Anchor::Centre, true), mirrored);
    }

    #[test]
    fn tensor_layout_channel_order_and_normalisation() {
        let img = RgbImage::from_pixel(4, 4, image::Rgb([255, 0, 51]));
        let nchw = to_tensor(
            &[img.clone(), img.clone()],
            &spec(Layout::Nchw, ChannelOrder::Rgb),
        )
        .unwrap();
        assert_eq!(nchw.shape(), &[2, 3, 4, 4]);
        let a = nchw.to_plain_array_view::<f32>().unwrap();
        assert!((a[[1, 0, 2, 2]] - 1.0).abs() < 1e-6); // (1 - .5)/.5
        assert!((a[[1, 1, 2, 2]] + 1.0).abs() < 1e-6); // (0 - .25)/.25
        assert!((a[[1, 2, 2, 2]] - 0.2).abs() < 1e-6);
        let nhwc = to_tensor(&[img], &spec(Layout::Nhwc, ChannelOrder::Bgr)).unwrap();
        assert_eq!(nhwc.shape(), &[1, 4, 4, 3]);
        let b = nhwc.to_plain_array_view::<f32>().unwrap();
        assert!((b[[0, 1, 1, 0]] - 0.2).abs() < 1e-6); // blue first
        assert!((b[[0, 1, 1, 2]] - 1.0).abs() < 1e-6); // red last
    }
}
