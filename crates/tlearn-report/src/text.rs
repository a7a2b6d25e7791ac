//! Human-readable tables on stdout and the confusion-matrix PNG (plotters, bitmap backend).

use crate::pipeline::{CvReport, EvalReport};
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::OnceLock;

fn params_str(p: &crate::head::HeadSpec) -> String {
    p.to_string()
}

/// "yes (12 it)" / "NO (1000 it)" / "-" for the CV table's convergence column.
fn conv_cell(c: Option<crate::fit_info::Convergence>) -> String {
    match c {
        Some(c) if c.converged => format!("yes ({})", c.iterations),
        Some(c) => format!("NO ({})", c.iterations),
        None => "-".into(),
    }
}

/// The CV curve as a table, with the chosen row marked.
/// Which training rows the chosen head was fitted on, and why (`--train-views`), in words.
pub fn training_rows_words(cv: &CvReport) -> String {
    let rows = match &cv.view_rows {
        Some(v) => format!(
            "one row per kept view of each training image ({} views: {}; {} rows)",
            v.views.len(),
            v.views.join(", "),
            v.training_rows
        ),
        None => "one averaged row per training image".into(),
    };
    match &cv.view_rows_cv {
        Some(c) => format!(
            "{rows}; --train-views {}: CV {:.4} with averaged rows, {:.4} with view rows (same \
             folds), kept the {}",
            cv.train_views, c.averaged_rows, c.view_rows, c.kept
        ),
        None => format!("{rows} (--train-views {})", cv.train_views),
    }
}

pub fn cv_table(cv: &CvReport) -> String {
    let mut s = String::new();
    // A "rows" column only when some candidate trained on view rows.
    let with_rows = cv.candidates.iter().any(|r| r.view_rows);
    let rows_cell = |v: Option<bool>| match (with_rows, v) {
        (false, _) => String::new(),
        (true, None) => format!(" {:<8}", "rows"),
        (true, Some(true)) => format!(" {:<8}", "views"),
        (true, Some(false)) => format!(" {:<8}", "averaged"),
    };
    let _ = writeln!(
        s,
        "  {:<14}{} {:<11} {:>8} {:>10} {:>17} {:>9}  converged (max iterations)",
        "transform",
        rows_cell(None),
        "head",
        "C",
        "gamma",
        "CV accuracy",
        "time (s)"
    );
    for (i, r) in cv.candidates.iter().enumerate() {
        let gamma = r
            .params
            .gamma()
            .map(|g| format!("{g:.3e}"))
            .unwrap_or_else(|| "-".into());
        let acc = match &r.error {
            None if r.skipped => "skipped".into(),
            None => format!("{:.4} ± {:.4}", r.mean_accuracy, r.std_accuracy),
            Some(_) => "failed".into(),
        };
        let _ = writeln!(
            s,
            "{} {:<14}{} {:<11} {:>8} {:>10} {:>17} {:>9.2}  {}",
            if i == cv.chosen { "*" } else { " " },
            r.transform.to_string(),
            rows_cell(Some(r.view_rows)),
            r.params.kind().name(),
            r.params.c(),
            gamma,
            acc,
            r.seconds,
            conv_cell(r.convergence)
        );
        if let Some(e) = &r.error {
            let _ = writeln!(s, "      error: {e}");
        }
    }
    let c = &cv.candidates[cv.chosen];
    let skipped = cv.candidates.iter().filter(|r| r.skipped).count();
    if skipped > 0 {
        let _ = writeln!(
            s,
            "skipped: {skipped} of {} grid points (a C path stops after {} C values without gain, --c-patience)",
            cv.candidates.len(),
            cv.c_patience
        );
    }
    if !cv.grid_extended.is_empty() {
        let _ = writeln!(
            s,
            "grid extended (first pick at an edge): {}",
            cv.grid_extended.join(", ")
        );
    }
    let _ = writeln!(
        s,
        "chosen: {} on {} (CV accuracy {:.4} ± {:.4}, {} folds); CV {:.2} s, final fit {:.2} s",
        params_str(&c.params),
        cv.chosen_transform_steps,
        c.mean_accuracy,
        c.std_accuracy,
        cv.folds,
        cv.cv_seconds,
        cv.final_fit_seconds
    );
    for n in &cv.grid_edge {
        let _ = writeln!(
            s,
            "note: {n} (the best value may lie beyond; widen --c-grid / --gamma-grid)"
        );
    }
    let _ = writeln!(s, "training rows: {}", training_rows_words(cv));
    let _ = writeln!(s, "final fit: {}", cv.final_fit);
    if cv
        .candidates
        .iter()
        .any(|r| r.convergence.is_some_and(|c| !c.converged))
    {
        let _ = writeln!(
            s,
            "warning: some fits stopped at their iteration limit before converging (column \"converged\")"
        );
    }
    let _ = writeln!(s, "prediction: {}", cv.prediction_rule);
    if let Some(t) = &cv.calibration {
        let _ = writeln!(s, "{}", calibration_line(t));
    }
    s
}

