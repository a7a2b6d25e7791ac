//! The selection over cuts as the reports show it: a text table (train's output), an HTML
//! table and a bar chart (PNG, plotters) of CV accuracy by cut. All read `cv.json`'s `cuts`
//! ([`CutSelection`]), so `train`, `eval` and `report.html` show the same figures.

use crate::canvas::{font_available, png_buffer, write_png};
use crate::html::esc;
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;
use tlearn_heads::train::{CutSelection, FinetuneContest, Score};

/// One row: name, dim, screen (mean, std), full (mean, std), the head the best grid picked,
/// why it was not screened.
struct Row {
    name: String,
    dim: u64,
    screen: Option<(f64, f64)>,
    full: Option<(f64, f64)>,
    head: String,
    note: Option<String>,
}

fn rows(cuts: &CutSelection) -> Vec<Row> {
    let score = |s: &Option<Score>| s.as_ref().map(|s| (s.mean_accuracy, s.std_accuracy));
    cuts.sets
        .iter()
        .map(|s| Row {
            name: s.name.clone(),
            dim: s.dim as u64,
            screen: score(&s.screen),
            full: score(&s.full),
            head: s
                .full
                .as_ref()
                .or(s.screen.as_ref())
                .map(|s| s.head.clone())
                .unwrap_or_default(),
            note: s
                .same_codes_as
                .as_ref()
                .map(|d| format!("same codes as {d}")),
        })
        .collect()
}

fn cell(s: Option<(f64, f64)>) -> String {
    s.map(|(m, sd)| format!("{m:.4} ± {sd:.4}"))
        .unwrap_or_else(|| "-".into())
}

/// The table `train` prints: CV accuracy by feature set (screen and full grid), the chosen one
/// marked, then the rule and the scenario.
/// All sets in the selection's order (`full`), or the [`crate::text::SHORT_TABLE_ROWS`] best
/// by their best CV score (full grid, else screen) and the chosen one, best first.
pub fn text(cuts: &CutSelection, full: bool) -> String {
    let mut s = String::new();
    let chosen = cuts.chosen.as_str();
    let all = rows(cuts);
    let total = all.len();
    let rows: Vec<Row> = if full {
        all
    } else {
        let best = |r: &Row| r.full.or(r.screen).map_or(f64::NEG_INFINITY, |x| x.0);
        let mut ranked: Vec<Row> = all;
        ranked.sort_by(|a, b| best(b).total_cmp(&best(a)));
        let mut kept: Vec<Row> = Vec::new();
        for r in ranked {
            if kept.len() < crate::text::SHORT_TABLE_ROWS || r.name == chosen {
                kept.push(r);
            }
        }
        kept
    };
    let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let _ = writeln!(
        s,
        "  {:<w$} {:>6} {:>17} {:>17}  best head",
        "cut", "dim", "screen CV", "full-grid CV"
    );
    for r in &rows {
        let _ = writeln!(
            s,
            "{} {:<w$} {:>6} {:>17} {:>17}  {}",
            if r.name == chosen { "*" } else { " " },
            r.name,
            r.dim,
            r.note.clone().unwrap_or_else(|| cell(r.screen)),
            cell(r.full),
            r.head
        );
    }
    if rows.len() < total {
        let _ = writeln!(
            s,
            "  ({} best of {total} feature sets; all of them: -v, cv.json, report.html)",
            rows.len().min(crate::text::SHORT_TABLE_ROWS)
        );
    }
    let _ = writeln!(s, "chosen cut: {chosen} (selection {:.1} s)", cuts.seconds);
    let _ = writeln!(s, "rule: {}", cuts.rule);
    let _ = writeln!(s, "scenario: {}", cuts.scenario.text);
    s
}

/// The fine-tuning candidate's line (cv.json's `finetune`): its CV against the frozen head's on
/// the same folds, and which was kept.
pub fn finetune_line(f: &FinetuneContest) -> String {
    format!(
        "fine-tuning {} after '{}': CV {:.4}, paired difference with the frozen head {:+.4} ± \
         {:.4} over {} folds ({:.0} s): {} ({})",
        f.backbone,
        f.cut,
        f.mean_accuracy,
        f.difference,
        f.standard_error,
        f.fold_accuracy.len(),
        f.seconds,
        if f.chosen {
            "the fine-tuned network was kept"
        } else {
            "the frozen head was kept"
        },
        f.rule
    )
}

