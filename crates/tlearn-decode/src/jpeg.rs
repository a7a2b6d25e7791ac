//! The JPEG policy, in one place: which decoder a JPEG goes to, at what size, what memory it
//! reserves, and when it is refused as truncated. [`crate::decode`] asks this module at each
//! step and knows no JPEG rule of its own; [`crate::jpeg_eighth`] and
//! [`crate::jpeg_structure`] are the mechanisms it uses.
//!
//! - **Full size** ([`DecodeMode::Full`], and every case below that falls back): the `image`
//!   crate's decoder (zune-jpeg), as for every other format.
//! - **Reduced size** ([`DecodeMode::Reduced`]): a JPEG is decoded at 1/2, 1/4 or 1/8 of its
//!   size in the DCT domain, the smallest scale that keeps its short side at least the size
//!   the resize after it needs ([`reduced_scale`]), as PIL's `Image.draft` does; at full scale
//!   (a small image) it is the full decode. That uses libjpeg-turbo's decoder (the `mozjpeg`
//!   crate, built from its bundled C source, no system library): zune-jpeg cannot scale, and on
//!   a 4032×3024 photo at 1/8 scale the pure-Rust `jpeg-decoder` took 31-46 ms per image
//!   against 22-30 ms for this decoder and 22-33 ms for PIL's `draft` (one core of the 16-core
//!   bench machine; full decodes: zune-jpeg 71-80 ms, PIL 122-125 ms).
//! - **At 1/8 scale**, baseline JPEGs take [`crate::jpeg_eighth`] first: libjpeg-turbo's exact
//!   output, 1.5× faster; whatever it does not replicate (progressive files, unusual sampling,
//!   anything irregular) goes to libjpeg, which keeps every error message.
//! - **libjpeg refuses** a file (CMYK, corrupt data): the full decode, which names the problem.
//! - **Truncated**: a JPEG whose data ends before its end-of-image marker is refused as
//!   [`DecodeError::Truncated`] (PIL's default; the decoders would fill the missing rows with
//!   grey and give confident wrong codes): on libjpeg's path by its own warning
//!   `JWRN_JPEG_EOF`, on zune-jpeg's by the marker walk of [`crate::jpeg_structure`] (zune-jpeg
//!   gives no signal; that module says why), and a file cut inside its headers is "truncated"
//!   too rather than the header parser's complaint.
//! - **Memory**: the bytes reserved from the run's budget are the decoded pixels'
//!   ([`crate::decode::decoded_bytes`], at the scaled size on the reduced path), plus, for a
//!   progressive file, every DCT coefficient (16 bits, 3 components) its decoder holds.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use image::RgbImage;
use tlearn_cache::DecodeMode;

use crate::budget::{MemoryBudget, Reservation};
use crate::decode::{decoded_bytes, DecodeError};
use crate::jpeg_structure::{jpeg_structure, JpegEnd, JpegStructure};

/// The JPEG's data ends before its end-of-image marker.
const TRUNCATED: &str = "the JPEG data ends before its end-of-image marker";

/// What the policy knows of one JPEG file before any decoder runs: its marker walk.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Jpeg<'b> {
    bytes: &'b [u8],
    structure: JpegStructure,
}

