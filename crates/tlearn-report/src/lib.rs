//! tlearn's reports: what `train` and `eval` print (text tables), the pictures they draw
//! (plotters, bitmap backend, an embedded DejaVu font) and the self-contained `report.html`.
//! Everything here reads the heads crate's results (the typed `cv.json`, the evaluation) and
//! writes files; nothing here trains or predicts.

pub mod canvas;
pub mod confusion;
pub mod cuts;
pub mod eval_files;
pub mod html;
pub mod plots;
pub mod text;
pub mod train_files;

pub use confusion::confusion_png;
pub use text::{cv_table, eval_text, held_out_text};

/// A grid point's time: two decimals, or milliseconds when it took less than 0.01 s (the small
/// fits of a few hundred rows), so that no real time reads as zero.
pub fn fmt_seconds(s: f64) -> String {
    if s >= 0.01 {
        format!("{s:.2}")
    } else {
        format!("{:.1} ms", s * 1e3)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_times_are_not_shown_as_zero() {
        assert_eq!(super::fmt_seconds(1.234), "1.23");
        assert_eq!(super::fmt_seconds(0.0042), "4.2 ms");
        assert_eq!(super::fmt_seconds(0.01), "0.01");
    }
}
