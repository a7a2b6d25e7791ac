//! Feature transforms applied before a head, fitted on training rows only. The pipeline, each
//! step optional, in this order:
//!
//! 1. signed power normalisation `sign(x)·|x|^α` (α = 0.5, the signed square root of Perronnin
//!    et al. 2010 and Razavian et al. 2014): damps the few large activations of pooled codes;
//! 2. L2 normalisation of each vector (`--transform l2`);
//! 3. standardisation (zero mean, unit variance per feature);
//! 4. L2 normalisation after standardisation;
//! 5. PCA (linfa-reduction, `--pca N`), or PCA whitening: the principal components that keep
//!    [`WHITEN_VARIANCE`] of the variance (or N), each divided by its standard deviation.
//!
//! Standardisation is linfa-preprocessing's `LinearScaler`. Two steps are written here instead,
//! for measured reasons: its `NormScaler::l2` divides an all-zero code (a cut whose activations
//! are all zero after ReLU, a blank image) by 0 and returns NaN, which the heads then refuse
//! (test `l2_keeps_a_zero_row_finite_where_linfa_preprocessing_gives_nan`); its PCA `Whitener`
//! keeps every component and clamps singular values at 1e-8, so with fewer training rows than
//! dimensions (151 × 1,280 on Tux Paint) the null directions are multiplied by up to 1e8 —
//! [`whitened_pca`] keeps the components holding [`WHITEN_VARIANCE`] of the variance.
//!
//! [`TransformKind`] names the combinations `train` offers; with `--transform auto` each is a
//! cross-validation candidate (see `select`) and is kept only when CV picks it.
//!
//! Before step 1, a head on a concatenation (two cuts, or two backbones' codes) normalises each
//! block of columns on its own ([`BlockNorm`], rule [`BlockRule`]): signed square root, then
//! division by the block's L2 norm, so that no block dominates the joined vector by its scale.
//! It needs no fitting (one row at a time), so applying it once to every row before the
//! training/validation split is the same as applying it inside each fold; it is saved with the
//! transform (`blocks`) and applied first by [`Transform::apply`] at `eval` and `predict`.

use anyhow::{anyhow, bail, Result};
use linfa::traits::Fit;
use linfa::DatasetBase;
use linfa_linalg::eigh::{EigSort, EighInto};
use linfa_linalg::Order;
use linfa_preprocessing::linear_scaling::LinearScaler;
use linfa_reduction::Pca;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// Exponent of the signed power normalisation (the signed square root).
pub const POWER_ALPHA: f32 = 0.5;
/// Share of the training variance the whitened PCA keeps when no `--pca N` is given.
pub const WHITEN_VARIANCE: f64 = 0.99;

/// How vectors are scaled before the head (the `scaling` field of a saved transform).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scaling {
    /// Standardise each feature (mean 0, variance 1) on the training rows.
    Standard,
    /// Divide each vector by its L2 norm.
    L2,
    /// Use the vectors as they are.
    None,
}

impl std::str::FromStr for Scaling {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "standard" => Ok(Scaling::Standard),
            "l2" => Ok(Scaling::L2),
            "none" => Ok(Scaling::None),
            _ => bail!("unknown transform {s:?}: expected standard, l2 or none"),
        }
    }
}

/// The transform pipelines `train` offers, by name (`--transform`, cv.json's `transform`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransformKind {
    /// Standardisation (the default before `auto`).
    Standard,
    /// L2 normalisation of each vector.
    L2,
    /// The vectors as they are.
    None,
    /// Signed square root, then standardisation.
    SqrtStandard,
    /// Standardisation, then L2 normalisation.
    StandardL2,
    /// Standardisation, then whitened PCA.
    PcaWhiten,
}

