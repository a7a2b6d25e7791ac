//! The fast 1/8-scale JPEG decoder (`jpeg_eighth`) against libjpeg-turbo's own output at that
//! scale (`jpeg::libjpeg_scaled(bytes, 1)`): byte-identical RGB on the smoke photos and on
//! camera-sized (4032×3024 and odd-sized) JPEGs made from them in every sampling layout it
//! handles, with and without restart intervals; it takes the camera case (returns `Some`);
//! and on cut or corrupted photos it never panics and never disagrees with libjpeg.

use std::path::{Path, PathBuf};

use image::{imageops::FilterType, DynamicImage, RgbImage};
use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
use proptest::prelude::*;
use tlearn_cache::DecodeMode;
use tlearn_decode::decode;
use tlearn_decode::jpeg::libjpeg_scaled;
use tlearn_decode::jpeg_eighth::decode_eighth;

fn smoke_jpegs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/smoke");
    let mut out = Vec::new();
    for set in
        std::fs::read_dir(&root).unwrap_or_else(|e| panic!("{}: {e} (make data)", root.display()))
    {
        let set = set.unwrap().path();
        if !set.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&set).unwrap() {
            let f = f.unwrap().path();
            let ext = f
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("")
                .to_lowercase();
            if ext == "jpg" || ext == "jpeg" {
                out.push(f);
            }
        }
    }
    out.sort();
    assert!(
        out.len() >= 5,
        "smoke JPEG photos missing under {}",
        root.display()
    );
    out
}

fn libjpeg(bytes: &[u8]) -> RgbImage {
    libjpeg_scaled(bytes, 1)
        .expect("libjpeg decodes it")
        .expect("libjpeg decodes it")
}

/// The fast decoder's output, which must exist and equal libjpeg's.
fn assert_exact(bytes: &[u8], what: &str) {
    let fast = decode_eighth(bytes).unwrap_or_else(|| panic!("{what}: fast path refused it"));
    let reference = libjpeg(bytes);
    assert_eq!(fast.dimensions(), reference.dimensions(), "{what}");
    if fast.as_raw() != reference.as_raw() {
        let first = fast
            .as_raw()
            .iter()
            .zip(reference.as_raw())
            .position(|(a, b)| a != b);
        panic!("{what}: RGB differs from libjpeg's (first at byte {first:?})");
    }
}

/// Is this a baseline (SOF0/SOF1) frame? The smoke photos' own headers.
fn baseline(bytes: &[u8]) -> bool {
    let mut i = 2;
    while i + 4 < bytes.len() {
        let code = bytes[i + 1];
        if matches!(code, 0xC0 | 0xC1) {
            return true;
        }
        if matches!(code, 0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF | 0xDA) {
            return false;
        }
        i += 2 + u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
    }
    false
}

#[test]
fn smoke_photos_decode_at_one_eighth_exactly_like_libjpeg() {
    let mut fast = 0;
    for f in smoke_jpegs() {
        let bytes = std::fs::read(&f).unwrap();
        let what = f.display().to_string();
        match decode_eighth(&bytes) {
            Some(img) => {
                assert_eq!(img, libjpeg(&bytes), "{what}");
                fast += 1;
            }
            None => assert!(
                !baseline(&bytes),
                "{what}: baseline, yet the fast path refused it"
            ),
        }
    }
    assert!(fast >= 5, "only {fast} smoke photos took the fast path");
}

/// A smoke photo upscaled to `w×h` (camera size), RGB.
fn camera_sized(w: u32, h: u32) -> RgbImage {
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/smoke/darknet/dog.jpg");
    let img = image::open(&f).unwrap_or_else(|e| panic!("{}: {e} (make data)", f.display()));
    img.resize_exact(w, h, FilterType::Triangle).to_rgb8()
}

fn encode(img: &RgbImage, sampling: SamplingFactor, grey: bool, restart: u16, q: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = Encoder::new(&mut out, q);
    e.set_sampling_factor(sampling);
    if restart > 0 {
        e.set_restart_interval(restart);
    }
    let (w, h) = (img.width() as u16, img.height() as u16);
    if grey {
        let luma = DynamicImage::ImageRgb8(img.clone()).to_luma8();
        e.encode(luma.as_raw(), w, h, ColorType::Luma).unwrap();
    } else {
        e.encode(img.as_raw(), w, h, ColorType::Rgb).unwrap();
    }
    out
}

