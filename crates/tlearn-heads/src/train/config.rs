//! What a training run is asked to do: [`TrainConfig`] (one feature set's grid search: heads,
//! split, folds, grids, transforms) inside [`CutConfig`] (the selection over feature sets: the
//! screen, the pairs, the finalists).

use crate::head::{auto_heads, Engine, HeadGrids, HeadKind};
use crate::transform::{BlockRule, TransformKind};
use crate::view_rows::TrainViews;

/// The default C grid: log-spaced 10⁻³ … 10³, as scikit-learn users search it.
pub const DEFAULT_C_GRID: [f64; 7] = [0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0];

/// Which head families the grid search tries.
#[derive(Debug, Clone, PartialEq)]
pub enum HeadChoice {
    /// Every family that can be fitted on the training part's size (`head::auto_heads`).
    Auto,
    /// These families, as asked.
    Only(Vec<HeadKind>),
}

impl HeadChoice {
    /// The families to try on `n_train` training rows, and a note for each family `Auto`
    /// leaves out.
    pub fn resolve(&self, n_train: usize) -> (Vec<HeadKind>, Vec<String>) {
        match self {
            HeadChoice::Auto => auto_heads(n_train),
            HeadChoice::Only(k) => (k.clone(), Vec::new()),
        }
    }
}

/// One feature set's grid search: split, folds, the grid of heads × hyper-parameters ×
/// transforms, and the final fit.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub heads: HeadChoice,
    pub seed: u64,
    pub test_size: f64,
    pub folds: usize,
    /// The C values every family with a C tries (sorted and deduplicated before use).
    pub c_grid: Vec<f64>,
    /// Solvers of the families that have two (logistic regression and the RBF SVM): tlearn's
    /// own or linfa's crates.
    pub engine: Engine,
    /// Each family's own grid settings (the RBF SVM's gamma values, the linear SVM's
    /// tolerance, ...).
    pub grids: HeadGrids,
    /// The transforms to cross-validate (each a CV candidate with every head); one entry keeps a
    /// single transform. Default: [`TransformKind::AUTO`].
    pub transforms: Vec<TransformKind>,
    pub pca: Option<usize>,
    /// How many times the grid is extended by one step when CV picks a C or gamma at its edge
    /// (see `grid::extend_at_edge`); 0 keeps the grid as given.
    pub grid_extension: usize,
    /// The early-stopping rule of the C paths (see `cross_validation::cross_validate`): stop a
    /// path after this many C values without improvement; 0 fits every grid point.
    pub c_patience: usize,
    /// Training rows from kept augmentation views (`views.npy`): off, on, or both
    /// cross-validated on the same folds and the better kept (`auto`, a no-op on a cache
    /// without views). See [`crate::view_rows`].
    pub train_views: TrainViews,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            heads: HeadChoice::Auto,
            seed: 42,
            test_size: 0.2,
            folds: 5,
            c_grid: DEFAULT_C_GRID.to_vec(),
            engine: Engine::Tlearn,
            grids: HeadGrids::default(),
            transforms: TransformKind::AUTO.to_vec(),
            pca: None,
            grid_extension: 1,
            c_patience: 2,
            train_views: TrainViews::Auto,
        }
    }
}

/// How the winner is picked among the finalists after their full grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SelectRule {
    /// The best mean CV accuracy (ties: fewer dimensions, then screen rank).
    #[default]
    Best,
    /// The simplest finalist whose CV accuracy is within one standard error of the best one's
    /// (the paired per-fold differences; the same folds for every set): a single cut before a
    /// concatenation, a set holding the bottleneck before one that does not, fewer dimensions,
    /// a linear head before a kernel or dense one.
    OneSe,
}

/// The selection over feature sets (see `cut_selection`), around the full grid of
/// [`TrainConfig`].
#[derive(Debug, Clone)]
pub struct CutConfig {
    /// The full grid, run on the finalists (and alone when there is one candidate).
    pub train: TrainConfig,
    pub screen_heads: Vec<HeadKind>,
    pub screen_c_grid: Vec<f64>,
    /// Pair every two of this many best singles (0: no concatenations).
    pub pair_top: usize,
    /// How many screened sets get the full grid.
    pub finalists: usize,
    /// Train on exactly these cuts (concatenated in this order) instead of selecting:
    /// `--cut stage6+features`.
    pub fixed: Option<Vec<String>>,
    /// How each block of a concatenation is normalised before it is joined (`None`: joined
    /// raw). The same rule at screen, full grid, final fit, and (saved in the head's transform)
    /// at `eval` and `predict`.
    pub block_norm: Option<BlockRule>,
    /// Refuse, before any fit, a search whose logistic regression fits are estimated to take
    /// longer than this many minutes on this machine ([`super::search_cost`]); `None`: no
    /// limit (a long search is still announced).
    pub max_minutes: Option<f64>,
    /// How the finalists' winner is picked.
    pub select: SelectRule,
}

impl Default for CutConfig {
    fn default() -> Self {
        CutConfig::new(TrainConfig::default())
    }
}

impl CutConfig {
    pub fn new(train: TrainConfig) -> CutConfig {
        CutConfig {
            train,
            screen_heads: vec![HeadKind::Logistic],
            screen_c_grid: vec![0.1, 1.0],
            pair_top: 3,
            finalists: 2,
            fixed: None,
            block_norm: Some(BlockRule::SqrtL2),
            max_minutes: Some(60.0),
            select: SelectRule::default(),
        }
    }

    /// The rule in words, for the log and `cv.json`.
    pub fn rule(&self) -> String {
        let heads: Vec<&str> = self.screen_heads.iter().map(|h| h.name()).collect();
        let cs: Vec<String> = self.screen_c_grid.iter().map(|c| c.to_string()).collect();
        format!(
            "screen every cut with {} at C in {{{}}} (5-fold CV on the training part, same \
             split and folds for every cut); {}; the {} best screened sets get the full head \
             grid; {}",
            heads.join(" + "),
            cs.join(", "),
            if self.pair_top >= 2 {
                format!(
                    "concatenate every pair of the {} best cuts (and the best cut of each \
                     backbone when two are given; {}) and screen those",
                    self.pair_top,
                    match self.block_norm {
                        Some(BlockRule::SqrtL2) => {
                            "each block signed-square-rooted and L2-normalised first"
                        }
                        Some(BlockRule::L2) => "each block L2-normalised first",
                        None => "blocks joined raw",
                    }
                )
            } else {
                "no concatenations".into()
            },
            self.finalists.max(1),
            match self.select {
                SelectRule::Best => {
                    "best full-grid CV accuracy wins (ties: fewer dimensions, then screen rank)"
                }
                SelectRule::OneSe => {
                    "the simplest finalist within one standard error (paired folds) of the best \
                     full-grid CV accuracy wins (single cut, bottleneck, fewer dimensions, linear \
                     head)"
                }
            }
        )
    }
}
