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
