//! One file's bytes → its feature vector: decode, cut the augmentation views (each crop window
//! resized once, mirrors flipped from it), encode them and average (or keep every view's
//! vector, for `extract --keep-views`).

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
    let (vecs, declared, reserved) = encode_each_view(enc, bytes, augment, budget)?;
    Ok(Encoded {
        vector: augment::average(&vecs),
        declared,
        reserved,
    })
}

/// Decode → views → encode, for one file's bytes, every view kept: [`Encoded::vector`] holds
/// the views' vectors one after another (`views × dim` values, [`augment::views`] order).
pub fn encode_bytes_views(
    enc: &dyn Encoder,
    bytes: &[u8],
    augment: Augment,
    budget: &MemoryBudget,
) -> Result<Encoded> {
    let (vecs, declared, reserved) = encode_each_view(enc, bytes, augment, budget)?;
    Ok(Encoded {
        vector: vecs.concat(),
        declared,
        reserved,
    })
}

/// Every view's vector (each checked: `dim` finite values), the image's declared size and the
/// bytes reserved for decoding it.
type EachView = (Vec<Vec<f32>>, (u32, u32), u64);

/// Decode `bytes` within the budget and encode every view of `augment`: see [`EachView`].
fn encode_each_view(
    enc: &dyn Encoder,
    bytes: &[u8],
    augment: Augment,
    budget: &MemoryBudget,
) -> Result<EachView> {
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
    if vecs.len() != specs.len() {
        bail!(
            "backbone returned {} vectors for {} views",
            vecs.len(),
            specs.len()
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
    Ok((vecs, declared, reserved))
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