impl TransformKind {
    /// What `--transform auto` cross-validates, today's default first. `pca-whiten` is not in
    /// it: its per-fold eigendecomposition of the d × d covariance dominated CV time (most of
    /// 1,349 s on 2,100 × 1,280 Fashion-MNIST codes) and CV picked it on 2 of 10 Tux Paint
    /// splits without a held-out gain; plain L2 normalisation is, because it was the single
    /// trick worth most on Tux Paint (+1.7 points over standardisation, 10 splits,
    /// bench/RESULTS.md). `--transform pca-whiten` still fits it alone.
    pub const AUTO: [TransformKind; 4] = [
        TransformKind::Standard,
        TransformKind::SqrtStandard,
        TransformKind::L2,
        TransformKind::StandardL2,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            TransformKind::Standard => "standard",
            TransformKind::L2 => "l2",
            TransformKind::None => "none",
            TransformKind::SqrtStandard => "sqrt-standard",
            TransformKind::StandardL2 => "standard-l2",
            TransformKind::PcaWhiten => "pca-whiten",
        }
    }

    /// Lower is simpler; breaks CV ties between transforms (after the head's own order).
    pub fn complexity(&self) -> u8 {
        match self {
            TransformKind::Standard => 0,
            TransformKind::None => 1,
            TransformKind::L2 => 2,
            TransformKind::StandardL2 => 3,
            TransformKind::SqrtStandard => 4,
            TransformKind::PcaWhiten => 5,
        }
    }

    fn scaling(&self) -> Scaling {
        match self {
            TransformKind::L2 => Scaling::L2,
            TransformKind::None => Scaling::None,
            _ => Scaling::Standard,
        }
    }
}

impl std::fmt::Display for TransformKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TransformKind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        [
            TransformKind::Standard,
            TransformKind::L2,
            TransformKind::None,
            TransformKind::SqrtStandard,
            TransformKind::StandardL2,
            TransformKind::PcaWhiten,
        ]
        .into_iter()
        .find(|k| k.name() == s)
        .ok_or_else(|| {
            anyhow!("unknown transform {s:?}: expected standard, l2, none, sqrt-standard, standard-l2 or pca-whiten")
        })
    }
}

/// A transform to fit: a named pipeline and an optional PCA size (`--pca N`; for `pca-whiten`
/// the number of whitened components instead of [`WHITEN_VARIANCE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TransformSpec {
    pub kind: TransformKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pca: Option<usize>,
}

impl TransformSpec {
    pub fn new(kind: TransformKind, pca: Option<usize>) -> TransformSpec {
        TransformSpec { kind, pca }
    }
}

impl std::fmt::Display for TransformSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.kind, self.pca) {
            (TransformKind::PcaWhiten, Some(k)) => write!(f, "pca-whiten {k}"),
            (kind, Some(k)) => write!(f, "{kind} + pca {k}"),
            (kind, None) => write!(f, "{kind}"),
        }
    }
}

/// How each block of a concatenation is normalised before the transform (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlockRule {
    /// Signed square root of every value, then divide the block by its L2 norm. Measured on Tux
    /// Paint (lite0 all cuts + mobilenetv2 `features`, seeds 0-9): see bench/RESULTS.md.
    SqrtL2,
    /// Divide the block by its L2 norm.
    L2,
}

impl BlockRule {
    pub fn name(&self) -> &'static str {
        match self {
            BlockRule::SqrtL2 => "sqrt-l2",
            BlockRule::L2 => "l2",
        }
    }
}

impl std::str::FromStr for BlockRule {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sqrt-l2" => Ok(BlockRule::SqrtL2),
            "l2" => Ok(BlockRule::L2),
            _ => bail!("unknown block normalisation {s:?}: expected sqrt-l2 or l2"),
        }
    }
}

/// Per-block normalisation of a concatenation: columns `[0, dims[0])`, `[dims[0], dims[0] +
/// dims[1])`, ... each normalised by `rule`, row by row (a block of norm 0 stays 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockNorm {
    pub rule: BlockRule,
    pub dims: Vec<usize>,
}

impl BlockNorm {
    pub fn new(rule: BlockRule, dims: Vec<usize>) -> BlockNorm {
        BlockNorm { rule, dims }
    }

