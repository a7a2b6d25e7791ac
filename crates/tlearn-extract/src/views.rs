//! One file's bytes → its feature vector: decode, cut the augmentation views (each crop window
//! resized once, mirrors flipped from it), encode them and average.

use anyhow::{bail, Result};
use image::RgbImage;

use crate::augment::{self, Augment};
use crate::budget::MemoryBudget;
use crate::decode;
use crate::encoder::Encoder;
use crate::preprocess;

/// One file's vector, and what decoding it took.
#[derive(Debug, Clone)]
pub struct Encoded {
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
    let p = enc.preprocess();
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
    let mut views: Vec<RgbImage> = Vec::with_capacity(specs.len());
    for (i, &v) in specs.iter().enumerate() {
        let done = specs[..i]
            .iter()
            .position(|u| u.anchor == v.anchor && !u.flip);
        let mut view = match done {
            Some(j) => views[j].clone(),
            None => preprocess::view_image(&img, p, augment::View { flip: false, ..v })?,
        };
        if v.flip {
            image::imageops::flip_horizontal_in_place(&mut view);
        }
        views.push(view);
    }
    drop(img);
    drop(decoded.reservation);
    let vecs = enc.encode_views(&views)?;
    let out = augment::average(&vecs);
    if out.len() != enc.dim() {
        bail!(
            "backbone returned {} values, expected dim {}",
            out.len(),
            enc.dim()
        );
    }
    if out.iter().any(|x| !x.is_finite()) {
        bail!("backbone returned non-finite values");
    }
    Ok(Encoded {
        vector: out,
        declared,
        reserved,
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
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        encode_bytes(enc, bytes, augment, budget)
    })) {
        Ok(r) => r,
        Err(_) => bail!("decoder or backbone panicked on this file"),
    }
}
