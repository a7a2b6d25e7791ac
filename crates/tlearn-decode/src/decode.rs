//! Image file bytes → upright 8-bit RGB.
//!
//! Formats: JPEG, PNG, WebP, GIF (first frame), BMP, TIFF, recognised by content (not by file
//! name). EXIF orientation is applied. Grey, 16-bit, CMYK and palette images become RGB8; an
//! alpha channel is composited on a fixed background colour. Decompression bombs are refused by
//! `image::Limits` before any pixel buffer is allocated; below those limits the bytes an image
//! declares are reserved from the run's [`MemoryBudget`] first ([`decode_rgb_within`]).
//!
//! Every JPEG rule (reduced-size decoding with [`DecodeMode::Reduced`], the decoder each size
//! takes, truncation, the memory a progressive file holds) is [`crate::jpeg`]'s, asked here at
//! each step. Truncated PNG, GIF and WebP files are errors of their decoders already.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};
use tlearn_cache::DecodeMode;

use crate::budget::{MemoryBudget, Reservation};
use crate::jpeg::Jpeg;

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
    #[error("truncated: {0}")]
    Truncated(String),
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
/// the largest DCT scale (1/2, 1/4, 1/8) that keeps its short side at least `min_short`
/// ([`crate::jpeg`]). Every other case (other formats, small JPEGs, JPEGs libjpeg cannot turn
/// into RGB such as CMYK) is the full decode.
pub fn decode_rgb_for(
    bytes: &[u8],
    background: [u8; 3],
    mode: DecodeMode,
    min_short: u32,
) -> Result<RgbImage, DecodeError> {
    let budget = MemoryBudget::unlimited();
    let decoded = decode_rgb_within(bytes, background, mode, min_short, &budget)?;
    Ok(decoded.image)
}

/// A decoded image and the memory reserved for it.
#[derive(Debug)]
pub struct Decoded<'a> {
    pub image: RgbImage,
    /// The stored size the header declares (before any reduced-size decoding or rotation).
    pub declared: (u32, u32),
    /// Held from the run's budget until dropped: drop it with (or after) the pixels.
    pub reservation: Reservation<'a>,
}

/// [`decode_rgb_for`] within a memory budget: the bytes its header declares (see
/// [`decoded_bytes`]) are reserved from `budget` before any pixel buffer is allocated.
pub fn decode_rgb_within<'a>(
    bytes: &[u8],
    background: [u8; 3],
    mode: DecodeMode,
    min_short: u32,
    budget: &'a MemoryBudget,
) -> Result<Decoded<'a>, DecodeError> {
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
    let format = reader.format();
    let jpeg = (format == Some(ImageFormat::Jpeg)).then(|| Jpeg::read(bytes));
    let mut decoder = reader.into_decoder().map_err(|e| match &jpeg {
        Some(j) => j.header_error(classify(e)),
        None => classify(e),
    })?;
    // A broken EXIF block is not a reason to lose the photo: fall back to "no rotation".
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let rotates = orientation != image::metadata::Orientation::NoTransforms;
    let declared = decoder.dimensions();
    let (w, h) = declared;
    // A GIF whose screen is 24×0 decodes "successfully" to an image with no pixels.
    if w == 0 || h == 0 {
        return Err(DecodeError::Corrupt(format!(
            "the header declares {w}×{h} pixels"
        )));
    }
    let mut working = 0;
    if let Some(j) = &jpeg {
        if let Some((rgb, reservation)) =
            j.decode_reduced(declared, mode, min_short, rotates, budget)?
        {
            let mut img = DynamicImage::ImageRgb8(rgb);
            img.apply_orientation(orientation);
            return Ok(Decoded {
                image: to_rgb8(img, background),
                declared,
                reservation,
            });
        }
        j.check_complete()?;
        working = j.working_bytes(w, h);
    }
    let rgb8 = decoder.color_type() == image::ColorType::Rgb8;
    let native = decoder.total_bytes();
    let rgb = w as u64 * h as u64 * 3;
    // image-webp decodes a lossless or animated WebP through an RGBA buffer (4 bytes a pixel)
    // beside the output, which `Limits::max_alloc` (checked against the output) does not see:
    // a 230-byte file declaring 13,141² RGB pixels asked for 690 MB in one piece. Counted for
    // every WebP (the chunk type is not read here): an upper bound for a lossy one, whose
    // decoder keeps YUV planes of about 1.5 bytes a pixel instead.
    let scratch = match format {
        Some(ImageFormat::WebP) => w as u64 * h as u64 * 4,
        _ => 0,
    };
    // `Limits::max_alloc` is checked by `ImageReader::decode`, not by the decoder this path
    // takes (`into_decoder` + `from_decoder`): check the output buffer here.
    if native > MAX_ALLOC {
        return Err(DecodeError::TooLarge(format!(
            "a {w}×{h} image decodes to {native} bytes, over the {MAX_ALLOC}-byte limit"
        )));
    }
    if scratch > MAX_ALLOC {
        return Err(DecodeError::TooLarge(format!(
            "a {w}×{h} WebP is decoded through a {scratch}-byte RGBA buffer, over the \
             {MAX_ALLOC}-byte limit"
        )));
    }
    let reservation = budget.reserve(decoded_bytes(native, rgb, rgb8, rotates) + working + scratch);
    let mut img = DynamicImage::from_decoder(decoder).map_err(classify)?;
    if img.width() == 0 || img.height() == 0 {
        return Err(DecodeError::Corrupt(format!(
            "decoded to {}×{} pixels",
            img.width(),
            img.height()
        )));
    }
    img.apply_orientation(orientation);
    Ok(Decoded {
        image: to_rgb8(img, background),
        declared,
        reservation,
    })
}

