//! `report.html`: the held-out evaluation as one self-contained page a person opens in a
//! browser. Every picture is embedded as a base64 `data:` URI (no file beside it is needed):
//! the confusion matrix, the CV curve, the 2-D PCA map of the codes and a thumbnail of every
//! misclassified held-out image. A small inline script records, once the page has loaded, how
//! many images decoded (`data-images-loaded` / `data-images-total` on `<body>`), which the
//! browser test reads.
//!
//! [`render`] is the one function that reads the saved head's fields (params, extractor).

use base64::Engine as _;
use std::collections::HashMap;
use std::fmt::Write as _;
use tlearn_heads::train::CvReport;
use tlearn_heads::{EvalReport, SavedHead};

/// A picture to embed: its MIME type and bytes.
#[derive(Debug, Clone)]
pub struct Picture {
    pub mime: &'static str,
    pub bytes: Vec<u8>,
}

impl Picture {
    pub fn png(bytes: Vec<u8>) -> Picture {
        Picture {
            mime: "image/png",
            bytes,
        }
    }
    fn data_uri(&self) -> String {
        format!(
            "data:{};base64,{}",
            self.mime,
            base64::engine::general_purpose::STANDARD.encode(&self.bytes)
        )
    }
}

/// Everything the page shows besides the report itself.
#[derive(Debug, Clone)]
pub struct Figures {
    pub confusion: Option<Picture>,
    /// The CV curve, or why there is none.
    pub cv_curve: Result<Picture, String>,
    /// `cv.json` as written by `tlearn train` (its candidate table), when found.
    pub cv: Option<CvReport>,
    /// The selection over cuts (`cuts::html` of cv.json's `cuts`) and its bar chart,
    /// when `train` chose among cuts.
    pub cuts: Option<(String, Result<Picture, String>)>,
    /// The 2-D map of the codes, or why there is none.
    pub codes_map: Result<Picture, String>,
    /// The map's legend: class name and colour.
    pub legend: Vec<(String, (u8, u8, u8))>,
    /// Thumbnails of the misclassified images by path (relative to the data set root); a
    /// missing entry is shown as the reason given in `thumbnail_errors`.
    pub thumbnails: HashMap<String, Picture>,
    pub thumbnail_errors: HashMap<String, String>,
}