/// One line on the SVM probability calibration, saying so when the fit was degenerate.
pub fn calibration_line(t: &crate::calibrate::Temperature) -> String {
    let mut s = format!(
        "probabilities: softmax({:.4} x decision value), slope from {}",
        t.slope, t.fitted_on
    );
    if let Some(l) = t.log_loss {
        let _ = write!(s, " (log-loss {l:.4})");
    }
    if let Some(d) = &t.degenerate {
        let _ = write!(s, "\nwarning: degenerate calibration: {d}");
    }
    s
}

/// The evaluation report as text.
pub fn eval_text(r: &EvalReport, classes: &[String]) -> String {
    let m = &r.metrics;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "head: {}  transform: {}  CV accuracy {:.4} ± {:.4}",
        params_str(&r.params),
        r.transform,
        r.cv.mean_accuracy,
        r.cv.std_accuracy
    );
    for n in &r.cv.grid_edge {
        let _ = writeln!(s, "note: {n}");
    }
    if let Some(f) = &r.fit {
        let _ = writeln!(s, "solver: {f}");
    }
    let _ = writeln!(s, "prediction: {}", r.prediction_rule);
    if let Some(t) = &r.calibration {
        let _ = writeln!(s, "{}", calibration_line(t));
    }
    let _ = writeln!(s, "evaluated on {} {} rows of {}", m.n, r.rows, r.cache);
    let _ = writeln!(s, "accuracy           {:.4}", m.accuracy);
    let _ = writeln!(s, "balanced accuracy  {:.4}", m.balanced_accuracy);
    let _ = writeln!(s, "macro F1           {:.4}", m.macro_f1);
    for (k, a) in &m.top_k_accuracy {
        let _ = writeln!(s, "top-{k} accuracy     {a:.4}");
    }
    let w = classes.iter().map(|c| c.len()).max().unwrap_or(5).max(5);
    let _ = writeln!(
        s,
        "\n{:<w$}  {:>9} {:>7} {:>7} {:>8}",
        "class", "precision", "recall", "F1", "support"
    );
    for c in &m.per_class {
        let _ = writeln!(
            s,
            "{:<w$}  {:>9.4} {:>7.4} {:>7.4} {:>8}",
            c.class, c.precision, c.recall, c.f1, c.support
        );
    }
    let _ = writeln!(s, "\nconfusion matrix (rows: true, columns: predicted)");
    let cw = m
        .confusion
        .iter()
        .flatten()
        .max()
        .map(|v| v.to_string().len())
        .unwrap_or(1)
        .max(3);
    let _ = write!(s, "{:>4} {:<w$}", "", "");
    for j in 0..classes.len() {
        let _ = write!(s, " {:>cw$}", j);
    }
    let _ = writeln!(s);
    for (i, row) in m.confusion.iter().enumerate() {
        let _ = write!(s, "{:>4} {:<w$}", i, classes[i]);
        for v in row {
            let _ = write!(s, " {:>cw$}", v);
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "\nmisclassified: {}", r.misclassified.len());
    for e in &r.misclassified {
        let _ = writeln!(
            s,
            "  {}  true {}  predicted {} (p={:.3}, p(true)={:.3})",
            e.path, e.truth, e.predicted, e.p_predicted, e.p_truth
        );
    }
    s
}

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

