//! The confusion-matrix picture (plotters, bitmap backend).

use crate::canvas::{font_available, png_buffer, write_png};
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;
use tlearn_heads::metrics::Metrics;

/// The held-out report's `confusion.png` for a head of family `kind` scored on `rows` ("held-out"
/// or "all") rows; `Some(note)` when it was drawn without labels (no font).
pub fn report_confusion_png(
    m: &Metrics,
    classes: &[String],
    kind: &str,
    rows: &str,
    path: &Path,
) -> Result<Option<String>> {
    let title = format!(
        "{kind} — accuracy {:.2}% on {} {rows} images",
        100.0 * m.accuracy,
        m.n
    );
    Ok(
        (!confusion_png(&m.confusion, classes, &title, path)?).then(|| {
            format!(
                "no TrueType font found (set TLEARN_FONT=/path/to/font.ttf); {} has no labels",
                path.display()
            )
        }),
    )
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