/// Escape text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'DejaVu Sans',sans-serif;margin:24px;\
color:#1b1b1b;max-width:1200px}h1{font-size:1.5em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}\
.kpi{display:flex;gap:16px;flex-wrap:wrap}.kpi div{background:#f2f6fb;border-radius:8px;padding:10px 16px}\
.kpi b{display:block;font-size:1.6em}table{border-collapse:collapse}td,th{padding:3px 10px;\
border-bottom:1px solid #eee;text-align:right}td:first-child,th:first-child{text-align:left}\
.chosen{background:#fff6d5}.grid{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0;width:180px;\
font-size:.85em}figure img{width:180px;height:180px;object-fit:contain;background:#eee}\
.missing{width:180px;height:180px;background:#fbe9e9;display:flex;align-items:center;\
justify-content:center;text-align:center}.sw{display:inline-block;width:12px;height:12px;\
margin:0 4px 0 12px;border-radius:6px}.note{color:#666}";

const SCRIPT: &str = "window.addEventListener('load',function(){var im=document.images,ok=0;\
for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0)ok++;}\
document.body.setAttribute('data-images-total',im.length);\
document.body.setAttribute('data-images-loaded',ok);});";

fn pct(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

/// The page.
pub fn render(head: &SavedHead, rep: &EvalReport, fig: &Figures) -> String {
    let m = &rep.metrics;
    let ex = head.extractor();
    // HeadSpec's Display: kind, C, gamma, and the engine when it is linfa.
    let params = rep.params.to_string();
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>tlearn report: {params}</title><style>{STYLE}</style></head><body>"
    );
    let _ = write!(
        h,
        "<h1>tlearn evaluation: {}</h1><p>{} cut at <code>{}</code> ({} pooling) · transform {}{} \
         · {} {} images of <code>{}</code></p>",
        esc(&params),
        esc(&ex.backbone),
        esc(&if head.is_concatenation() {
            let names: Vec<String> = head.parts().into_iter().map(|p| p.name).collect();
            names.join(" + ")
        } else {
            ex.layer.clone()
        }),
        esc(&ex.pool.to_string()),
        esc(&rep.transform),
        rep.cv
            .grid_edge
            .iter()
            .map(|n| format!(" · <b>note</b>: {}", esc(n)))
            .collect::<String>(),
        m.n,
        esc(&rep.rows),
        esc(&rep.cache)
    );
    let _ = write!(
        h,
        "<div class=\"kpi\"><div>accuracy<b>{}</b><small>{}/{}, 95% interval {}-{}</small></div>\
         <div>balanced accuracy<b>{}</b></div>\
         <div>macro F1<b>{}</b></div><div>CV accuracy<b>{} ± {}</b></div>",
        pct(m.accuracy),
        m.correct,
        m.n,
        pct(m.accuracy_interval.0),
        pct(m.accuracy_interval.1),
        pct(m.balanced_accuracy),
        pct(m.macro_f1),
        pct(rep.cv.mean_accuracy),
        pct(rep.cv.std_accuracy)
    );
    for (k, a) in &m.top_k_accuracy {
        if *k > 1 {
            let _ = write!(h, "<div>top-{k}<b>{}</b></div>", pct(*a));
        }
    }
    let _ = write!(
        h,
        "<div>misclassified<b>{} / {}</b></div></div>",
        rep.misclassified.len(),
        m.n
    );

    h.push_str("<h2>Per class</h2><table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>");
    for c in &m.per_class {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{}</td></tr>",
            esc(&c.class),
            c.precision,
            c.recall,
            c.f1,
            c.support
        );
    }
    h.push_str("</table>");

    h.push_str("<h2>Confusion matrix</h2>");
    match &fig.confusion {
        Some(p) => {
            let _ = write!(h, "<img alt=\"confusion matrix\" src=\"{}\">", p.data_uri());
        }
        None => h.push_str("<p class=\"note\">not drawn</p>"),
    }

    if let Some((table, pic)) = &fig.cuts {
        h.push_str("<h2>Which cut: cross-validation by cut</h2>");
        match pic {
            Ok(p) => {
                let _ = write!(
                    h,
                    "<img alt=\"CV accuracy by cut\" src=\"{}\">",
                    p.data_uri()
                );
            }
            Err(why) => {
                let _ = write!(h, "<p class=\"note\">no chart: {}</p>", esc(why));
            }
        }
        h.push_str(table);
    }
    h.push_str("<h2>Cross-validation</h2>");
    match &fig.cv_curve {
        Ok(p) => {
            let _ = write!(h, "<img alt=\"CV curve\" src=\"{}\">", p.data_uri());
        }
        Err(why) => {
            let _ = write!(h, "<p class=\"note\">no CV curve: {}</p>", esc(why));
        }
    }
    if let Some(cv) = &fig.cv {
        h.push_str(&cv_table(cv));
    }

    let _ = write!(
        h,
        "<h2>Misclassified held-out images ({})</h2><div class=\"grid\">",
        rep.misclassified.len()
    );
    for e in &rep.misclassified {
        let pic = match fig.thumbnails.get(&e.path) {
            Some(p) => format!("<img alt=\"{}\" src=\"{}\">", esc(&e.path), p.data_uri()),
            None => format!(
                "<div class=\"missing\">{}</div>",
                esc(fig
                    .thumbnail_errors
                    .get(&e.path)
                    .map(|s| s.as_str())
                    .unwrap_or("no thumbnail"))
            ),
        };
        let _ = write!(
            h,
            "<figure>{pic}<figcaption><code>{}</code><br>true <b>{}</b> (p={:.3})<br>\
             predicted <b>{}</b> (p={:.3})</figcaption></figure>",
            esc(&e.path),
            esc(&e.truth),
            e.p_truth,
            esc(&e.predicted),
            e.p_predicted
        );
    }
    h.push_str("</div>");

    h.push_str("<h2>Map of the CNN codes</h2>");
    match &fig.codes_map {
        Ok(p) => {
            let _ = write!(
                h,
                "<p class=\"note\">First two principal components of the codes as the head sees \
                 them (after its transform), fitted on the training rows. Small dots: training \
                 rows; ringed dots: held-out rows; crossed: misclassified.</p>\
                 <img alt=\"PCA map of the codes\" src=\"{}\"><p>",
                p.data_uri()
            );
            for (c, (r, g, b)) in &fig.legend {
                let _ = write!(
                    h,
                    "<span class=\"sw\" style=\"background:rgb({r},{g},{b})\"></span>{}",
                    esc(c)
                );
            }
            h.push_str("</p>");
        }
        Err(why) => {
            let _ = write!(h, "<p class=\"note\">no map: {}</p>", esc(why));
        }
    }
    let _ = write!(
        h,
        "<p class=\"note\">tlearn {} · head format {} v{}</p><script>{SCRIPT}</script></body></html>",
        esc(&head.tlearn_version),
        esc(&head.format),
        head.version
    );
    h
}

/// The CV candidates as an HTML table: head, one column per hyper-parameter of the families
/// tried ("-" where a family has none), CV accuracy, time; the chosen row marked.
fn cv_table(cv: &CvReport) -> String {
    let mut columns: Vec<&'static str> = Vec::new();
    for c in &cv.candidates {
        for p in c.params.hyper_params() {
            if !columns.contains(&p.name) {
                columns.push(p.name);
            }
        }
    }
    let mut h = String::from("<table><tr><th>head</th>");
    for n in &columns {
        let _ = write!(h, "<th>{}</th>", esc(n));
    }
    h.push_str("<th>CV accuracy</th><th>time (s)</th></tr>");
    for (i, c) in cv.candidates.iter().enumerate() {
        let (acc, seconds) = match &c.error {
            Some(e) => (format!("failed: {}", esc(e)), crate::fmt_seconds(c.seconds)),
            None if c.skipped => (
                "skipped (no gain at smaller C)".to_string(),
                "-".to_string(),
            ),
            None => (
                format!("{:.4} ± {:.4}", c.mean_accuracy, c.std_accuracy),
                crate::fmt_seconds(c.seconds),
            ),
        };
        let params = c.params.hyper_params();
        let cells: String = columns
            .iter()
            .map(|&n| {
                let v = params
                    .iter()
                    .find(|p| p.name == n)
                    .map_or_else(|| "-".to_string(), |p| p.shown());
                format!("<td>{}</td>", esc(&v))
            })
            .collect();
        let _ = write!(
            h,
            "<tr{}><td>{}</td>{cells}<td>{acc}</td><td>{seconds}</td></tr>",
            if i == cv.chosen {
                " class=\"chosen\""
            } else {
                ""
            },
            esc(c.params.kind().name()),
        );
    }
    h.push_str("</table>");
    h
}
