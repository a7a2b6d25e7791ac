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

use crate::html::{self, Figures, Picture};
use crate::{confusion, cuts, plots};
use tlearn_heads::train::CvFile;
use tlearn_heads::{EvalReport, Evaluation, FeatureCache, SavedHead};

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

/// Write report.json, confusion.png and report.html for an evaluation into `out`, creating
/// it. The `cv.json` beside the head, when there and readable, adds the CV curve, the CV table
/// and the selection over cuts; when it is unreadable a note says why.
pub fn write(ev: &Evaluation, out: &Path, thumbnail: Thumbnailer) -> Result<EvalOutputs> {
    let (head_path, head, cache, rep) = (&ev.head_path, &ev.head, &ev.cache, &ev.report);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut notes = Vec::new();
    let cv_path = CvFile::beside(head_path);
    let cv = match cv_path.is_file().then(|| CvFile::read(&cv_path)) {
        None => None,
        Some(Ok(cv)) => Some(cv),
        Some(Err(e)) => {
            notes.push(format!("{e:#}; the report shows no CV results"));
            None
        }
    };

    let json = out.join("report.json");
    let mut v = serde_json::to_value(rep)?;
    v["classes"] = serde_json::to_value(head.classes())?;
    v["parts"] = serde_json::to_value(head.parts())?;
    if let Some(c) = cv.as_ref().and_then(|cv| cv.cuts.as_ref()) {
        v["cuts"] = serde_json::to_value(c)?;
    }
    tlearn_cache::write_atomic_bytes(&json, serde_json::to_string_pretty(&v)?.as_bytes())?;

    let confusion = out.join("confusion.png");
    notes.extend(confusion::report_confusion_png(
        &rep.metrics,
        head.classes(),
        &rep.params.kind().to_string(),
        &rep.rows,
        &confusion,
    )?);

    let fig = figures(
        head_path, head, cache, rep, out, cv, &confusion, thumbnail, &mut notes,
    )?;
    let html = out.join("report.html");
    let page = html::render(head, rep, &fig);
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
    cv: Option<CvFile>,
    confusion_png: &Path,
    thumbnail: Thumbnailer,
    notes: &mut Vec<String>,
) -> Result<Figures> {
    let cv_name = CvFile::beside(head_path);
    let cv_curve = match &cv {
        None => Err(format!("{} not found or unreadable", cv_name.display())),
        Some(v) => {
            let png = out.join("cv-curve.png");
            match plots::cv_curve_png(&v.report, &png) {
                Ok(true) => Ok(Picture::png(std::fs::read(&png)?)),
                Ok(false) => Err(format!("{} lists no candidates", cv_name.display())),
                Err(e) => Err(format!("{e:#}")),
            }
        }
    };
    let cuts = match cv.as_ref().and_then(|v| v.cuts.as_ref()) {
        None => None,
        Some(c) => {
            let png = out.join("cv-cuts.png");
            let pic = match cuts::png(c, &png) {
                Ok(true) => Ok(Picture::png(std::fs::read(&png)?)),
                Ok(false) => Err(
                    "one cut only; a cut set (`tlearn extract --layer all`) lets CV compare cuts"
                        .to_string(),
                ),
                Err(e) => Err(format!("{e:#}")),
            };
            let mut table = cuts::html(c);
            if let Some(f) = cv.as_ref().and_then(|v| v.finetune.as_ref()) {
                table.push_str(&format!("<p>{}</p>", html::esc(&cuts::finetune_line(f))));
            }
            Some((table, pic))
        }
    };
    let codes_map = plots::codes_pca(head, cache, rep).and_then(|(points, explained)| {
        let png = out.join("codes-map.png");
        plots::codes_map_png(&points, explained, &png)?;
        Ok(Picture::png(std::fs::read(&png)?))
    });
    let legend = cache
        .classes()
        .iter()
        .enumerate()
        .map(|(i, c)| (c.clone(), plots::class_colour(i)))
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
        cv: cv.map(|c| c.report),
        cuts,
        codes_map: codes_map.map_err(|e| format!("{e:#}")),
        legend,
        thumbnails,
        thumbnail_errors,
    })
}
