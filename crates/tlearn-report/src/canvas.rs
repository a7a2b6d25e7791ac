//! What every picture shares: the label font (registered with plotters once), the RGB canvas
//! plotters draws into, and the PNG encoding written with the project's atomic write.

use anyhow::{anyhow, Result};
use plotters::style::FontStyle;
use std::path::Path;
use std::sync::OnceLock;

/// Register the label font with plotters once: `TLEARN_FONT` (a TrueType file) if set, else the
/// DejaVu Sans embedded in the binary (the `dejavu` crate), so pictures look the same everywhere.
pub(crate) fn font_available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        if let Ok(p) = std::env::var("TLEARN_FONT") {
            if let Ok(bytes) = std::fs::read(&p) {
                let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, leaked).is_ok() {
                    return true;
                }
            }
            eprintln!("note: TLEARN_FONT={p} is not a usable TrueType font; using DejaVu Sans");
        }
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .is_ok()
    })
}

/// An RGB canvas for plotters' `BitMapBackend::with_buffer`, `w × h` pixels.
pub(crate) fn png_buffer(w: u32, h: u32) -> Vec<u8> {
    vec![0; w as usize * h as usize * 3]
}

/// Encode a drawn canvas as PNG and write it with the project's one atomic write (unique temp
/// file, fsync, rename), rather than letting plotters write the path itself.
pub(crate) fn write_png(path: &Path, w: u32, h: u32, rgb: Vec<u8>) -> Result<()> {
    let img = image::RgbImage::from_raw(w, h, rgb)
        .ok_or_else(|| anyhow!("drawing {}: canvas is not {w}×{h} RGB", path.display()))?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| anyhow!("encoding {}: {e}", path.display()))?;
    Ok(tlearn_cache::write_atomic_bytes(path, &png)?)
}
