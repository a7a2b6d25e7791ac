//! Classical heads on cached CNN codes: seeded stratified splits grouped by content hash,
//! k-fold CV model selection over linear SVM / logistic regression / RBF SVM, one prediction
//! rule (the decision-value argmax CV scores) with calibrated probabilities, held-out evaluation reports and a saved one-file model.
//!
//! Above the per-cache CV, `cuts` chooses among several cuts (and concatenations, and a second
//! backbone's codes) of the same images by the same CV.
//!
//! Input is a feature cache (format v1, see `cache`); the crate never touches images or
//! backbones.

pub mod cache;
pub mod calibrate;
pub mod cuts;
pub mod error;
pub mod eval_report;
pub mod fit_info;
pub mod head;
pub mod kernel_svm;
pub mod linear_svm;
pub mod linfa_engine;
pub mod logistic;
pub mod metrics;
pub mod model_file;
pub mod pipeline;
pub mod report;
pub mod report_cuts;
pub mod report_html;
pub mod report_plots;
pub mod search_cost;
pub mod select;
pub mod split;
pub mod transform;
pub mod view_rows;

pub use cache::FeatureCache;
pub use error::HeadError;
pub use fit_info::Convergence;
pub use head::{Engine, Head, HeadKind, HeadSpec};
pub use model_file::SavedHead;
pub use pipeline::{evaluate, train, EvalReport, TrainConfig, TrainOutcome};
pub use transform::Scaling;
