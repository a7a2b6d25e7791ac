//! The two pictures of the HTML report besides the confusion matrix (plotters, bitmap
//! backend): the CV curve (accuracy vs C, one line per head kind and gamma) and a 2-D PCA map
//! of the CNN codes coloured by class with the held-out points marked.
//!
//! The map uses linfa-reduction's PCA on the codes as the head sees them (after its feature
//! transform), fitted on the training rows. t-SNE/UMAP are not drawn: linfa-tsne (bhtsne) was
//! the only maintained Rust candidate and a PCA map needs no extra dependency.

use crate::canvas::{font_available, png_buffer, write_png};
use anyhow::{anyhow, Result};
use linfa::traits::{Fit, Predict};
use linfa::DatasetBase;
use linfa_reduction::Pca;
use ndarray::Axis;
use plotters::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use tlearn_heads::train::CvReport;
use tlearn_heads::{EvalReport, FeatureCache, SavedHead};

/// Colour of class `i` (shared by the map and the HTML legend).
pub fn class_colour(i: usize) -> (u8, u8, u8) {
    let c = Palette99::pick(i).to_rgba();
    (c.0, c.1, c.2)
}

/// Draw `cv.json`'s candidates (as written by `tlearn train`): mean CV accuracy against the
/// first hyper-parameter (C) on a log axis, one line per head family and value of its other
/// hyper-parameters (per gamma for the RBF SVM), the chosen candidate circled; only the chosen
/// transform's candidates. `Ok(false)` when the report lists nothing to draw.
pub fn cv_curve_png(cv: &CvReport, path: &Path) -> Result<bool> {
    // series label -> [(C, accuracy)]
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut best = None;
    let mut x_name = "C";
    // With several transforms cross-validated, the curves of the chosen one (the table in
    // cv.json has them all).
    for (i, c) in cv.candidates.iter().enumerate() {
        let params = c.params.hyper_params();
        let Some(first) = params.first() else {
            continue;
        };
        if c.transform != cv.chosen_transform
            || c.error.is_some()
            || !c.mean_accuracy.is_finite()
            || first.value <= 0.0
        {
            continue;
        }
        let label: String = std::iter::once(c.params.kind().name().to_string())
            .chain(
                params[1..]
                    .iter()
                    .map(|p| format!("{}={}", p.name, p.shown())),
            )
            .collect::<Vec<_>>()
            .join(" ");
        series
            .entry(label)
            .or_default()
            .push((first.value, c.mean_accuracy));
        if i == cv.chosen {
            best = Some((first.value, c.mean_accuracy));
            x_name = first.name;
        }
    }
    if series.is_empty() {
        return Ok(false);
    }
    let pts = series.values().flatten();
    let cmin = pts.clone().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let cmax = pts.clone().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let amin = pts.map(|p| p.1).fold(f64::INFINITY, f64::min);
    let fonts = font_available();
    let mut buf = png_buffer(720, 420);
    {
        let root = BitMapBackend::with_buffer(&mut buf, (720, 420)).into_drawing_area();
        let e = |e: DrawingAreaErrorKind<_>| anyhow!("drawing {}: {e:?}", path.display());
        root.fill(&WHITE).map_err(e)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .caption(
                if fonts {
                    format!("cross-validation accuracy vs {x_name}")
                } else {
                    String::new()
                },
                ("sans-serif", 18),
            )
            .x_label_area_size(if fonts { 36 } else { 4 })
            .y_label_area_size(if fonts { 52 } else { 4 })
            .build_cartesian_2d(
                (cmin / 2.0..cmax * 2.0).log_scale(),
                (amin - 0.05).max(0.0)..1.0f64,
            )
            .map_err(e)?;
        if fonts {
            chart
                .configure_mesh()
                .x_desc(format!("{x_name} (log scale)"))
                .y_desc("mean CV accuracy")
                .draw()
                .map_err(e)?;
        }
        for (i, (label, mut pts)) in series.into_iter().enumerate() {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let colour = Palette99::pick(i).to_rgba();
            let s = chart
                .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
                .map_err(e)?;
            if fonts {
                s.label(label).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                });
            }
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(e)?;
        }
        if let Some(b) = best {
            chart
                .draw_series(std::iter::once(Circle::new(b, 9, BLACK.stroke_width(2))))
                .map_err(e)?;
        }
        if fonts {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(e)?;
        }
        root.present().map_err(e)?;
    }
    write_png(path, 720, 420, buf)?;
    Ok(true)
}

/// At most about this many training rows are drawn (and fitted) on the map.
pub const MAP_MAX_TRAINING_ROWS: usize = 4000;

/// One cache row on the 2-D map.
#[derive(Debug, Clone)]
pub struct MapPoint {
    pub x: f64,
    pub y: f64,
    /// Index into the cache's classes.
    pub class: usize,
    pub held_out: bool,
    pub misclassified: bool,
}