/// The same table as HTML (for `report.html`).
pub fn html(cuts: &CutSelection) -> String {
    let mut h = String::new();
    let chosen = cuts.chosen.as_str();
    let _ = write!(h, "<p><b>Scenario:</b> {}</p>", esc(&cuts.scenario.text));
    h.push_str(
        "<table><tr><th>cut</th><th>dim</th><th>screen CV</th><th>full-grid CV</th>\
         <th>best head</th></tr>",
    );
    for r in rows(cuts) {
        let _ = write!(
            h,
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if r.name == chosen {
                " class=\"chosen\""
            } else {
                ""
            },
            esc(&r.name),
            r.dim,
            esc(&r.note.unwrap_or_else(|| cell(r.screen))),
            cell(r.full),
            esc(&r.head)
        );
    }
    h.push_str("</table>");
    let _ = write!(h, "<p class=\"note\">Rule: {}</p>", esc(&cuts.rule));
    h
}

/// Bar chart of CV accuracy by feature set: the screen score of each (grey), the full-grid
/// score of the finalists (blue), each with a whisker of ± one standard deviation over the folds
/// (so a reader sees which differences are within noise), the chosen set's bar outlined. `Ok(false)` when there is
/// nothing to compare (fewer than two cross-validated sets).
pub fn png(cuts: &CutSelection, path: &Path) -> Result<bool> {
    let rows: Vec<Row> = rows(cuts)
        .into_iter()
        .filter(|r| r.screen.is_some() || r.full.is_some())
        .collect();
    // One feature set (a plain cache) has no comparison to draw.
    if rows.len() < 2 {
        return Ok(false);
    }
    let chosen = cuts.chosen.as_str();
    let accs = rows
        .iter()
        .flat_map(|r| [r.screen, r.full])
        .flatten()
        .map(|s| s.0 - s.1);
    let amin = accs.clone().fold(f64::INFINITY, f64::min);
    let lo = ((amin - 0.05).max(0.0) * 20.0).floor() / 20.0;
    let fonts = font_available();
    let (w, h) = (760u32, 120 + 34 * rows.len() as u32);
    let mut buf = png_buffer(w, h);
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let e = |e: DrawingAreaErrorKind<_>| anyhow!("drawing {}: {e:?}", path.display());
        root.fill(&WHITE).map_err(e)?;
        let n = rows.len();
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .caption(
                if fonts {
                    "CV accuracy by cut (grey: screen, blue: full grid; whiskers: ± 1 SD over folds)"
                } else {
                    ""
                },
                ("sans-serif", 17),
            )
            .x_label_area_size(if fonts { 36 } else { 4 })
            .y_label_area_size(if fonts { 190 } else { 4 })
            .build_cartesian_2d(lo..1.0f64, 0f64..n as f64)
            .map_err(e)?;
        if fonts {
            let names: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(n * 2 + 1)
                .y_label_formatter(&|y| {
                    let i = (n as f64 - *y - 0.5).round();
                    if (n as f64 - *y - 0.5 - i).abs() < 0.01 && i >= 0.0 && (i as usize) < n {
                        names[i as usize].clone()
                    } else {
                        String::new()
                    }
                })
                .x_desc("mean CV accuracy (training part only)")
                .draw()
                .map_err(e)?;
        }
        let grey = RGBColor(170, 170, 170);
        let blue = RGBColor(40, 100, 200);
        // A whisker from mean - sd to mean + sd (inside the axis) at height y, with end ticks.
        let whisker = |(m, sd): (f64, f64), y: f64| {
            let (a, b) = ((m - sd).max(lo), (m + sd).min(1.0));
            [
                vec![(a, y), (b, y)],
                vec![(a, y - 0.1), (a, y + 0.1)],
                vec![(b, y - 0.1), (b, y + 0.1)],
            ]
            .into_iter()
            .map(|p| PathElement::new(p, BLACK.stroke_width(1)))
        };
        for (i, r) in rows.iter().enumerate() {
            let top = (n - i) as f64 - 0.1;
            if let Some((m, sd)) = r.screen {
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(lo, top - 0.4), (m, top)],
                        grey.filled(),
                    )))
                    .map_err(e)?;
                chart.draw_series(whisker((m, sd), top - 0.2)).map_err(e)?;
            }
            if let Some((m, sd)) = r.full {
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(lo, top - 0.8), (m, top - 0.4)],
                        blue.filled(),
                    )))
                    .map_err(e)?;
                chart.draw_series(whisker((m, sd), top - 0.6)).map_err(e)?;
            }
            if r.name == chosen {
                let m = r.full.or(r.screen).map(|s| s.0).unwrap_or(lo);
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(lo, top - 0.85), (m, top + 0.05)],
                        BLACK.stroke_width(2),
                    )))
                    .map_err(e)?;
            }
        }
        root.present().map_err(e)?;
    }
    write_png(path, w, h, buf)?;
    Ok(true)
}
