//! `register_heads!`, which turns the list of head families (one line each, in
//! `families/mod.rs`) into the module declarations and the enums the rest of the crate uses to
//! reach them: [`HeadKind`], [`HeadSpec`], [`Head`], [`HeadGrids`] and [`FoldStates`], each
//! dispatching to the family's [`HeadFamily`] implementation.
//!
//! A line reads `Variant(module) = "name": Family`: the family's module under `families/`
//! (declared by the line), the unit struct in it implementing [`HeadFamily`], its name
//! everywhere (`--head`, `head.json`'s `kind`, reports) and its entry in [`HeadGrids`] (named as
//! the module). The order of the list is the order `--head auto` cross-validates the families
//! in and breaks CV ties by: simplest first.
//!
//! [`HeadKind`]: crate::head::HeadKind
//! [`HeadSpec`]: crate::head::HeadSpec
//! [`Head`]: crate::head::Head
//! [`HeadGrids`]: crate::head::HeadGrids
//! [`FoldStates`]: crate::head::FoldStates
//! [`HeadFamily`]: crate::head::HeadFamily

use crate::head::HeadKind;

macro_rules! register_heads {
    ($($variant:ident($field:ident) = $name:literal: $family:ident),+ $(,)?) => {
        $(pub mod $field;)+

        use $crate::error::HeadError;
        use $crate::fit_info::Convergence;
        use $crate::head::{Fold, GridData, HeadFamily, HyperParam, Layer, RowLimit, SharedGrid};
        use ndarray::{Array2, ArrayView2};
        use serde::{Deserialize, Serialize};
        use std::path::Path;

        /// A head family, by name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum HeadKind {
            $(#[serde(rename = $name)] $variant,)+
        }

        impl HeadKind {
            /// Every family, simplest first (the registration order).
            pub const ALL: &'static [HeadKind] = &[$(HeadKind::$variant),+];

            pub fn name(&self) -> &'static str {
                match self {
                    $(HeadKind::$variant => $name,)+
                }
            }
            /// One line for `--help`.
            pub fn about(&self) -> &'static str {
                match self {
                    $(HeadKind::$variant => <$field::$family as HeadFamily>::ABOUT,)+
                }
            }
            /// Its probabilities are the softmax of its decision values (no fitted calibration).
            pub fn calibrated(&self) -> bool {
                match self {
                    $(HeadKind::$variant => <$field::$family as HeadFamily>::CALIBRATED,)+
                }
            }
            /// Whether its grid points are fitted one after another, each from the previous
            /// point's state ([`HeadFamily::WARM_STARTS`]).
            pub fn warm_starts(&self) -> bool {
                match self {
                    $(HeadKind::$variant => <$field::$family as HeadFamily>::WARM_STARTS,)+
                }
            }
            pub fn row_limit(&self) -> Option<RowLimit> {
                match self {
                    $(HeadKind::$variant => <$field::$family as HeadFamily>::ROW_LIMIT,)+
                }
            }
            /// The grid points of this family.
            pub fn grid(
                &self,
                grids: &HeadGrids,
                shared: SharedGrid,
                data: &GridData,
            ) -> anyhow::Result<Vec<HeadSpec>> {
                Ok(match self {
                    $(HeadKind::$variant => <$field::$family as HeadFamily>::grid(&grids.$field, shared, data)?
                        .into_iter()
                        .map(HeadSpec::$variant)
                        .collect(),)+
                })
            }
        }

        /// A family with its hyper-parameters: a grid point, and `head.json`'s `params`
        /// (`{kind, ...}`, the family's fields beside its name).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind")]
        pub enum HeadSpec {
            $(#[serde(rename = $name)] $variant(<$field::$family as HeadFamily>::Spec),)+
        }

        impl HeadSpec {
            pub fn kind(&self) -> HeadKind {
                match self {
                    $(HeadSpec::$variant(_) => HeadKind::$variant,)+
                }
            }
            /// The numeric hyper-parameters; the first is the path the grid search walks.
            pub fn hyper_params(&self) -> Vec<HyperParam> {
                match self {
                    $(HeadSpec::$variant(s) => <$field::$family as HeadFamily>::hyper_params(s),)+
                }
            }
            /// This grid point with hyper-parameter `name` set to `value`.
            pub fn with(&self, name: &str, value: f64) -> HeadSpec {
                match self {
                    $(HeadSpec::$variant(s) => HeadSpec::$variant(
                        <$field::$family as HeadFamily>::with_hyper_param(s, name, value)),)+
                }
            }
            /// Fit on transformed rows `z` with classes `y` in `0..n_classes`.
            pub fn fit(
                &self,
                z: ArrayView2<f32>,
                y: &[usize],
                n_classes: usize,
                seed: u64,
            ) -> Result<Head, HeadError> {
                Ok(match self {
                    $(HeadSpec::$variant(s) => Head::$variant(
                        <$field::$family as HeadFamily>::fit(s, z, y, n_classes, seed)?),)+
                })
            }
            /// Fit one CV fold (warm-started from `states`), decision values of its
            /// validation rows.
            pub fn fit_fold(
                &self,
                fold: &Fold,
                states: &mut FoldStates,
                n_classes: usize,
                seed: u64,
            ) -> Result<(Array2<f64>, Convergence), HeadError> {
                match self {
                    $(HeadSpec::$variant(s) => <$field::$family as HeadFamily>::fit_fold(
                        s, fold, &mut states.$field, n_classes, seed),)+
                }
            }
        }

        impl std::fmt::Display for HeadSpec {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self {
                    $(HeadSpec::$variant(s) => write!(f, "{} {s}", $name),)+
                }
            }
        }

        /// A fitted head without calibration: decision values `[n, classes]`; `head.json`'s
        /// `head` (`{kind, ...}`, the model's fields beside its family's name).
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(tag = "kind")]
        pub enum Head {
            $(#[serde(rename = $name)] $variant(<$field::$family as HeadFamily>::Model),)+
        }

        impl Head {
            pub fn kind(&self) -> HeadKind {
                match self {
                    $(Head::$variant(_) => HeadKind::$variant,)+
                }
            }
            /// How the solver stopped on the fit that made this head (not recorded for loaded
            /// heads; see `SavedHead::fit`).
            pub fn convergence(&self) -> Convergence {
                match self {
                    $(Head::$variant(m) => <$field::$family as HeadFamily>::convergence(m),)+
                }
            }
            pub fn n_classes(&self) -> usize {
                match self {
                    $(Head::$variant(m) => <$field::$family as HeadFamily>::n_classes(m),)+
                }
            }
            /// The input dimension the head expects.
            pub fn input_dim(&self) -> usize {
                match self {
                    $(Head::$variant(m) => <$field::$family as HeadFamily>::input_dim(m),)+
                }
            }
            /// Check a loaded head against `n_classes` and the transform's output `dim`;
            /// errors name the field.
            pub fn validate(&self, n_classes: usize, dim: usize) -> Result<(), HeadError> {
                match self {
                    $(Head::$variant(m) => <$field::$family as HeadFamily>::validate(m, n_classes, dim),)+
                }
            }
            /// Decision values `[n, classes]`.
            pub fn decision(&self, z: ArrayView2<f32>) -> Array2<f64> {
                match self {
                    $(Head::$variant(m) => <$field::$family as HeadFamily>::decision(m, z),)+
                }
            }
            /// The head as layers, for the ONNX export.
            pub fn layers(&self) -> Vec<Layer<'_>> {
                match self {
                    $(Head::$variant(m) => <$field::$family as HeadFamily>::layers(m),)+
                }
            }
            /// Write the files the head keeps beside `head.json` into `dir`.
            pub fn write_files(&self, dir: &Path) -> anyhow::Result<()> {
                match self {
                    $(Head::$variant(m) => <$field::$family as HeadFamily>::write_files(m, dir),)+
                }
            }
            /// Read the files the head keeps beside `head.json` from `dir`.
            pub fn read_files(&mut self, dir: &Path) -> anyhow::Result<()> {
                match self {
                    $(Head::$variant(m) => <$field::$family as HeadFamily>::read_files(m, dir),)+
                }
            }
        }

        /// Each family's own grid settings (`TrainConfig::grids`).
        #[derive(Debug, Clone, Default)]
        pub struct HeadGrids {
            $(pub $field: <$field::$family as HeadFamily>::Grid,)+
        }

        /// What one CV fold keeps for each family between grid points (warm starts).
        #[derive(Default)]
        pub struct FoldStates {
            $($field: <$field::$family as HeadFamily>::FoldState,)+
        }
    };
}

pub(crate) use register_heads;

impl HeadKind {
    /// Lower is simpler; breaks CV ties (the registration order).
    pub fn complexity(&self) -> usize {
        HeadKind::ALL
            .iter()
            .position(|k| k == self)
            .expect("every kind is registered")
    }
}

impl std::fmt::Display for HeadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for HeadKind {
    type Err = String;
    fn from_str(s: &str) -> Result<HeadKind, String> {
        HeadKind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = HeadKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown head {s:?}: expected one of {}", names.join(", "))
            })
    }
}