/// Peak bytes of decoding an image whose decoder writes `native` bytes and whose RGB8 form is
/// `rgb` bytes: the decoder's buffer alone when it is already upright RGB8; otherwise the
/// buffer, a rotated copy of it or the RGBA and RGB8 conversions beside it (an upper bound:
/// `2 × native + 7/3 × rgb`). What the decoders keep besides the pixels is small, except the
/// coefficients of a progressive JPEG, which the caller adds ([`crate::jpeg`]).
pub fn decoded_bytes(native: u64, rgb: u64, rgb8: bool, rotates: bool) -> u64 {
    if rgb8 && !rotates {
        native
    } else {
        2 * native + rgb / 3 * 7
    }
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

    /// Found by `tests/fuzz_inputs.rs`: a GIF whose logical screen is 24×0 (its frame 24×16)
    /// decoded to an image without pixels.
    #[test]
    fn a_gif_with_a_zero_height_screen_is_corrupt_not_an_empty_image() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(24, 16, image::Rgb([9; 3])));
        let mut gif = encode(&img, ImageFormat::Gif);
        assert_eq!(
            &gif[6..10],
            &[24, 0, 16, 0],
            "GIF logical screen width, height"
        );
        gif[8] = 0;
        for mode in [DecodeMode::Full, DecodeMode::Reduced] {
            match decode_rgb_for(&gif, [0; 3], mode, 8) {
                Err(DecodeError::Corrupt(m)) => assert!(m.contains("24×0"), "{m}"),
                other => panic!("{mode:?}: {:?}", other.map(|i| i.dimensions())),
            }
        }
    }

    /// Found by `tests/fuzz_inputs.rs`: a lossless WebP without alpha whose header declares
    /// 13,000×13,000 pixels passes `max_alloc` as RGB (507 MB) but image-webp decodes it
    /// through an RGBA buffer (676 MB): refused before that buffer, naming the size.
    #[test]
    fn a_huge_lossless_webp_is_too_large_before_its_rgba_buffer() {
        let (w, h) = (13_000u32, 13_000u32);
        // VP8L header: signature, then width-1 and height-1 (14 bits each), alpha 0, version 0.
        let bits = (w - 1) | ((h - 1) << 14);
        let mut vp8l = vec![0x2f];
        vp8l.extend_from_slice(&bits.to_le_bytes());
        vp8l.extend_from_slice(&[0; 64]);
        let mut webp = b"RIFF".to_vec();
        webp.extend_from_slice(&(4 + 8 + vp8l.len() as u32).to_le_bytes());
        webp.extend_from_slice(b"WEBPVP8L");
        webp.extend_from_slice(&(vp8l.len() as u32).to_le_bytes());
        webp.extend_from_slice(&vp8l);
        for mode in [DecodeMode::Full, DecodeMode::Reduced] {
            match decode_rgb_for(&webp, [0; 3], mode, 8) {
                Err(DecodeError::TooLarge(m)) => {
                    assert!(m.contains("13000×13000 WebP"), "{m}")
                }
                other => panic!("{mode:?}: {:?}", other.map(|i| i.dimensions())),
            }
        }
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

    /// Truncated PNG, GIF, WebP, BMP and TIFF files stay errors (their decoders say so).
    #[test]
    fn other_truncated_formats_stay_errors() {
        let src = RgbImage::from_fn(96, 64, |x, y| {
            image::Rgb([(x * 2) as u8, (y * 3) as u8, ((x * y) % 253) as u8])
        });
        let dynimg = DynamicImage::ImageRgb8(src);
        for fmt in [
            ImageFormat::Png,
            ImageFormat::Gif,
            ImageFormat::WebP,
            ImageFormat::Bmp,
            ImageFormat::Tiff,
        ] {
            let bytes = if fmt == ImageFormat::Gif {
                encode(&DynamicImage::ImageRgba8(dynimg.to_rgba8()), fmt)
            } else {
                encode(&dynimg, fmt)
            };
            for f in [0.3, 0.6, 0.9] {
                let cut = &bytes[..(bytes.len() as f64 * f) as usize];
                let r = decode_rgb_for(cut, [0; 3], DecodeMode::Reduced, 32);
                assert!(r.is_err(), "{fmt:?} cut at {f}: decoded");
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
