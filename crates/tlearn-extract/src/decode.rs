//! Image file bytes → upright 8-bit RGB.
//!
//! Formats: JPEG, PNG, WebP, GIF (first frame), BMP, TIFF, recognised by content (not by file
//! name). EXIF orientation is applied. Grey, 16-bit, CMYK and palette images become RGB8; an
//! alpha channel is composited on a fixed background colour. Decompression bombs are refused by
//! `image::Limits` before any pixel buffer is allocated.
//!
//! [`decode_rgb_for`] can decode a JPEG at 1/2, 1/4 or 1/8 of its size in the DCT domain when
//! the resize that follows needs no more pixels ([`DecodeMode::Reduced`]), as PIL's
//! `Image.draft` does. That uses libjpeg-turbo's decoder (the `mozjpeg` crate, built from its
//! bundled C source, no system library): the `image` crate's JPEG decoder (zune-jpeg) cannot
//! scale, and on a 4032×3024 photo at 1/8 scale the pure-Rust `jpeg-decoder` took 31-46 ms per
//! image against 22-30 ms for this decoder and 22-33 ms for PIL's `draft` (one core of the
//! 16-core bench machine; full decodes: zune-jpeg 71-80 ms, PIL 122-125 ms).

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use crate::spec::DecodeMode;

/// Largest accepted image side and decoder allocation (a 100000×100000 PNG header is refused).
pub const MAX_SIDE: u32 = 20_000;
pub const MAX_ALLOC: u64 = 512 * 1024 * 1024;

/// Why a file could not become an image. The message is what lands in `skipped.csv`.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("empty file (0 bytes)")]
    Empty,
    #[error("not an image (unrecognised content)")]
    NotAnImage,
    #[error("image too large: {0}")]
    TooLarge(String),
    #[error("corrupt or truncated image: {0}")]
    Corrupt(String),
}

fn limits() -> Limits {
    let mut l = Limits::default();
    l.max_image_width = Some(MAX_SIDE);
    l.max_image_height = Some(MAX_SIDE);
    l.max_alloc = Some(MAX_ALLOC);
    l
}

fn classify(e: image::ImageError) -> DecodeError {
    match e {
        image::ImageError::Limits(l) => DecodeError::TooLarge(l.to_string()),
        image::ImageError::Unsupported(u) => DecodeError::Corrupt(format!("unsupported: {u}")),
        other => DecodeError::Corrupt(other.to_string()),
    }
}

/// Decode `bytes` into an upright RGB8 image; alpha is composited on `background`.
pub fn decode_rgb(bytes: &[u8], background: [u8; 3]) -> Result<RgbImage, DecodeError> {
    decode_rgb_for(bytes, background, DecodeMode::Full, 0)
}

/// As [`decode_rgb`]; with [`DecodeMode::Reduced`] a JPEG may come out smaller than stored, by
/// the largest DCT scale (1/2, 1/4, 1/8) that keeps its short side at least `min_short`. Every
/// other case (other formats, small JPEGs, JPEGs libjpeg cannot turn into RGB such as CMYK) is
/// the full decode.
pub fn decode_rgb_for(
    bytes: &[u8],
    background: [u8; 3],
    mode: DecodeMode,
    min_short: u32,
) -> Result<RgbImage, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    if reader.format().is_none() {
        return Err(DecodeError::NotAnImage);
    }
    reader.limits(limits());
    let is_jpeg = reader.format() == Some(ImageFormat::Jpeg);
    let mut decoder = reader.into_decoder().map_err(classify)?;
    // A broken EXIF block is not a reason to lose the photo: fall back to "no rotation".
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    if is_jpeg && mode == DecodeMode::Reduced {
        let (w, h) = decoder.dimensions();
        let eighths = reduced_scale(w, h, min_short);
        if eighths < 8 {
            if let Some(rgb) = jpeg_scaled(bytes, eighths) {
                let mut img = DynamicImage::ImageRgb8(rgb);
                img.apply_orientation(orientation);
                return Ok(to_rgb8(img, background));
            }
        }
    }
    let mut img = DynamicImage::from_decoder(decoder).map_err(classify)?;
    img.apply_orientation(orientation);
    Ok(to_rgb8(img, background))
}

