//! The `report.html` that `tlearn eval` writes beside report.json: gathers the pictures
//! (confusion matrix, CV curve from the head's cv.json, PCA map of the codes, thumbnails of the
//! misclassified images read from the data set the cache records) and hands them to
//! `tlearn_heads::report_html`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use tlearn_heads::pipeline::EvalReport;
use tlearn_heads::report_html::{self, Figures, Picture};
use tlearn_heads::{report_cuts, report_plots};
use tlearn_heads::{FeatureCache, SavedHead};

const THUMB: u32 = 180;

/// `cv.json`'s `cuts` object beside the head (the selection over cuts), if there is one.
pub fn cut_selection(head_path: &Path) -> Option<serde_json::Value> {
    let cv_path = head_path.parent().unwrap_or(Path::new(".")).join("cv.json");
    std::fs::read_to_string(cv_path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("cuts").cloned())
}

pub fn write(
    head_path: &Path,
    head: &SavedHead,
    cache: &FeatureCache,
    rep: &EvalReport,
    out: &Path,
    confusion_png: &Path,
) -> Result<PathBuf> {
    let cv_path = head_path.parent().unwrap_or(Path::new(".")).join("cv.json");
    let cv: Option<serde_json::Value> = std::fs::read_to_string(&cv_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let cv_curve = match &cv {
        None => Err(format!("{} not found", cv_path.display())),
        Some(v) => {
            let png = out.join("cv-curve.png");
            match report_plots::cv_curve_png(v, &png) {
                Ok(true) => Ok(Picture::png(std::fs::read(&png)?)),
                Ok(false) => Err(format!("{} lists no candidates", cv_path.display())),
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
            .and_then(|b| tlearn_extract::thumbnail::thumbnail_jpeg(&b, THUMB));
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
                eprintln!("note: no thumbnail for {}: {e:#}", file.display());
                thumbnail_errors.insert(m.path.clone(), format!("{}: {e:#}", file.display()));
            }
        }
    }
    let fig = Figures {
        confusion: std::fs::read(confusion_png).ok().map(Picture::png),
        cv_curve,
        cv,
        cuts,
        codes_map: codes_map.map_err(|e| format!("{e:#}")),
        legend,
        thumbnails,
        thumbnail_errors,
    };
    let html = report_html::render(head, rep, &fig);
    let path = out.join("report.html");
    tlearn_cache::write_atomic_bytes(&path, html.as_bytes())?;
    Ok(path)
}
