//! Image file bytes → upright 8-bit RGB.
//!
//! Formats: JPEG, PNG, WebP, GIF (first frame), BMP, TIFF, recognised by content (not by file
//! name). EXIF orientation is applied. Grey, 16-bit, CMYK and palette images become RGB8; an
//! alpha channel is composited on a fixed background colour. Decompression bombs are refused by
//! `image::Limits` before any pixel buffer is allocated; below those limits the bytes an image
//! declares are reserved from the run's [`MemoryBudget`] first ([`decode_rgb_within`]).
//!
//! A JPEG whose data ends before its end-of-image marker is refused as
//! [`DecodeError::Truncated`] (PIL's default; the decoders would fill the missing rows with
//! grey and give confident wrong codes): on libjpeg's path by its own warning `JWRN_JPEG_EOF`,
//! on zune-jpeg's by [`crate::jpeg_structure`] (zune-jpeg gives no signal; that module says
//! why). Truncated PNG, GIF and WebP files are errors of their decoders already.
//!
//! [`decode_rgb_for`] can decode a JPEG at 1/2, 1/4 or 1/8 of its size in the DCT domain when
//! the resize that follows needs no more pixels ([`DecodeMode::Reduced`]), as PIL's
//! `Image.draft` does. That uses libjpeg-turbo's decoder (the `mozjpeg` crate, built from its
//! bundled C source, no system library): the `image` crate's JPEG decoder (zune-jpeg) cannot
//! scale, and on a 4032×3024 photo at 1/8 scale the pure-Rust `jpeg-decoder` took 31-46 ms per
//! image against 22-30 ms for this decoder and 22-33 ms for PIL's `draft` (one core of the
//! 16-core bench machine; full decodes: zune-jpeg 71-80 ms, PIL 122-125 ms). At 1/8 scale,
//! baseline JPEGs take [`crate::jpeg_eighth`] first: libjpeg-turbo's exact output, 1.5× faster.

use std::io::Cursor;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use crate::budget::{MemoryBudget, Reservation};
use crate::jpeg_structure::{jpeg_structure, JpegEnd};
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
    #[error("truncated: {0}")]
    Truncated(String),
    #[error("corrupt or truncated image: {0}")]
    Corrupt(String),
}