/// Project the cache rows' transformed codes onto the first two principal components of the
/// training rows (all rows when the report covers the whole cache); above
/// [`MAP_MAX_TRAINING_ROWS`] training rows an even stride of them is used. Returns the points and the
/// share of the variance each component explains.
pub fn codes_pca(
    head: &SavedHead,
    cache: &FeatureCache,
    rep: &EvalReport,
) -> Result<(Vec<MapPoint>, [f64; 2])> {
    let all = rep.rows == "all";
    let held: HashSet<&str> = head.split.held_out.iter().map(|s| s.as_str()).collect();
    let wrong: HashSet<&str> = rep.misclassified.iter().map(|m| m.path.as_str()).collect();
    let is_held = |p: &str| all || held.contains(p);
    // Large caches: every held-out row, and an even stride of the training rows, so the map
    // stays readable and its memory bounded.
    // (With --all every row is "held out" and all of them are thinned.)
    let thinned = |i: usize| all || !is_held(&cache.paths[i]);
    let n_thinned = (0..cache.rows()).filter(|&i| thinned(i)).count();
    let stride = n_thinned.div_ceil(MAP_MAX_TRAINING_ROWS).max(1);
    let mut seen = 0usize;
    let rows: Vec<usize> = (0..cache.rows())
        .filter(|&i| {
            if !thinned(i) {
                return true;
            }
            seen += 1;
            (seen - 1).is_multiple_of(stride)
        })
        .collect();
    let z = head
        .transform
        .apply(cache.x.select(Axis(0), &rows).view())?
        .mapv(|v| v as f64);
    let fit_rows: Vec<usize> = (0..rows.len())
        .filter(|&j| all || !is_held(&cache.paths[rows[j]]))
        .collect();
    if fit_rows.len() < 3 || z.ncols() < 2 {
        return Err(anyhow!(
            "a 2-D map needs at least 3 rows and 2 dimensions ({} rows, {} dims)",
            fit_rows.len(),
            z.ncols()
        ));
    }
    if z.iter().any(|v| !v.is_finite()) {
        return Err(anyhow!(
            "the transformed codes contain NaN or infinite values"
        ));
    }
    // Columns constant over the fitting rows carry no variance; linfa's truncated SVD (LOBPCG)
    // met NaN on such rank-deficient input (raw-pixel codes: always-black pixels), so drop them.
    let z_fit = z.select(Axis(0), &fit_rows);
    let live: Vec<usize> = (0..z.ncols())
        .filter(|&c| {
            let col = z_fit.column(c);
            let first = col[0];
            col.iter().any(|&v| v != first)
        })
        .collect();
    if live.len() < 2 {
        return Err(anyhow!(
            "a 2-D map needs at least 2 varying dimensions ({} vary)",
            live.len()
        ));
    }
    let z = z.select(Axis(1), &live);
    let train = DatasetBase::from(z_fit.select(Axis(1), &live));
    // The map is optional: should the eigensolver still panic, that is an error, not a crash,
    // and its panic message is not printed.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let fitted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Pca::params(2).fit(&train).map(|pca| {
            let proj = pca.predict(&z);
            (pca, proj)
        })
    }));
    std::panic::set_hook(hook);
    let fitted =
        fitted.map_err(|_| anyhow!("PCA of the codes failed (the eigensolver met NaN values)"))?;
    let (pca, proj) = fitted.map_err(|e| anyhow!("PCA of the codes failed: {e}"))?;
    let centred = &train.records - pca.mean();
    let total: f64 = centred
        .iter()
        .map(|v| v * v)
        .sum::<f64>()
        .max(f64::MIN_POSITIVE);
    let tp = centred.dot(&pca.components().t());
    let ratio = |k: usize| tp.column(k).iter().map(|v| v * v).sum::<f64>() / total;
    let points = rows
        .iter()
        .enumerate()
        .map(|(j, &i)| MapPoint {
            x: proj[[j, 0]],
            y: proj[[j, 1]],
            class: cache.y[i],
            held_out: is_held(&cache.paths[i]),
            misclassified: wrong.contains(cache.paths[i].as_str()),
        })
        .collect();
    Ok((points, [ratio(0), ratio(1)]))
}

/// Draw the map: training rows as small translucent dots, held-out rows as larger dots with a
/// black ring, misclassified held-out rows with a black cross on top.
pub fn codes_map_png(points: &[MapPoint], explained: [f64; 2], path: &Path) -> Result<()> {
    let (xmin, xmax) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.x), b.max(p.x))
        });
    let (ymin, ymax) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.y), b.max(p.y))
        });
    let pad = |a: f64, b: f64| ((b - a).abs() * 0.05).max(1e-6);
    let fonts = font_available();
    let mut buf = png_buffer(640, 560);
    {
        let root = BitMapBackend::with_buffer(&mut buf, (640, 560)).into_drawing_area();
        let e = |e: DrawingAreaErrorKind<_>| anyhow!("drawing {}: {e:?}", path.display());
        root.fill(&WHITE).map_err(e)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(if fonts { 36 } else { 4 })
            .y_label_area_size(if fonts { 52 } else { 4 })
            .build_cartesian_2d(
                xmin - pad(xmin, xmax)..xmax + pad(xmin, xmax),
                ymin - pad(ymin, ymax)..ymax + pad(ymin, ymax),
            )
            .map_err(e)?;
        if fonts {
            chart
                .configure_mesh()
                .x_desc(format!("PC 1 ({:.0}% of variance)", 100.0 * explained[0]))
                .y_desc(format!("PC 2 ({:.0}% of variance)", 100.0 * explained[1]))
                .draw()
                .map_err(e)?;
        }
        let colour = |c: usize| {
            let (r, g, b) = class_colour(c);
            RGBColor(r, g, b)
        };
        chart
            .draw_series(
                points
                    .iter()
                    .filter(|p| !p.held_out)
                    .map(|p| Circle::new((p.x, p.y), 3, colour(p.class).mix(0.55).filled())),
            )
            .map_err(e)?;
        for p in points.iter().filter(|p| p.held_out) {
            chart
                .draw_series([
                    Circle::new((p.x, p.y), 6, colour(p.class).filled()),
                    Circle::new((p.x, p.y), 6, BLACK.stroke_width(1)),
                ])
                .map_err(e)?;
            if p.misclassified {
                chart
                    .draw_series([Cross::new((p.x, p.y), 5, BLACK.stroke_width(2))])
                    .map_err(e)?;
            }
        }
        root.present().map_err(e)?;
    }
    write_png(path, 640, 560, buf)?;
    Ok(())
}