/// Draw the confusion matrix: cells shaded by row-normalised count (recall), counts written in
/// the cells, rows labelled `i: class`, columns by index. Labels use the embedded DejaVu
/// Sans (or `TLEARN_FONT`); should the font fail to load, the picture is drawn without text and
/// `Ok(false)` is returned.
pub fn confusion_png(
    confusion: &[Vec<usize>],
    classes: &[String],
    title: &str,
    path: &Path,
) -> Result<bool> {
    let n = classes.len().max(1);
    let cell = (640 / n).clamp(10, 64) as i32;
    let label_w = 12 + 8 * (classes.iter().map(|c| c.len()).max().unwrap_or(4) + 4) as i32;
    let (left, top) = (label_w.min(320), 64);
    let w = (left + cell * n as i32 + 24) as u32;
    let h = (top + cell * n as i32 + 24) as u32;
    let fonts = font_available();
    let mut buf = png_buffer(w, h);
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let e = |e: DrawingAreaErrorKind<_>| anyhow!("drawing {}: {e:?}", path.display());
        root.fill(&WHITE).map_err(e)?;
        for (i, row) in confusion.iter().enumerate() {
            let total: usize = row.iter().sum();
            for (j, &v) in row.iter().enumerate() {
                let frac = if total > 0 {
                    v as f64 / total as f64
                } else {
                    0.0
                };
                let shade = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * frac) as u8;
                let colour = RGBColor(shade(247, 8), shade(251, 48), shade(255, 107));
                let (x0, y0) = (left + j as i32 * cell, top + i as i32 * cell);
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cell, y0 + cell)],
                    colour.filled(),
                ))
                .map_err(e)?;
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cell, y0 + cell)],
                    RGBColor(200, 200, 200),
                ))
                .map_err(e)?;
                if fonts && cell >= 18 && v > 0 {
                    let fg = if frac > 0.5 { WHITE } else { BLACK };
                    let size = (cell as f64 * 0.4).min(16.0);
                    let style = TextStyle::from(("sans-serif", size).into_font())
                        .color(&fg)
                        .pos(plotters::style::text_anchor::Pos::new(
                            plotters::style::text_anchor::HPos::Center,
                            plotters::style::text_anchor::VPos::Center,
                        ));
                    root.draw_text(&v.to_string(), &style, (x0 + cell / 2, y0 + cell / 2))
                        .map_err(e)?;
                }
            }
        }
        if fonts {
            let small = (cell as f64 * 0.45).clamp(9.0, 14.0);
            let title_style = TextStyle::from(("sans-serif", 16).into_font()).color(&BLACK);
            root.draw_text(title, &title_style, (8, 8)).map_err(e)?;
            let axis = TextStyle::from(("sans-serif", 12).into_font()).color(&BLACK);
            root.draw_text("rows: true class, columns: predicted class", &axis, (8, 30))
                .map_err(e)?;
            let lab = TextStyle::from(("sans-serif", small).into_font()).color(&BLACK);
            for (i, c) in classes.iter().enumerate() {
                let y = top + i as i32 * cell + cell / 2 - small as i32 / 2;
                let mut text = format!("{i}: {c}");
                if text.len() > 38 {
                    text.truncate(37);
                    text.push('…');
                }
                root.draw_text(&text, &lab, (6, y)).map_err(e)?;
                root.draw_text(
                    &i.to_string(),
                    &lab,
                    (
                        left + i as i32 * cell + cell / 2 - 4,
                        top - small as i32 - 4,
                    ),
                )
                .map_err(e)?;
            }
        }
        root.present().map_err(e)?;
    }
    write_png(path, w, h, buf)?;
    Ok(fonts)
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