    /// The normalised rows (`x` has `dims` summed columns).
    pub fn apply(&self, x: ArrayView2<f32>) -> Result<Array2<f32>> {
        let total: usize = self.dims.iter().sum();
        if x.ncols() != total {
            bail!(
                "feature vectors have {} dimensions but the blocks add up to {total}",
                x.ncols()
            );
        }
        let mut z = x.to_owned();
        for mut row in z.axis_iter_mut(Axis(0)) {
            let mut start = 0;
            for &d in &self.dims {
                let mut block = row.slice_mut(ndarray::s![start..start + d]);
                if self.rule == BlockRule::SqrtL2 {
                    block.mapv_inplace(|v| signed_power(v, POWER_ALPHA));
                }
                let n = block.iter().map(|v| v * v).sum::<f32>().sqrt();
                if n > 0.0 {
                    block /= n;
                }
                start += d;
            }
        }
        Ok(z)
    }

    /// In words, e.g. "per-block signed sqrt + L2 (1280 | 1280)".
    pub fn describe(&self) -> String {
        let dims: Vec<String> = self.dims.iter().map(|d| d.to_string()).collect();
        let rule = match self.rule {
            BlockRule::SqrtL2 => "signed sqrt + L2",
            BlockRule::L2 => "L2",
        };
        format!("per-block {rule} ({})", dims.join(" | "))
    }
}

/// PCA projection: `(x - mean) · componentsᵀ`, components `[k, D]`. Whitened components are
/// divided by their standard deviation on the training rows, so the projection has unit
/// variance in every kept direction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PcaMap {
    pub mean: Array1<f32>,
    pub components: Array2<f32>,
    pub explained_variance_ratio: Vec<f64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub whitened: bool,
}

/// A fitted transform pipeline: (per-block normalisation →) power → L2 → standardise → L2 →
/// PCA (each optional, see the module doc). Fields added after version 1 (`power`, `l2_after`,
/// `pca.whitened`, `blocks`) are absent from older heads and read as "off".
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transform {
    pub scaling: Scaling,
    pub input_dim: usize,
    /// Per-block normalisation of a concatenation, applied before everything else. The other
    /// steps' statistics (`mean`, `inv_std`, `pca`) were fitted on its output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<BlockNorm>,
    /// Exponent α of the signed power normalisation `sign(x)·|x|^α`, applied first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<f32>,
    /// Per-feature mean and 1/std (standard scaling only).
    pub mean: Option<Array1<f32>>,
    pub inv_std: Option<Array1<f32>>,
    /// L2-normalise each vector after standardisation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub l2_after: bool,
    pub pca: Option<PcaMap>,
}

fn l2_rows(z: &mut Array2<f32>) {
    for mut row in z.axis_iter_mut(Axis(0)) {
        let n = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        if n > 0.0 {
            row /= n;
        }
    }
}

/// `sign(v)·|v|^alpha`.
pub fn signed_power(v: f32, alpha: f32) -> f32 {
    let m = if alpha == 0.5 {
        v.abs().sqrt()
    } else {
        v.abs().powf(alpha)
    };
    if v < 0.0 {
        -m
    } else {
        m
    }
}

impl Transform {
    /// Fit on training rows: `scaling`, then PCA to `pca` components (not whitened).
    pub fn fit(x: ArrayView2<f32>, scaling: Scaling, pca: Option<usize>) -> Result<Transform> {
        let kind = match scaling {
            Scaling::Standard => TransformKind::Standard,
            Scaling::L2 => TransformKind::L2,
            Scaling::None => TransformKind::None,
        };
        Transform::fit_spec(x, TransformSpec::new(kind, pca))
    }

