//! One file's bytes → its feature vector: decode, cut the augmentation views (each crop window
//! resized once, mirrors flipped from it), encode them and average (or keep every view's
//! vector, for `extract --keep-views`).
//!
//! Several encoders can take one file together ([`encode_bytes_together`], for extracting two
//! backbones in one pass): encoders whose preprocessing agrees on everything before the
//! normalisation (background, JPEG decode mode, crop and resize) see the very same decoded
//! pixels and views, so the file is decoded and resized once for all of them, and each gets the
//! vector it would have got alone, bit for bit.

use anyhow::{anyhow, bail, Result};
use image::RgbImage;

use crate::augment::{self, Augment};
use crate::budget::MemoryBudget;
use crate::decode;
use crate::encoder::Encoder;
use crate::preprocess;
use crate::spec::Preprocess;

/// One file's vector, and what decoding it took.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The views' vectors averaged ([`encode_bytes`]), or every view's vector one after another
    /// in [`augment::views`] order ([`encode_bytes_views`]).
    pub vector: Vec<f32>,
    /// The stored size its header declares.
    pub declared: (u32, u32),
    /// Bytes reserved from the memory budget while its pixels were decoded.
    pub reserved: u64,
}

/// Decode → views → encode → average, for one file's bytes. The decoded pixels are held within
/// `budget` (reserved before decoding, released once the views are cut).
pub fn encode_bytes(
    enc: &dyn Encoder,
    bytes: &[u8],
    augment: Augment,
    budget: &MemoryBudget,
) -> Result<Encoded> {
    let views = decode_views(enc.preprocess(), bytes, augment, budget)?;
    encode_views(enc, &views, false)
}

/// Decode → views → encode, for one file's bytes, every view kept: [`Encoded::vector`] holds
/// the views' vectors one after another (`views × dim` values, [`augment::views`] order).
pub fn encode_bytes_views(
    enc: &dyn Encoder,
    bytes: &[u8],
    augment: Augment,
    budget: &MemoryBudget,
) -> Result<Encoded> {
    let views = decode_views(enc.preprocess(), bytes, augment, budget)?;
    encode_views(enc, &views, true)
}

/// One file's bytes through several encoders (each with whether its views are kept, as
/// [`encode_bytes_views`], or averaged, as [`encode_bytes`]): one result per encoder, in order,
/// each equal to what that encoder gives alone. The file is decoded and its views cut once per
/// group of encoders that see the same views ([`same_views`]); a panic inside a decoder or a
/// backbone is an error for every encoder.
pub fn encode_bytes_together(
    encs: &[(&dyn Encoder, bool)],
    bytes: &[u8],
    augment: Augment,
    budget: &MemoryBudget,
) -> Vec<Result<Encoded>> {
    let run = || {
        let mut out: Vec<Option<Result<Encoded>>> = encs.iter().map(|_| None).collect();
        for i in 0..encs.len() {
            if out[i].is_some() {
                continue;
            }
            let p = encs[i].0.preprocess();
            let group: Vec<usize> = (i..encs.len())
                .filter(|&j| out[j].is_none() && same_views(p, encs[j].0.preprocess()))
                .collect();
            match decode_views(p, bytes, augment, budget) {
                Ok(views) => {
                    for j in group {
                        let (enc, keep) = encs[j];
                        out[j] = Some(encode_views(enc, &views, keep));
                    }
                }
                Err(e) => {
                    let msg = format!("{e:#}");
                    for j in group {
                        out[j] = Some(Err(anyhow!("{msg}")));
                    }
                }
            }
        }
        out.into_iter()
            .map(|r| r.expect("every encoder has a result"))
            .collect()
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(r) => r,
        Err(_) => encs
            .iter()
            .map(|_| Err(anyhow!("decoder or backbone panicked on this file")))
            .collect(),
    }
}

/// Whether two preprocessing specs give the same views of every file: the same background, JPEG
/// decode mode, crop and short-side resize (they may differ in normalisation, channel order and
/// layout, which come after the views).
pub fn same_views(a: &Preprocess, b: &Preprocess) -> bool {
    a.background == b.background
        && a.decode == b.decode
        && a.crop == b.crop
        && a.resize_ratio.to_bits() == b.resize_ratio.to_bits()
}

/// A file's views of `augment` (in [`augment::views`] order), its declared size and the bytes
/// reserved for decoding it.
struct Views {
    images: Vec<RgbImage>,
    declared: (u32, u32),
    reserved: u64,
}

/// Decode `bytes` within the budget as `p` says and cut every view of `augment`; the decoded
/// pixels are released once the views are cut.
fn decode_views(
    p: &Preprocess,
    bytes: &[u8],
    augment: Augment,
    budget: &MemoryBudget,
) -> Result<Views> {
    let decoded = decode::decode_rgb_within(
        bytes,
        p.background,
        p.decode,
        preprocess::short_side(p),
        budget,
    )?;
    let (declared, reserved) = (decoded.declared, decoded.reservation.bytes());
    let img = decoded.image;
    // A mirrored view is its unmirrored crop flipped: resize each crop window once.
    let specs = augment::views(augment);
    let mut images: Vec<RgbImage> = Vec::with_capacity(specs.len());
    for (i, &v) in specs.iter().enumerate() {
        let done = specs[..i]
            .iter()
            .position(|u| u.anchor == v.anchor && !u.flip);
        let mut view = match done {
            Some(j) => images[j].clone(),
            None => preprocess::view_image(&img, p, augment::View { flip: false, ..v })?,
        };
        if v.flip {
            image::imageops::flip_horizontal_in_place(&mut view);
        }
        images.push(view);
    }
    drop(img);
    drop(decoded.reservation);
    Ok(Views {
        images,
        declared,
        reserved,
    })
}

/// Encode a file's views (each vector checked: `dim` finite values), averaged or every view's
/// kept one after another.
fn encode_views(enc: &dyn Encoder, views: &Views, keep_views: bool) -> Result<Encoded> {
    let vecs = enc.encode_views(&views.images)?;
    if vecs.len() != views.images.len() {
        bail!(
            "backbone returned {} vectors for {} views",
            vecs.len(),
            views.images.len()
        );
    }
    for v in &vecs {
        if v.len() != enc.dim() {
            bail!(
                "backbone returned {} values, expected dim {}",
                v.len(),
                enc.dim()
            );
        }
        if v.iter().any(|x| !x.is_finite()) {
            bail!("backbone returned non-finite values");
        }
    }
    Ok(Encoded {
        vector: if keep_views {
            vecs.concat()
        } else {
            augment::average(&vecs)
        },
        declared: views.declared,
        reserved: views.reserved,
    })
}

/// [`encode_bytes`], with a panic inside a decoder or the backbone turned into an error: one
/// bad file must not take a run (extraction or prediction) down.
pub fn encode_bytes_catching(
    enc: &dyn Encoder,
    bytes: &[u8],
    augment: Augment,
    budget: &MemoryBudget,
) -> Result<Encoded> {
    catching(|| encode_bytes(enc, bytes, augment, budget))
}

/// [`encode_bytes_views`] with panics caught.
pub fn encode_bytes_views_catching(
    enc: &dyn Encoder,
    bytes: &[u8],
    augment: Augment,
    budget: &MemoryBudget,
) -> Result<Encoded> {
    catching(|| encode_bytes_views(enc, bytes, augment, budget))
}

fn catching(f: impl FnOnce() -> Result<Encoded>) -> Result<Encoded> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => bail!("decoder or backbone panicked on this file"),
    }
}
