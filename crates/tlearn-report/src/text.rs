//! Human-readable tables on stdout: the CV curve of a training run and the held-out
//! evaluation.

use std::fmt::Write as _;
use tlearn_heads::calibrate::Temperature;
use tlearn_heads::evaluate::Misclassified;
use tlearn_heads::fit_info::Convergence;
use tlearn_heads::metrics::Metrics;
use tlearn_heads::train::CvReport;
use tlearn_heads::{EvalReport, HeadSpec};

fn params_str(p: &HeadSpec) -> String {
    p.to_string()
}

/// "yes (12 it)" / "NO (1000 it)" / "-" for the CV table's convergence column.
fn conv_cell(c: Option<Convergence>) -> String {
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

/// How many of the best candidates the short CV table shows (the chosen one is always shown).
pub const SHORT_TABLE_ROWS: usize = 5;

/// The rows of the CV table, in the order shown: every candidate in grid order (`full`), or the
/// [`SHORT_TABLE_ROWS`] best scored ones by CV accuracy, then the chosen one if it is not among
/// them.
fn shown_rows(cv: &CvReport, full: bool) -> Vec<usize> {
    if full {
        return (0..cv.candidates.len()).collect();
    }
    let mut scored: Vec<usize> = (0..cv.candidates.len())
        .filter(|&i| cv.candidates[i].scored())
        .collect();
    scored.sort_by(|&a, &b| {
        cv.candidates[b]
            .mean_accuracy
            .total_cmp(&cv.candidates[a].mean_accuracy)
    });
    scored.truncate(SHORT_TABLE_ROWS);
    if !scored.contains(&cv.chosen) {
        scored.push(cv.chosen);
    }
    scored
}

/// The CV candidates as a table with the chosen row marked: all of them (`full`, the grid in
/// order), or the best few and the chosen one, with a line saying where the rest are.
pub fn cv_table(cv: &CvReport, full: bool) -> String {
    let mut s = String::new();
    let shown = shown_rows(cv, full);
    // A "rows" column only when some candidate trained on view rows.
    let with_rows = cv.candidates.iter().any(|r| r.view_rows);
    let rows_cell = |v: Option<bool>| match (with_rows, v) {
        (false, _) => String::new(),
        (true, None) => format!(" {:<8}", "rows"),
        (true, Some(true)) => format!(" {:<8}", "views"),
        (true, Some(false)) => format!(" {:<8}", "averaged"),
    };
    // One column per hyper-parameter of the families tried (C, gamma, ...), in order of first
    // appearance; "-" where a family has no such parameter.
    let mut columns: Vec<(&'static str, usize)> = Vec::new();
    for r in &cv.candidates {
        for p in r.params.hyper_params() {
            let w = p.shown().len().max(if columns.is_empty() { 8 } else { 10 });
            match columns.iter_mut().find(|c| c.0 == p.name) {
                Some(c) => c.1 = c.1.max(w),
                None => columns.push((p.name, w)),
            }
        }
    }
    let header: String = columns.iter().map(|&(n, w)| format!(" {n:>w$}")).collect();
    let _ = writeln!(
        s,
        "  {:<14}{} {:<11}{header} {:>17} {:>9}  converged (max iterations)",
        "transform",
        rows_cell(None),
        "head",
        "CV accuracy",
        "time (s)"
    );
    for &i in &shown {
        let r = &cv.candidates[i];
        let params = r.params.hyper_params();
        let cells: String = columns
            .iter()
            .map(|&(n, w)| {
                let v = params
                    .iter()
                    .find(|p| p.name == n)
                    .map_or_else(|| "-".to_string(), |p| p.shown());
                format!(" {v:>w$}")
            })
            .collect();
        let acc = match &r.error {
            None if r.skipped => "skipped".into(),
            None => format!("{:.4} ± {:.4}", r.mean_accuracy, r.std_accuracy),
            Some(_) => "failed".into(),
        };
        let seconds = if r.skipped {
            "-".to_string()
        } else {
            crate::fmt_seconds(r.seconds)
        };
        let _ = writeln!(
            s,
            "{} {:<14}{} {:<11}{cells} {:>17} {:>9}  {}",
            if i == cv.chosen { "*" } else { " " },
            r.transform.to_string(),
            rows_cell(Some(r.view_rows)),
            r.params.kind().name(),
            acc,
            seconds,
            conv_cell(r.convergence)
        );
        if let Some(e) = &r.error {
            let _ = writeln!(s, "      error: {e}");
        }
    }
    if shown.len() < cv.candidates.len() {
        let failed = cv.candidates.iter().filter(|r| r.error.is_some()).count();
        let _ = writeln!(
            s,
            "  ({} best of {} candidates{}; all of them: -v, cv.json, report.html)",
            shown.len().min(SHORT_TABLE_ROWS),
            cv.candidates.len(),
            if failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            }
        );
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
            "note: {n} (the best value may lie beyond; widen {})",
            grid_flag(n)
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
pub fn calibration_line(t: &Temperature) -> String {
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

/// The flag that widens the grid a grid-edge note names ("C at top of grid (1000)").
fn grid_flag(note: &str) -> &'static str {
    match note.split_whitespace().next() {
        Some("C") => "--c-grid",
        Some("gamma") => "--gamma-grid",
        Some("hidden") => "--hidden-grid",
        Some("weight_decay") => "--weight-decay-grid",
        _ => "the grid",
    }
}

/// The held-out figures alone (`fit` prints the head's description once, in the training part).
pub fn held_out_text(r: &EvalReport) -> String {
    let m = &r.metrics;
    let mut s = String::new();
    let _ = writeln!(s, "evaluated on {} {} rows of {}", m.n, r.rows, r.cache);
    let _ = writeln!(
        s,
        "accuracy           {:.4} ({}/{}, 95% interval {:.3}-{:.3}); CV estimate {:.4} ± {:.4}",
        m.accuracy,
        m.correct,
        m.n,
        m.accuracy_interval.0,
        m.accuracy_interval.1,
        r.cv.mean_accuracy,
        r.cv.std_accuracy
    );
    let _ = writeln!(s, "balanced accuracy  {:.4}", m.balanced_accuracy);
    let _ = writeln!(s, "macro F1           {:.4}", m.macro_f1);
    for (k, a) in &m.top_k_accuracy {
        // Top-1 is the accuracy above.
        if *k != 1 {
            let _ = writeln!(s, "top-{k} accuracy     {a:.4}");
        }
    }
    s
}

/// The evaluation report as text; `per_class`: with the table of precision, recall and F1 of
/// every class.
pub fn eval_text(r: &EvalReport, classes: &[String], per_class: bool) -> String {
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
    s.push_str(&held_out_text(r));
    if !per_class {
        return s;
    }
    s.push_str(&class_tables(m, &r.misclassified, classes));
    s
}

/// Precision, recall and F1 of every class, the confusion matrix and the misclassified images:
/// the part of a held-out report every head family prints the same way.
pub fn class_tables(m: &Metrics, misclassified: &[Misclassified], classes: &[String]) -> String {
    let mut s = String::new();
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
    let _ = writeln!(s, "\nmisclassified: {}", misclassified.len());
    for e in misclassified {
        let _ = writeln!(
            s,
            "  {}  true {}  predicted {} (p={:.3}, p(true)={:.3})",
            e.path, e.truth, e.predicted, e.p_predicted, e.p_truth
        );
    }
    s
}
