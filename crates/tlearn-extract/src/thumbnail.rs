//! Small JPEG thumbnails of data-set images, for the HTML report (decoded with the same
//! decoder and limits as extraction, alpha composited on white).

use anyhow::{Context, Result};
use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;

use crate::decode;

/// The image in `bytes` scaled to fit `max_side`×`max_side` (never enlarged), as JPEG bytes.
pub fn thumbnail_jpeg(bytes: &[u8], max_side: u32) -> Result<Vec<u8>> {
    let img = decode::decode_rgb(bytes, [255, 255, 255])?;
    let (w, h) = img.dimensions();
    let img = if w.max(h) > max_side {
        image::DynamicImage::ImageRgb8(img)
            .resize(max_side, max_side, FilterType::Triangle)
            .to_rgb8()
    } else {
        img
    };
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .context("encoding the thumbnail")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnails_fit_the_box_and_refuse_non_images() {
        let img = image::RgbImage::from_fn(400, 100, |x, _| image::Rgb([(x % 256) as u8, 0, 0]));
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let t = thumbnail_jpeg(&png, 160).unwrap();
        let back = image::load_from_memory(&t).unwrap();
        assert_eq!((back.width(), back.height()), (160, 40));
        assert!(thumbnail_jpeg(b"not an image", 160).is_err());
    }
}