    /// Fit a named pipeline on training rows.
    pub fn fit_spec(x: ArrayView2<f32>, spec: TransformSpec) -> Result<Transform> {
        let kind = spec.kind;
        let mut t = Transform {
            scaling: kind.scaling(),
            input_dim: x.ncols(),
            blocks: None,
            power: (kind == TransformKind::SqrtStandard).then_some(POWER_ALPHA),
            mean: None,
            inv_std: None,
            l2_after: kind == TransformKind::StandardL2,
            pca: None,
        };
        if x.nrows() == 0 {
            bail!("cannot fit a transform on 0 rows");
        }
        if t.scaling == Scaling::Standard {
            let pre = t.pre_standard(x);
            let (mean, inv) = standardisation(pre.view());
            t.mean = Some(mean);
            t.inv_std = Some(inv);
        }
        let whiten = kind == TransformKind::PcaWhiten;
        if spec.pca.is_some() || whiten {
            let z = t.scale(x);
            if let Some(k) = spec.pca {
                if k == 0 || k > z.ncols() || k > z.nrows() {
                    bail!(
                        "--pca {k}: must be between 1 and min(training rows {}, dim {})",
                        z.nrows(),
                        z.ncols()
                    );
                }
            }
            t.pca = Some(if whiten {
                whitened_pca(z.view(), spec.pca)?
            } else {
                linfa_pca(z.view(), spec.pca.expect("checked above"))?
            });
        }
        Ok(t)
    }

    /// Steps 1-2: signed power and the L2 normalisation before standardisation.
    fn pre_standard(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut z = x.to_owned();
        if let Some(a) = self.power {
            z.mapv_inplace(|v| signed_power(v, a));
        }
        if self.scaling == Scaling::L2 {
            l2_rows(&mut z);
        }
        z
    }

    /// Steps 1-4 (everything but the PCA).
    fn scale(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut z = self.pre_standard(x);
        if let (Some(m), Some(s)) = (&self.mean, &self.inv_std) {
            z -= m;
            z *= s;
        }
        if self.l2_after {
            l2_rows(&mut z);
        }
        z
    }

    /// Apply to any rows (training, validation, held-out or new images).
    pub fn apply(&self, x: ArrayView2<f32>) -> Result<Array2<f32>> {
        if x.ncols() != self.input_dim {
            bail!(
                "feature vectors have {} dimensions but the transform was fitted on {}",
                x.ncols(),
                self.input_dim
            );
        }
        let z = match &self.blocks {
            Some(b) => self.scale(b.apply(x)?.view()),
            None => self.scale(x),
        };
        Ok(match &self.pca {
            Some(p) => (z - &p.mean).dot(&p.components.t()),
            None => z,
        })
    }

    /// The pipeline in words, e.g. "sqrt → standard" or "standard → PCA 24 (whitened)".
    pub fn describe(&self) -> String {
        let mut steps = Vec::new();
        if let Some(b) = &self.blocks {
            steps.push(b.describe());
        }
        if let Some(a) = self.power {
            steps.push(if a == 0.5 {
                "signed sqrt".to_string()
            } else {
                format!("signed power {a}")
            });
        }
        match self.scaling {
            Scaling::L2 => steps.push("L2".into()),
            Scaling::Standard => steps.push("standard".into()),
            Scaling::None => {}
        }
        if self.l2_after {
            steps.push("L2".into());
        }
        if let Some(p) = &self.pca {
            let k = p.components.nrows();
            steps.push(if p.whitened {
                format!("PCA {k} (whitened)")
            } else {
                format!("PCA {k}")
            });
        }
        if steps.is_empty() {
            "none".into()
        } else {
            steps.join(" → ")
        }
    }