#[test]
fn camera_sized_jpegs_decode_exactly_like_libjpeg_in_every_layout() {
    let full = camera_sized(4032, 3024);
    let odd = camera_sized(4031, 3023);
    let cases = [
        ("4:2:0", &full, SamplingFactor::F_2_2, false, 0, 90),
        (
            "4:2:0 restarts every MCU",
            &full,
            SamplingFactor::F_2_2,
            false,
            1,
            90,
        ),
        (
            "4:2:0 restarts every 7 MCUs, 4031×3023",
            &odd,
            SamplingFactor::F_2_2,
            false,
            7,
            90,
        ),
        ("4:2:0 q100", &odd, SamplingFactor::F_2_2, false, 0, 100),
        ("4:2:2", &full, SamplingFactor::F_2_1, false, 0, 90),
        (
            "4:2:2 restarts, 4031×3023",
            &odd,
            SamplingFactor::F_2_1,
            false,
            13,
            95,
        ),
        ("4:4:4", &full, SamplingFactor::F_1_1, false, 0, 90),
        (
            "4:4:4 restarts, 4031×3023",
            &odd,
            SamplingFactor::F_1_1,
            false,
            5,
            75,
        ),
        ("4:4:0", &odd, SamplingFactor::F_1_2, false, 3, 90),
        ("greyscale", &full, SamplingFactor::F_1_1, true, 0, 90),
        (
            "greyscale restarts, 4031×3023",
            &odd,
            SamplingFactor::F_1_1,
            true,
            9,
            90,
        ),
    ];
    for (what, img, sampling, grey, restart, q) in cases {
        assert_exact(&encode(img, sampling, grey, restart, q), what);
    }
    // libjpeg's own encoder (baseline, its standard tables, JFIF) at 4:2:0.
    let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
    c.set_fastest_defaults();
    c.set_size(odd.width() as usize, odd.height() as usize);
    c.set_quality(90.0);
    let mut s = c.start_compress(Vec::new()).unwrap();
    s.write_scanlines(odd.as_raw()).unwrap();
    assert_exact(&s.finish().unwrap(), "libjpeg-encoded 4:2:0");
}

#[test]
fn the_camera_case_takes_the_fast_path_through_reduced_decoding() {
    let bytes = encode(
        &camera_sized(4032, 3024),
        SamplingFactor::F_2_2,
        false,
        4,
        90,
    );
    let fast = decode_eighth(&bytes).expect("a 12-MP 4:2:0 baseline JPEG takes the fast path");
    assert_eq!(fast.dimensions(), (504, 378));
    // What extraction gets (a 256-pixel short side needs no more than 1/8 of 3024).
    let reduced = decode::decode_rgb_for(&bytes, [255; 3], DecodeMode::Reduced, 256).unwrap();
    assert_eq!(reduced, fast);
}

/// A real photo JPEG with restarts, small enough for many cases.
fn seed() -> &'static [u8] {
    static SEED: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    SEED.get_or_init(|| encode(&camera_sized(403, 301), SamplingFactor::F_2_2, false, 3, 90))
}

/// Fast path: `None`, or exactly libjpeg's image (never a different picture, never a panic).
fn agrees(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Some(fast) = decode_eighth(bytes) {
        match libjpeg_scaled(bytes, 1) {
            Ok(Some(reference)) => prop_assert!(fast == reference, "differs from libjpeg"),
            other => prop_assert!(
                false,
                "fast path decoded what libjpeg gives as {:?}",
                other.map(|o| o.map(|i| i.dimensions()))
            ),
        }
    }
    Ok(())
}

#[test]
fn the_seed_takes_the_fast_path() {
    assert_exact(seed(), "seed");
}

proptest! {
    #[test]
    fn a_cut_photo_is_refused_or_decoded_like_libjpeg(cut in 0usize..20_000) {
        let s = seed();
        agrees(&s[..cut % s.len()])?;
    }

    #[test]
    fn a_corrupted_photo_is_refused_or_decoded_like_libjpeg(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)
    ) {
        let mut b = seed().to_vec();
        for (at, v) in edits {
            let i = at.index(b.len());
            b[i] = v;
        }
        agrees(&b)?;
    }
}