/// The DCT scale, in eighths (1, 2, 4 or 8), that decodes a `w×h` JPEG smallest while its short
/// side stays at least `min_short` (libjpeg rounds scaled sides up).
pub fn reduced_scale(w: u32, h: u32, min_short: u32) -> u8 {
    let short = w.min(h) as u64;
    [1u8, 2, 4]
        .into_iter()
        .find(|&n| (short * n as u64).div_ceil(8) >= min_short.max(1) as u64)
        .unwrap_or(8)
}

/// Decode a JPEG at `eighths`/8 scale into RGB8 with libjpeg-turbo, or `None` when libjpeg
/// refuses it (the caller then takes the full decode, which names the problem). libjpeg reports
/// fatal errors by unwinding, which is caught here.
fn jpeg_scaled(bytes: &[u8], eighths: u8) -> Option<RgbImage> {
    catch_unwind(AssertUnwindSafe(|| -> Option<RgbImage> {
        let mut d = mozjpeg::Decompress::new_mem(bytes).ok()?;
        d.scale(eighths);
        let mut started = d.rgb().ok()?;
        let (w, h) = (started.width() as u32, started.height() as u32);
        let pixels = started.read_scanlines::<u8>().ok()?;
        started.finish().ok()?;
        RgbImage::from_raw(w, h, pixels)
    }))
    .ok()
    .flatten()
}

