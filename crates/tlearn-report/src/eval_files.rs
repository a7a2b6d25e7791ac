//! What `tlearn eval` writes into its output folder, in one place: `report.json` (the
//! evaluation, the head's classes and parts, and the selection over cuts recorded in the
//! `cv.json` beside the head), `confusion.png`, and `report.html` with the pictures it embeds
//! (`cv-curve.png`, `cv-cuts.png`, `codes-map.png`, thumbnails of the misclassified images).
//!
//! Thumbnails need the images decoded, which is the extractor's job (data flows one way: this
//! crate reads only codes), so the caller passes the function that makes one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::model_file::SavedHead;
use crate::pipeline::EvalReport;
use crate::report_html::{self, Figures, Picture};
use crate::{report, report_cuts, report_plots, FeatureCache};

/// Longest side of a misclassified image's thumbnail in report.html, in pixels.
pub const THUMBNAIL_SIDE: u32 = 180;

/// Makes a JPEG thumbnail (longest side at most [`THUMBNAIL_SIDE`]) of an image file's bytes.
pub type Thumbnailer<'a> = &'a dyn Fn(&[u8], u32) -> Result<Vec<u8>>;

/// The files [`write`] made, and notes for the person running it (missing font, thumbnails
/// that could not be made).
#[derive(Debug)]
pub struct EvalOutputs {
    pub json: PathBuf,
    pub confusion: PathBuf,
    pub html: PathBuf,
    pub notes: Vec<String>,
}

/// `cv.json` written by `tlearn train` beside the head, if it is there and readable.
pub fn cv_beside(head_path: &Path) -> Option<serde_json::Value> {
    let cv_path = head_path.parent().unwrap_or(Path::new(".")).join("cv.json");
    std::fs::read_to_string(cv_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

/// Write report.json, confusion.png and report.html for `rep` (the evaluation of `head`,
/// loaded from `head_path`, on `cache`) into `out`, creating it.
pub fn write(
    head_path: &Path,
    head: &SavedHead,
    cache: &FeatureCache,
    rep: &EvalReport,
    out: &Path,
    thumbnail: Thumbnailer,
) -> Result<EvalOutputs> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut notes = Vec::new();
    let cv = cv_beside(head_path);

    let json = out.join("report.json");
    let mut v = serde_json::to_value(rep)?;
    v["classes"] = serde_json::to_value(head.classes())?;
    v["parts"] = serde_json::to_value(head.parts())?;
    if let Some(c) = cv.as_ref().and_then(|cv| cv.get("cuts")) {
        v["cuts"] = c.clone();
    }
    tlearn_cache::write_atomic_bytes(&json, serde_json::to_string_pretty(&v)?.as_bytes())?;

    let confusion = out.join("confusion.png");
    let title = format!(
        "{} — accuracy {:.2}% on {} {} images",
        rep.params.kind(),
        100.0 * rep.metrics.accuracy,
        rep.metrics.n,
        rep.rows
    );
    if !report::confusion_png(&rep.metrics.confusion, head.classes(), &title, &confusion)? {
        notes.push(format!(
            "no TrueType font found (set TLEARN_FONT=/path/to/font.ttf); {} has no labels",
            confusion.display()
        ));
    }

    let fig = figures(
        head_path, head, cache, rep, out, cv, &confusion, thumbnail, &mut notes,
    )?;
    let html = out.join("report.html");
    let page = report_html::render(head, rep, &fig);
    tlearn_cache::write_atomic_bytes(&html, page.as_bytes())?;
    Ok(EvalOutputs {
        json,
        confusion,
        html,
        notes,
    })
}

/// Everything report.html shows besides the report itself; each picture is also left in
/// `out` as a PNG, or replaced by the reason it could not be drawn.
#[allow(clippy::too_many_arguments)]
fn figures(
    head_path: &Path,
    head: &SavedHead,
    cache: &FeatureCache,
    rep: &EvalReport,
    out: &Path,
    cv: Option<serde_json::Value>,
    confusion_png: &Path,
    thumbnail: Thumbnailer,
    notes: &mut Vec<String>,
) -> Result<Figures> {
    let cv_name = head_path.parent().unwrap_or(Path::new(".")).join("cv.json");
    let cv_curve = match &cv {
        None => Err(format!("{} not found", cv_name.display())),
        Some(v) => {
            let png = out.join("cv-curve.png");
            match report_plots::cv_curve_png(v, &png) {
                Ok(true) => Ok(Picture::png(std::fs::read(&png)?)),
                Ok(false) => Err(format!("{} lists no candidates", cv_name.display())),
                Err(e) => Err(format!("{e:#}")),
            }
        }
    };
    let cuts = match cv.as_ref().and_then(|v| v.get("cuts")) {
        None => None,
        Some(c) => {
            let png = out.join("cv-cuts.png");
            let pic = match report_cuts::png(c, &png) {
                Ok(true) => Ok(Picture::png(std::fs::read(&png)?)),
                Ok(false) => Err(
                    "one cut only; a cut set (`tlearn extract --layer all`) lets CV compare cuts"
                        .to_string(),
                ),
                Err(e) => Err(format!("{e:#}")),
            };
            Some((report_cuts::html(c), pic))
        }
    };
    let codes_map = report_plots::codes_pca(head, cache, rep).and_then(|(points, explained)| {
        let png = out.join("codes-map.png");
        report_plots::codes_map_png(&points, explained, &png)?;
        Ok(Picture::png(std::fs::read(&png)?))
    });
    let legend = cache
        .classes()
        .iter()
        .enumerate()
        .map(|(i, c)| (c.clone(), report_plots::class_colour(i)))
        .collect();
    let mut thumbnails = HashMap::new();
    let mut thumbnail_errors = HashMap::new();
    for m in &rep.misclassified {
        let file = Path::new(&cache.meta.dataset).join(&m.path);
        let thumb = std::fs::read(&file)
            .map_err(anyhow::Error::from)
            .and_then(|b| thumbnail(&b, THUMBNAIL_SIDE));
        match thumb {
            Ok(bytes) => {
                thumbnails.insert(
                    m.path.clone(),
                    Picture {
                        mime: "image/jpeg",
                        bytes,
                    },
                );
            }
            Err(e) => {
                notes.push(format!("no thumbnail for {}: {e:#}", file.display()));
                thumbnail_errors.insert(m.path.clone(), format!("{}: {e:#}", file.display()));
            }
        }
    }
    Ok(Figures {
        confusion: std::fs::read(confusion_png).ok().map(Picture::png),
        cv_curve,
        cv,
        cuts,
        codes_map: codes_map.map_err(|e| format!("{e:#}")),
        legend,
        thumbnails,
        thumbnail_errors,
    })
}
