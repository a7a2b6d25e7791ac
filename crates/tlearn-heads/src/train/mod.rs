//! Training, top-down. Each level calls only the one below it:
//!
//! 1. [`training`]: the run as one object: caches in ([`Training`]), the head and its typed
//!    `cv.json` out ([`TrainOutcome`], [`TrainOutcome::write`]);
//! 2. [`cut_selection`]: which feature set (a cut, a concatenation of two, a second backbone's
//!    codes) the head is trained on, by a cheap screen and the full grid on the finalists;
//!    [`inputs`] loads and checks the caches, [`scenario`] says what the choice points to;
//! 3. [`feature_set`]: one feature set's split, folds, grid of candidates and final fit;
//! 4. [`row_modes`]: the grid cross-validated on averaged rows, view rows or both, extended
//!    at an edge pick;
//! 5. [`cross_validation`]: the folds, each family fitted through its `head::HeadFamily`;
//!    [`grid`] holds the grid's rules (its points, early stopping, extension at an edge, the
//!    choice).
//!
//! [`config`] holds what a run is asked to do, [`cv_file`] the format of `cv.json`.

pub mod config;
pub mod cross_validation;
pub mod cut_selection;
pub mod cv_file;
pub mod feature_set;
pub mod grid;
pub mod inputs;
pub mod row_modes;
pub mod scenario;
pub mod search_cost;
pub mod training;

pub use config::{CutConfig, HeadChoice, SelectRule, TrainConfig, DEFAULT_C_GRID};
pub use cross_validation::argmax;
pub use cut_selection::Event;
pub use cv_file::{
    CutSelection, CvFile, CvReport, CvResult, FeatureSet, FinetuneContest, Scenario, Score,
    SplitExport,
};
pub use feature_set::{train, FeatureSetOutcome};
pub use inputs::{CutInput, CutsError};
pub use training::{TrainFiles, TrainOutcome, Training, HEAD_FILE};