/// Any colour type → RGB8, compositing alpha (straight, not premultiplied) on `background`.
pub fn to_rgb8(img: DynamicImage, background: [u8; 3]) -> RgbImage {
    if !img.color().has_alpha() {
        return match img {
            DynamicImage::ImageRgb8(rgb) => rgb,
            other => other.to_rgb8(),
        };
    }
    let rgba = img.to_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    for p in rgba.pixels() {
        let a = p[3] as u32;
        for c in 0..3 {
            let v = (p[c] as u32 * a + background[c] as u32 * (255 - a) + 127) / 255;
            out.push(v as u8);
        }
    }
    RgbImage::from_raw(w, h, out).expect("buffer size matches dimensions")
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, Rgba, RgbaImage};

    fn encode(img: &DynamicImage, fmt: ImageFormat) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        img.write_to(&mut buf, fmt).unwrap();
        buf.into_inner()
    }

    #[test]
    fn alpha_is_composited_on_background() {
        let mut img = RgbaImage::new(2, 1);
        img.put_pixel(0, 0, Rgba([0, 0, 0, 0]));
        img.put_pixel(1, 0, Rgba([10, 20, 30, 255]));
        let png = encode(&DynamicImage::ImageRgba8(img), ImageFormat::Png);
        let rgb = decode_rgb(&png, [255, 128, 0]).unwrap();
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 128, 0]);
        assert_eq!(rgb.get_pixel(1, 0).0, [10, 20, 30]);
    }

    #[test]
    fn grey_and_16_bit_become_rgb8() {
        let grey = DynamicImage::ImageLuma8(image::GrayImage::from_pixel(3, 2, image::Luma([77])));
        let rgb = decode_rgb(&encode(&grey, ImageFormat::Png), [0; 3]).unwrap();
        assert_eq!(rgb.dimensions(), (3, 2));
        assert_eq!(rgb.get_pixel(2, 1).0, [77, 77, 77]);
        let img16 = DynamicImage::ImageRgb16(image::ImageBuffer::from_pixel(
            2,
            2,
            image::Rgb([65535u16, 0, 32896]),
        ));
        let rgb = decode_rgb(&encode(&img16, ImageFormat::Png), [0; 3]).unwrap();
        assert_eq!(rgb.get_pixel(1, 1).0, [255, 0, 128]);
    }

    #[test]
    fn every_supported_format_decodes() {
        let mut src = RgbImage::new(16, 8);
        for (x, y, p) in src.enumerate_pixels_mut() {
            *p = image::Rgb([(x * 16) as u8, (y * 32) as u8, 100]);
        }
        let dynimg = DynamicImage::ImageRgb8(src.clone());
        for fmt in [
            ImageFormat::Png,
            ImageFormat::Jpeg,
            ImageFormat::Bmp,
            ImageFormat::Tiff,
            ImageFormat::WebP,
            ImageFormat::Gif,
        ] {
            let bytes = if fmt == ImageFormat::Gif {
                encode(&DynamicImage::ImageRgba8(dynimg.to_rgba8()), fmt)
            } else {
                encode(&dynimg, fmt)
            };
            let got = decode_rgb(&bytes, [0; 3]).unwrap_or_else(|e| panic!("{fmt:?}: {e}"));
            assert_eq!(got.dimensions(), (16, 8), "{fmt:?}");
            let lossless = matches!(fmt, ImageFormat::Png | ImageFormat::Bmp | ImageFormat::Tiff);
            if lossless {
                assert_eq!(got, src, "{fmt:?}");
            }
        }
    }

    #[test]
    fn reduced_scale_keeps_the_short_side_at_least_the_target() {
        assert_eq!(reduced_scale(4032, 3024, 256), 1); // 504×378
        assert_eq!(reduced_scale(3024, 4032, 256), 1);
        assert_eq!(reduced_scale(2048, 1536, 256), 2); // 1/8 would be 192: 1/4 gives 384
        assert_eq!(reduced_scale(1024, 512, 256), 4);
        assert_eq!(reduced_scale(1024, 511, 256), 4); // libjpeg rounds 255.5 up
        assert_eq!(reduced_scale(1024, 510, 256), 8);
        assert_eq!(reduced_scale(640, 480, 256), 8);
        assert_eq!(reduced_scale(2047, 2047, 256), 1); // ceil(2047 / 8) = 256
    }

    #[test]
    fn reduced_jpeg_is_smaller_upright_and_close_to_the_full_decode() {
        // A smooth 1024×512 gradient with EXIF orientation 6 (rotate 90° clockwise).
        let mut src = RgbImage::new(1024, 512);
        for (x, y, p) in src.enumerate_pixels_mut() {
            *p = image::Rgb([(x / 4) as u8, (y / 2) as u8, 100]);
        }
        let jpeg = with_orientation(&encode(&DynamicImage::ImageRgb8(src), ImageFormat::Jpeg), 6);
        let full = decode_rgb(&jpeg, [0; 3]).unwrap();
        assert_eq!(full.dimensions(), (512, 1024));
        let half = decode_rgb_for(&jpeg, [0; 3], DecodeMode::Reduced, 256).unwrap();
        assert_eq!(half.dimensions(), (256, 512));
        // Each reduced pixel is the mean of a 2×2 block of the full decode, within JPEG noise.
        for (x, y, p) in half.enumerate_pixels() {
            for c in 0..3 {
                let block: u32 = (0..4)
                    .map(|k| full.get_pixel(2 * x + k % 2, 2 * y + k / 2)[c] as u32)
                    .sum();
                let d = (p[c] as i32 - (block as i32 + 2) / 4).abs();
                assert!(d <= 6, "({x},{y}) channel {c}: {} vs {}", p[c], block / 4);
            }
        }
        // Too small to reduce: the exact full decode.
        let same = decode_rgb_for(&jpeg, [0; 3], DecodeMode::Reduced, 300).unwrap();
        assert_eq!(same, full);
    }

    #[test]
    fn reduced_mode_leaves_other_formats_and_bad_jpegs_to_the_full_decoder() {
        let src = RgbImage::from_pixel(1024, 1024, image::Rgb([1, 2, 3]));
        let png = encode(&DynamicImage::ImageRgb8(src.clone()), ImageFormat::Png);
        let got = decode_rgb_for(&png, [0; 3], DecodeMode::Reduced, 128).unwrap();
        assert_eq!(got, src);
        let jpeg = encode(&DynamicImage::ImageRgb8(src), ImageFormat::Jpeg);
        let cut = &jpeg[..200];
        let full = decode_rgb(cut, [0; 3]).map(|i| i.dimensions());
        let reduced = decode_rgb_for(cut, [0; 3], DecodeMode::Reduced, 128).map(|i| i.dimensions());
        assert_eq!(format!("{full:?}"), format!("{reduced:?}"));
    }

    /// `jpeg` with an EXIF APP1 segment carrying `orientation`, right after SOI.
    fn with_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
        let mut tiff = b"MM\0\x2a\0\0\0\x08\0\x01".to_vec();
        tiff.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1]);
        tiff.extend_from_slice(&orientation.to_be_bytes());
        tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn bad_bytes_are_errors_not_panics() {
        assert!(matches!(decode_rgb(b"", [0; 3]), Err(DecodeError::Empty)));
        assert!(matches!(
            decode_rgb(b"hello, I am text", [0; 3]),
            Err(DecodeError::NotAnImage)
        ));
        let png = encode(
            &DynamicImage::ImageRgb8(RgbImage::new(64, 64)),
            ImageFormat::Png,
        );
        assert!(matches!(
            decode_rgb(&png[..png.len() / 2], [0; 3]),
            Err(DecodeError::Corrupt(_))
        ));
    }
}
