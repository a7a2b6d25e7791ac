//! Image file bytes → upright 8-bit RGB.
//!
//! Formats: JPEG, PNG, WebP, GIF (first frame), BMP, TIFF, recognised by content (not by file
//! name). EXIF orientation is applied. Grey, 16-bit, CMYK and palette images become RGB8; an
//! alpha channel is composited on a fixed background colour. Decompression bombs are refused by
//! `image::Limits` before any pixel buffer is allocated.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};

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
    let mut decoder = reader.into_decoder().map_err(classify)?;
    // A broken EXIF block is not a reason to lose the photo: fall back to "no rotation".
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(classify)?;
    img.apply_orientation(orientation);
    Ok(to_rgb8(img, background))
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