impl<'b> Jpeg<'b> {
    /// Walk `bytes`' markers (no pixels read: well under a millisecond for a 3 MB photo).
    pub(crate) fn read(bytes: &'b [u8]) -> Jpeg<'b> {
        Jpeg {
            bytes,
            structure: jpeg_structure(bytes),
        }
    }

    fn truncated(&self) -> bool {
        self.structure.end == JpegEnd::Truncated
    }

    /// The error for a header the decoder could not read: "truncated" when the data stops
    /// early, else the decoder's own.
    pub(crate) fn header_error(&self, decoder: DecodeError) -> DecodeError {
        if self.truncated() {
            DecodeError::Truncated(TRUNCATED.into())
        } else {
            decoder
        }
    }

    /// Bytes a decoder of this `w×h` file holds besides the pixels: a progressive decoder keeps
    /// every DCT coefficient (i16) of up to 3 components.
    pub(crate) fn working_bytes(&self, w: u32, h: u32) -> u64 {
        if self.structure.progressive {
            w as u64 * h as u64 * 3 * 2
        } else {
            0
        }
    }

    /// The reduced-size decode of this `w×h` (as stored) file, with its reservation from
    /// `budget`, when `mode` asks for one and the scale is below 1; `Ok(None)` when the file is
    /// to be decoded at full size (no reduction, or libjpeg refused it). `rotates`: the caller
    /// will rotate the pixels (a copy).
    pub(crate) fn decode_reduced<'a>(
        &self,
        (w, h): (u32, u32),
        mode: DecodeMode,
        min_short: u32,
        rotates: bool,
        budget: &'a MemoryBudget,
    ) -> Result<Option<(RgbImage, Reservation<'a>)>, DecodeError> {
        if mode != DecodeMode::Reduced {
            return Ok(None);
        }
        let eighths = reduced_scale(w, h, min_short);
        if eighths == 8 {
            return Ok(None);
        }
        let (sw, sh) = (scaled_side(w, eighths), scaled_side(h, eighths));
        let rgb = sw as u64 * sh as u64 * 3;
        let reservation =
            budget.reserve(decoded_bytes(rgb, rgb, true, rotates) + self.working_bytes(w, h));
        Ok(decode_scaled(self.bytes, eighths)?.map(|img| (img, reservation)))
    }

    /// Before the full decode: zune-jpeg pads a truncated file with grey without saying so,
    /// so the marker walk's verdict is the error.
    pub(crate) fn check_complete(&self) -> Result<(), DecodeError> {
        if self.truncated() {
            return Err(DecodeError::Truncated(TRUNCATED.into()));
        }
        Ok(())
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

/// Decode a JPEG at `eighths`/8 scale into RGB8: at 1/8, [`crate::jpeg_eighth`] when it
/// handles the file (the same bytes as libjpeg, faster), else [`libjpeg_scaled`] with its
/// errors.
pub(crate) fn decode_scaled(bytes: &[u8], eighths: u8) -> Result<Option<RgbImage>, DecodeError> {
    if eighths == 1 {
        if let Some(img) = crate::jpeg_eighth::decode_eighth(bytes) {
            return Ok(Some(img));
        }
    }
    libjpeg_scaled(bytes, eighths)
}

/// Unwinding payload of [`libjpeg_warning`] when the data ends before EOI.
struct LibjpegTruncated;

/// libjpeg's message hook: its warning `JWRN_JPEG_EOF` (the source ran out of data before EOI;
/// libjpeg would go on with an inserted EOI and grey-filled rows) becomes an unwind that
/// [`libjpeg_scaled`] turns into [`DecodeError::Truncated`]. Other warnings (extraneous bytes,
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

/// Decode a JPEG at `eighths`/8 scale into RGB8 with libjpeg-turbo alone (the reference
/// [`crate::jpeg_eighth`] matches): `Err(Truncated)` when libjpeg runs out of data before EOI,
/// `Ok(None)` when libjpeg refuses it otherwise (the caller then takes the full decode, which
/// names the problem). libjpeg reports both by unwinding, which is caught here.
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
            "{TRUNCATED} (libjpeg: premature end of JPEG file)"
        ))),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use image::{DynamicImage, ImageFormat};

    use super::*;
    use crate::decode::{decode_rgb, decode_rgb_for};

    fn encode(img: &DynamicImage, fmt: ImageFormat) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        img.write_to(&mut buf, fmt).unwrap();
        buf.into_inner()
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
                matches!(decode_scaled(bytes, 2), Err(DecodeError::Truncated(_))),
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
}
