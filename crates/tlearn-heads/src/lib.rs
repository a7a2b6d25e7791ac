//! Heads on cached CNN codes: seeded stratified splits grouped by content hash, k-fold CV model
//! selection over head families × hyper-parameters × feature transforms, one prediction rule
//! (the decision-value argmax CV scores) with calibrated probabilities, held-out evaluation and
//! a saved one-file model.
//!
//! - [`head`]: the plug-in interface of a head family ([`head::HeadFamily`]) and the list of
//!   families; [`families`]: one module per family (linear SVM, logistic regression, RBF SVM).
//! - [`train`]: training, top-down: the [`Training`] object, the selection over feature sets
//!   (cuts, concatenations, a second backbone's codes), one feature set's grid search, the
//!   folds; `cv.json` as types ([`train::CvFile`]).
//! - [`evaluate`]: held-out evaluation ([`Evaluation`]); [`model_file`]: `head.json`.
//!
//! Input is a feature cache (format v1, see `cache`); the crate never touches images or
//! backbones. The reports (text tables, HTML, pictures) are the `tlearn-report` crate's.

pub mod cache;
pub mod calibrate;
pub mod error;
pub mod evaluate;
pub mod families;
pub mod fit_info;
pub mod head;
pub mod metrics;
pub mod model_file;
pub mod split;
pub mod train;
pub mod transform;
pub mod view_rows;

pub use cache::FeatureCache;
pub use error::HeadError;
pub use evaluate::{evaluate, EvalReport, Evaluation};
pub use fit_info::Convergence;
pub use head::{Engine, Head, HeadGrids, HeadKind, HeadSpec};
pub use model_file::SavedHead;
pub use train::{train, CutConfig, HeadChoice, TrainConfig, TrainOutcome, Training};
pub use transform::Scaling;