    /// Check a loaded transform: parameter lengths agree with `input_dim`, numbers are finite.
    /// Errors name the field (`transform.inv_std`, ...).
    pub fn validate(&self) -> Result<(), crate::error::HeadError> {
        use crate::error::{check_finite, HeadError};
        let d = self.input_dim;
        if d == 0 {
            return Err(HeadError::malformed("transform.input_dim", "is 0"));
        }
        if let Some(b) = &self.blocks {
            let total: usize = b.dims.iter().sum();
            if total != d || b.dims.contains(&0) {
                return Err(HeadError::malformed(
                    "transform.blocks.dims",
                    format!(
                        "{:?} (each >= 1, adding up to the input dimension {d})",
                        b.dims
                    ),
                ));
            }
        }
        if let Some(a) = self.power {
            if !(a.is_finite() && a > 0.0) {
                return Err(HeadError::malformed(
                    "transform.power",
                    format!("{a} (must be a positive number)"),
                ));
            }
        }
        match (&self.mean, &self.inv_std, self.scaling) {
            (Some(m), Some(s), Scaling::Standard) => {
                if m.len() != d {
                    return Err(HeadError::malformed(
                        "transform.mean",
                        format!("{} entries for input dimension {d}", m.len()),
                    ));
                }
                if s.len() != d {
                    return Err(HeadError::malformed(
                        "transform.inv_std",
                        format!("{} entries for input dimension {d}", s.len()),
                    ));
                }
                check_finite("transform.mean", m.iter())?;
                check_finite("transform.inv_std", s.iter())?;
            }
            (None, None, Scaling::L2 | Scaling::None) => {}
            (_, _, Scaling::Standard) => {
                return Err(HeadError::malformed(
                    "transform.mean",
                    "standard scaling needs both `mean` and `inv_std`",
                ))
            }
            _ => {
                return Err(HeadError::malformed(
                    "transform.scaling",
                    format!(
                        "{:?} scaling takes no `mean`/`inv_std`, but they are present",
                        self.scaling
                    ),
                ))
            }
        }
        if let Some(p) = &self.pca {
            if p.components.nrows() == 0 {
                return Err(HeadError::malformed(
                    "transform.pca.components",
                    "has no rows",
                ));
            }
            if p.components.ncols() != d {
                return Err(HeadError::malformed(
                    "transform.pca.components",
                    format!("{} columns for input dimension {d}", p.components.ncols()),
                ));
            }
            if p.mean.len() != d {
                return Err(HeadError::malformed(
                    "transform.pca.mean",
                    format!("{} entries for input dimension {d}", p.mean.len()),
                ));
            }
            check_finite("transform.pca.components", p.components.iter())?;
            check_finite("transform.pca.mean", p.mean.iter())?;
        }
        Ok(())
    }

    pub fn output_dim(&self) -> usize {
        match &self.pca {
            Some(p) => p.components.nrows(),
            None => self.input_dim,
        }
    }
}

/// Per-feature mean and 1/std of `x` (linfa-preprocessing's standard `LinearScaler`, fitted
/// in f64 so 4,000 rows of f32 codes lose no precision); constant features keep 1/std = 1, as
/// in scikit-learn.
fn standardisation(x: ArrayView2<f32>) -> (Array1<f32>, Array1<f32>) {
    let x64 = x.mapv(f64::from);
    let scaler = LinearScaler::standard()
        .fit(&DatasetBase::from(x64))
        .expect("standardisation is fitted on at least one training row");
    (
        scaler.offsets().mapv(|m| m as f32),
        scaler.scales().mapv(|s| s as f32),
    )
}

/// `--pca k` (not whitened): linfa-reduction's truncated PCA.
fn linfa_pca(z: ArrayView2<f32>, k: usize) -> Result<PcaMap> {
    let z64 = z.mapv(|v| v as f64);
    let ds = DatasetBase::from(z64);
    let p = Pca::params(k)
        .fit(&ds)
        .map_err(|e| anyhow!("PCA with {k} components failed: {e}"))?;
    // Explained variance ratio against the total variance of the training rows
    // (linfa's own ratio is normalised over the kept components only).
    let centred = &ds.records - p.mean();
    let total: f64 = centred.iter().map(|v| v * v).sum();
    let proj = centred.dot(&p.components().t());
    let ratio: Vec<f64> = proj
        .columns()
        .into_iter()
        .map(|c| c.iter().map(|v| v * v).sum::<f64>() / total.max(f64::MIN_POSITIVE))
        .collect();
    Ok(PcaMap {
        mean: p.mean().mapv(|v| v as f32),
        components: p.components().mapv(|v| v as f32),
        explained_variance_ratio: ratio,
        whitened: false,
    })
}