/// The JPEG's data ends before its end-of-image marker.
const JPEG_TRUNCATED: &str = "the JPEG data ends before its end-of-image marker";

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
    let is_jpeg = format == Some(ImageFormat::Jpeg);
    let jpeg = is_jpeg.then(|| jpeg_structure(bytes));
    let truncated = jpeg.is_some_and(|j| j.end == JpegEnd::Truncated);
    // A JPEG cut inside its headers: say "truncated", not the header parser's complaint.
    let mut decoder = reader.into_decoder().map_err(|e| {
        if truncated {
            DecodeError::Truncated(JPEG_TRUNCATED.into())
        } else {
            classify(e)
        }
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
    // Progressive decoders keep every DCT coefficient (i16) of up to 3 components.
    let coefficients = match jpeg {
        Some(j) if j.progressive => w as u64 * h as u64 * 3 * 2,
        _ => 0,
    };
    if is_jpeg && mode == DecodeMode::Reduced {
        let eighths = reduced_scale(w, h, min_short);
        if eighths < 8 {
            let (sw, sh) = (scaled_side(w, eighths), scaled_side(h, eighths));
            let rgb = sw as u64 * sh as u64 * 3;
            let reservation = budget.reserve(decoded_bytes(rgb, rgb, true, rotates) + coefficients);
            match jpeg_scaled(bytes, eighths)? {
                Some(rgb) => {
                    let mut img = DynamicImage::ImageRgb8(rgb);
                    img.apply_orientation(orientation);
                    return Ok(Decoded {
                        image: to_rgb8(img, background),
                        declared,
                        reservation,
                    });
                }
                // libjpeg refused it: the full decode below names the problem.
                None => drop(reservation),
            }
        }
    }
    // zune-jpeg pads a truncated JPEG with grey without saying so: check the structure.
    if truncated {
        return Err(DecodeError::Truncated(JPEG_TRUNCATED.into()));
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
    let reservation =
        budget.reserve(decoded_bytes(native, rgb, rgb8, rotates) + coefficients + scratch);
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
/// coefficients of a progressive JPEG, which the caller adds.
pub fn decoded_bytes(native: u64, rgb: u64, rgb8: bool, rotates: bool) -> u64 {
    if rgb8 && !rotates {
        native
    } else {
        2 * native + rgb / 3 * 7
    }
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

/// A side of `side` pixels decoded at `eighths`/8 (libjpeg rounds up).
fn scaled_side(side: u32, eighths: u8) -> u32 {
    (side as u64 * eighths as u64).div_ceil(8) as u32
}

/// Unwinding payload of [`libjpeg_warning`] when the data ends before EOI.
struct LibjpegTruncated;

/// libjpeg's message hook: its warning `JWRN_JPEG_EOF` (the source ran out of data before EOI;
/// libjpeg would go on with an inserted EOI and grey-filled rows) becomes an unwind that
/// [`jpeg_scaled`] turns into [`DecodeError::Truncated`]. Other warnings (extraneous bytes,
/// which PIL accepts too) stay silent.
extern "C-unwind" fn libjpeg_warning(cinfo: &mut mozjpeg_sys::jpeg_common_struct, level: i32) {
    // SAFETY: libjpeg calls this hook with its own valid `cinfo`, whose `err` is our manager.
    let code = unsafe { cinfo.err.as_ref() }.map_or(0, |e| e.msg_code);
    if level < 0 && code == mozjpeg_sys::JWRN_JPEG_EOF {
        resume_unwind(Box::new(LibjpegTruncated));
    }
}

/// libjpeg's fatal-error hook: unwind (the `mozjpeg` crate's own does the same). `JERR_FILE_READ`
/// is the end of data met while skipping a segment (the `mozjpeg` crate's in-memory source
/// fails so when a cut falls inside an APP segment): truncated too. Otherwise the caller falls
/// back to the full decoder, which names the problem.
extern "C-unwind" fn libjpeg_fatal(cinfo: &mut mozjpeg_sys::jpeg_common_struct) {
    // SAFETY: as in `libjpeg_warning`.
    let code = unsafe { cinfo.err.as_ref() }.map_or(0, |e| e.msg_code);
    if code == mozjpeg_sys::JERR_FILE_READ {
        resume_unwind(Box::new(LibjpegTruncated));
    }
    resume_unwind(Box::new("libjpeg fatal error"));
}

/// Decode a JPEG at `eighths`/8 scale into RGB8 with libjpeg-turbo: `Err(Truncated)` when
/// libjpeg runs out of data before EOI, `Ok(None)` when libjpeg refuses it otherwise (the
/// caller then takes the full decode, which names the problem). libjpeg reports both by
/// unwinding, which is caught here.
///
/// At 1/8 scale, [`crate::jpeg_eighth`] decodes the baseline JPEGs it handles to the same
/// bytes, faster; the rest (and all its errors) stay libjpeg's.
fn jpeg_scaled(bytes: &[u8], eighths: u8) -> Result<Option<RgbImage>, DecodeError> {
    if eighths == 1 {
        if let Some(img) = crate::jpeg_eighth::decode_eighth(bytes) {
            return Ok(Some(img));
        }
    }
    libjpeg_scaled(bytes, eighths)
}

/// [`jpeg_scaled`] by libjpeg-turbo alone: the reference [`crate::jpeg_eighth`] matches.
pub fn libjpeg_scaled(bytes: &[u8], eighths: u8) -> Result<Option<RgbImage>, DecodeError> {
    let result = catch_unwind(AssertUnwindSafe(|| -> Option<RgbImage> {
        // SAFETY: `jpeg_std_error` fills a zeroed `jpeg_error_mgr` with libjpeg's defaults;
        // the hooks replaced after it never return into libjpeg (they unwind) or only read.
        let err = unsafe {
            let mut err: mozjpeg_sys::jpeg_error_mgr = std::mem::zeroed();
            mozjpeg_sys::jpeg_std_error(&mut err);
            err.error_exit = Some(libjpeg_fatal);
            err.emit_message = Some(libjpeg_warning);
            err
        };
        let mut d = mozjpeg::Decompress::with_err(err).from_mem(bytes).ok()?;
        d.scale(eighths);
        let mut started = d.rgb().ok()?;
        let (w, h) = (started.width() as u32, started.height() as u32);
        let pixels = started.read_scanlines::<u8>().ok()?;
        started.finish().ok()?;
        RgbImage::from_raw(w, h, pixels)
    }));
    match result {
        Ok(img) => Ok(img),
        Err(payload) if payload.is::<LibjpegTruncated>() => Err(DecodeError::Truncated(format!(
            "{JPEG_TRUNCATED} (libjpeg: premature end of JPEG file)"
        ))),
        Err(_) => Ok(None),
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

    /// `img` as a progressive JPEG (libjpeg's encoder, quality 90).
    fn progressive_jpeg(img: &RgbImage) -> Vec<u8> {
        let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
        c.set_size(img.width() as usize, img.height() as usize);
        c.set_quality(90.0);
        c.set_progressive_mode();
        let mut started = c.start_compress(Vec::new()).unwrap();
        started.write_scanlines(img.as_raw()).unwrap();
        started.finish().unwrap()
    }

    /// Cuts of `jpeg` that PIL refuses as truncated: fractions of it, and the whole of it but
    /// the last one or two bytes (no end-of-image marker).
    fn cuts(jpeg: &[u8]) -> Vec<(String, &[u8])> {
        let mut out: Vec<(String, &[u8])> = [0.01, 0.05, 0.25, 0.5, 0.75, 0.9, 0.99]
            .iter()
            .map(|f| (format!("{f}"), &jpeg[..(jpeg.len() as f64 * f) as usize]))
            .collect();
        out.push(("no EOI".into(), &jpeg[..jpeg.len() - 2]));
        out.push(("half an EOI".into(), &jpeg[..jpeg.len() - 1]));
        out
    }

    /// Every cut of `jpeg` is refused as truncated in both decode modes, by libjpeg's own
    /// warning and by the marker walk alike; the intact file, and the file with bytes after
    /// its end-of-image marker, decode to the same pixels.
    fn check_truncation(name: &str, jpeg: &[u8]) {
        let min_short = 64;
        let img = image::load_from_memory(jpeg).unwrap();
        let (w, h) = (img.width(), img.height());
        assert!(reduced_scale(w, h, min_short) < 8, "{name} is reduced");
        for (cut, bytes) in cuts(jpeg) {
            for mode in [DecodeMode::Full, DecodeMode::Reduced] {
                let r = decode_rgb_for(bytes, [0; 3], mode, min_short);
                assert!(
                    matches!(r, Err(DecodeError::Truncated(_))),
                    "{name} cut at {cut}, {mode:?}: {r:?}"
                );
                assert!(r.unwrap_err().to_string().starts_with("truncated"));
            }
            assert!(
                matches!(jpeg_scaled(bytes, 2), Err(DecodeError::Truncated(_))),
                "{name} cut at {cut}: libjpeg's signal"
            );
            assert_eq!(
                jpeg_structure(bytes).end,
                JpegEnd::Truncated,
                "{name} cut at {cut}: marker walk"
            );
        }
        let mut trailing = jpeg.to_vec();
        trailing.extend_from_slice(b"\0\0trailing bytes after EOI\xff\xd8");
        for mode in [DecodeMode::Full, DecodeMode::Reduced] {
            let intact = decode_rgb_for(jpeg, [0; 3], mode, min_short).unwrap();
            let more = decode_rgb_for(&trailing, [0; 3], mode, min_short).unwrap();
            assert_eq!(intact, more, "{name} {mode:?}");
        }
        assert_eq!(jpeg_structure(jpeg).end, JpegEnd::Complete, "{name}");
    }

    #[test]
    fn truncated_jpegs_are_refused_in_both_modes_and_trailing_bytes_are_not() {
        let src = RgbImage::from_fn(640, 480, |x, y| {
            image::Rgb([(x / 3) as u8, (y / 2) as u8, ((x * y) % 251) as u8])
        });
        let baseline = encode(&DynamicImage::ImageRgb8(src.clone()), ImageFormat::Jpeg);
        assert!(!jpeg_structure(&baseline).progressive);
        check_truncation("baseline", &baseline);
        let progressive = progressive_jpeg(&src);
        assert!(jpeg_structure(&progressive).progressive);
        check_truncation("progressive", &progressive);
    }

    #[test]
    #[ignore = "needs make data (data/smoke); run by make test"]
    fn truncated_real_photos_are_refused_in_both_modes() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/smoke");
        assert!(
            dir.join("MANIFEST.json").exists(),
            "{} is missing: run `make data DATASETS=smoke`",
            dir.display()
        );
        let mut n = 0;
        for class in std::fs::read_dir(&dir).unwrap() {
            let class = class.unwrap().path();
            if !class.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&class).unwrap() {
                let f = f.unwrap().path();
                if f.extension().is_some_and(|e| e == "jpg") {
                    let jpeg = std::fs::read(&f).unwrap();
                    check_truncation(&f.display().to_string(), &jpeg);
                    let rgb = decode_rgb(&jpeg, [0; 3]).unwrap();
                    check_truncation("progressive re-encoding", &progressive_jpeg(&rgb));
                    n += 1;
                }
            }
        }
        assert!(n >= 8, "{n} smoke JPEGs");
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