/// Whitened PCA from the full eigendecomposition (linfa-linalg's symmetric `eigh`) of the
/// smaller of the covariance `ZᵀZ` (`[D, D]`) and the Gram matrix `ZZᵀ` (`[n, n]`, when there
/// are fewer rows than dimensions): whitening needs every eigenvalue to choose how many
/// components keep [`WHITEN_VARIANCE`], which linfa-reduction's truncated solver does not give.
/// Components are stored already divided by their standard deviation, so applying (and
/// exporting) a whitened PCA is the same matrix product as a plain one.
fn whitened_pca(z: ArrayView2<f32>, k: Option<usize>) -> Result<PcaMap> {
    let (n, d) = z.dim();
    if n < 2 {
        bail!("PCA whitening needs at least 2 training rows");
    }
    let x = z.mapv(|v| v as f64);
    let mean = x.mean_axis(Axis(0)).expect("n >= 2");
    let c = &x - &mean;
    let denom = (n - 1) as f64;
    // Eigenpairs of the covariance, largest first: (variance, unit direction in D-space).
    let (vals, vecs): (Array1<f64>, Array2<f64>) = if n >= d {
        let cov = c.t().dot(&c) / denom;
        let (v, w) = cov
            .eigh_into()
            .map_err(|e| anyhow!("PCA whitening: eigendecomposition failed: {e}"))?
            .sort_eig(Order::Largest);
        (v, w)
    } else {
        let gram = c.dot(&c.t()) / denom;
        let (v, u) = gram
            .eigh_into()
            .map_err(|e| anyhow!("PCA whitening: eigendecomposition failed: {e}"))?
            .sort_eig(Order::Largest);
        // v_i = Cᵀ u_i / sqrt((n-1) λ_i)
        let mut w = c.t().dot(&u);
        for (mut col, &l) in w.axis_iter_mut(Axis(1)).zip(v.iter()) {
            let s = (denom * l.max(0.0)).sqrt();
            if s > 0.0 {
                col /= s;
            }
        }
        (v, w)
    };
    let total: f64 = vals.iter().map(|v| v.max(0.0)).sum();
    if total <= 0.0 {
        bail!("PCA whitening: the training rows have no variance");
    }
    // Directions with (numerically) no variance cannot be whitened.
    let usable = vals.iter().take_while(|&&v| v > 1e-10 * vals[0]).count();
    let keep = match k {
        Some(k) => {
            if k > usable {
                bail!("--pca {k}: only {usable} directions of the training rows have variance");
            }
            k
        }
        None => {
            let mut acc = 0.0;
            let mut keep = 0;
            for &v in vals.iter().take(usable) {
                acc += v;
                keep += 1;
                if acc >= WHITEN_VARIANCE * total {
                    break;
                }
            }
            keep.max(1)
        }
    };
    let mut comps = Array2::<f32>::zeros((keep, d));
    for i in 0..keep {
        let s = vals[i].sqrt();
        comps
            .row_mut(i)
            .assign(&vecs.column(i).mapv(|v| (v / s) as f32));
    }
    Ok(PcaMap {
        mean: mean.mapv(|v| v as f32),
        components: comps,
        explained_variance_ratio: vals.iter().take(keep).map(|v| v / total).collect(),
        whitened: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn standardise_uses_training_statistics() {
        let x = array![[1.0f32, 10.0], [3.0, 10.0], [5.0, 10.0]];
        let t = Transform::fit(x.view(), Scaling::Standard, None).unwrap();
        let z = t.apply(x.view()).unwrap();
        let col0: Vec<f32> = z.column(0).to_vec();
        let sd = (8.0f32 / 3.0).sqrt();
        assert!((col0[0] + 2.0 / sd).abs() < 1e-5 && col0[1].abs() < 1e-6);
        // The constant column becomes 0 rather than NaN.
        assert!(z.column(1).iter().all(|v| *v == 0.0));
        // New data uses the training statistics.
        let w = t.apply(array![[7.0f32, 10.0]].view()).unwrap();
        assert!((w[[0, 0]] - 4.0 / sd).abs() < 1e-5);
    }

    #[test]
    fn l2_keeps_a_zero_row_finite_where_linfa_preprocessing_gives_nan() {
        use linfa::traits::Transformer;
        let x = ndarray::array![[0.0f32, 0.0], [3.0, 4.0]];
        let t = Transform::fit(x.view(), Scaling::L2, None).unwrap();
        let z = t.apply(x.view()).unwrap();
        assert_eq!(z.row(0).to_vec(), vec![0.0, 0.0]);
        let theirs = linfa_preprocessing::norm_scaling::NormScaler::l2().transform(x.clone());
        assert!(
            theirs.row(0).iter().all(|v| v.is_nan()),
            "linfa-preprocessing now keeps zero rows finite: use its NormScaler ({theirs})"
        );
    }

    #[test]
    fn l2_normalises_rows() {
        let x = array![[3.0f32, 4.0], [0.0, 0.0]];
        let t = Transform::fit(x.view(), Scaling::L2, None).unwrap();
        let z = t.apply(x.view()).unwrap();
        assert_eq!(z, array![[0.6f32, 0.8], [0.0, 0.0]]);
    }

    #[test]
    fn pca_keeps_the_main_direction() {
        // Points on the line y = 2x plus tiny noise: one component explains ~all variance.
        let x = Array2::from_shape_fn((40, 2), |(i, j)| {
            let t = i as f32 - 20.0;
            if j == 0 {
                t
            } else {
                2.0 * t + if i % 2 == 0 { 0.01 } else { -0.01 }
            }
        });
        let t = Transform::fit(x.view(), Scaling::None, Some(1)).unwrap();
        let p = t.pca.as_ref().unwrap();
        assert!(p.explained_variance_ratio[0] > 0.999);
        assert_eq!(t.apply(x.view()).unwrap().ncols(), 1);
        assert!(Transform::fit(x.view(), Scaling::None, Some(3)).is_err());
    }

    #[test]
    fn signed_power_keeps_signs_and_zeros() {
        assert_eq!(signed_power(4.0, 0.5), 2.0);
        assert_eq!(signed_power(-9.0, 0.5), -3.0);
        assert_eq!(signed_power(0.0, 0.5), 0.0);
        assert!((signed_power(-8.0, 1.0 / 3.0) + 2.0).abs() < 1e-6);
        let x = array![[4.0f32, -1.0], [0.0, 9.0], [1.0, 1.0]];
        let t = Transform::fit_spec(
            x.view(),
            TransformSpec::new(TransformKind::SqrtStandard, None),
        )
        .unwrap();
        // The power comes before the standardisation: mean of sqrt'd column 0 is (2+0+1)/3.
        assert!((t.mean.as_ref().unwrap()[0] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn standard_then_l2_gives_unit_rows() {
        let x = array![[1.0f32, 10.0, 3.0], [3.0, 12.0, 1.0], [5.0, 7.0, 2.0]];
        let t = Transform::fit_spec(
            x.view(),
            TransformSpec::new(TransformKind::StandardL2, None),
        )
        .unwrap();
        let z = t.apply(x.view()).unwrap();
        for r in z.outer_iter() {
            assert!((r.dot(&r) - 1.0).abs() < 1e-5);
        }
    }

    /// Correlated 2-D-ish data in 5 dimensions.
    fn correlated(n: usize) -> Array2<f32> {
        Array2::from_shape_fn((n, 5), |(i, j)| {
            let a = (i as f32 * 0.37).sin() * 3.0;
            let b = (i as f32 * 1.13).cos();
            let noise = ((i * 7 + j * 13) % 11) as f32 * 0.01;
            a * (j as f32 + 1.0) + b * (5.0 - j as f32) + noise
        })
    }

    #[test]
    fn whitening_gives_unit_covariance_on_training_rows() {
        let x = correlated(60);
        let spec = TransformSpec::new(TransformKind::PcaWhiten, None);
        let t = Transform::fit_spec(x.view(), spec).unwrap();
        let p = t.pca.as_ref().unwrap();
        assert!(p.whitened);
        assert!(p.explained_variance_ratio.iter().sum::<f64>() >= WHITEN_VARIANCE);
        let z = t.apply(x.view()).unwrap().mapv(|v| v as f64);
        let k = z.ncols();
        assert!((1..5).contains(&k), "{k} components");
        let cov = z.t().dot(&z) / (z.nrows() - 1) as f64;
        for i in 0..k {
            for j in 0..k {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!(
                    (cov[[i, j]] - want).abs() < 1e-3,
                    "cov[{i},{j}] = {}",
                    cov[[i, j]]
                );
            }
        }
        // 4 rows × 3 dimensions (covariance path) and the same columns twice, 4 × 6 (fewer rows
        // than dimensions: the Gram-matrix path) give the same whitened scores (up to the sign
        // of each component).
        let few = x.slice(ndarray::s![..4, ..3]).to_owned();
        let spec3 = TransformSpec::new(TransformKind::PcaWhiten, Some(2));
        let a = Transform::fit_spec(few.view(), spec3).unwrap();
        let wide = ndarray::concatenate(Axis(1), &[few.view(), few.view()]).unwrap();
        let b = Transform::fit_spec(wide.view(), spec3).unwrap();
        let (za, zb) = (a.apply(few.view()).unwrap(), b.apply(wide.view()).unwrap());
        for c in 0..2 {
            let s = za[[0, c]].signum() * zb[[0, c]].signum();
            for r in 0..4 {
                assert!(
                    (za[[r, c]] - s * zb[[r, c]]).abs() < 1e-3,
                    "row {r} comp {c}"
                );
            }
        }
        assert!(Transform::fit_spec(
            few.view(),
            TransformSpec::new(TransformKind::PcaWhiten, Some(4))
        )
        .is_err());
    }

    #[test]
    fn block_norm_normalises_each_block_on_its_own() {
        let x = array![[4.0f32, 0.0, 9.0, 16.0], [-1.0, 0.0, 0.0, 0.0]];
        let b = BlockNorm::new(BlockRule::SqrtL2, vec![2, 2]);
        let z = b.apply(x.view()).unwrap();
        // sqrt → [2, 0] / 2; sqrt → [3, 4] / 5; the sign is kept; a zero block stays zero.
        assert_eq!(z, array![[1.0f32, 0.0, 0.6, 0.8], [-1.0, 0.0, 0.0, 0.0]]);
        let l2 = BlockNorm::new(BlockRule::L2, vec![2, 2]);
        let z = l2.apply(array![[3.0f32, 4.0, 0.0, -5.0]].view()).unwrap();
        assert_eq!(z, array![[0.6f32, 0.8, 0.0, -1.0]]);
        // A block 1,000 times larger than the other no longer outweighs it.
        let big = array![[1000.0f32, 2000.0, 1.0, 2.0]];
        let z = l2.apply(big.view()).unwrap();
        assert!((z[[0, 0]] - z[[0, 2]]).abs() < 1e-6);
        assert!(b.apply(array![[1.0f32, 2.0, 3.0]].view()).is_err());
    }

    #[test]
    fn a_transform_with_blocks_applies_them_to_raw_codes_first() {
        let raw = array![
            [4.0f32, 1.0, 90.0, 10.0, 30.0],
            [1.0, 9.0, 10.0, 50.0, 20.0],
            [2.0, 2.0, 40.0, 40.0, 40.0]
        ];
        let b = BlockNorm::new(BlockRule::SqrtL2, vec![2, 3]);
        let pre = b.apply(raw.view()).unwrap();
        let spec = TransformSpec::new(TransformKind::Standard, None);
        let mut t = Transform::fit_spec(pre.view(), spec).unwrap();
        let want = t.apply(pre.view()).unwrap();
        t.blocks = Some(b);
        t.validate().unwrap();
        assert_eq!(t.apply(raw.view()).unwrap(), want);
        assert!(t
            .describe()
            .starts_with("per-block signed sqrt + L2 (2 | 3) → standard"));
        // Saved and loaded as part of the head's transform.
        let back: Transform = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back.blocks, t.blocks);
        assert_eq!(back.apply(raw.view()).unwrap(), want);
        t.blocks = Some(BlockNorm::new(BlockRule::L2, vec![2, 2]));
        let e = t.validate().unwrap_err().to_string();
        assert!(e.contains("transform.blocks.dims"), "{e}");
    }

    #[test]
    fn dimension_mismatch_is_an_error() {
        let x = array![[1.0f32, 2.0]];
        let t = Transform::fit(x.view(), Scaling::None, None).unwrap();
        assert!(t.apply(array![[1.0f32, 2.0, 3.0]].view()).is_err());
    }
}
