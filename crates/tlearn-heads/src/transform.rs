//! Feature transforms applied before a head: optional L2 normalisation of each vector,
//! optional standardisation (zero mean, unit variance per feature) and optional PCA
//! (linfa-reduction). All statistics are fitted on training rows only.

use anyhow::{anyhow, bail, Result};
use linfa::traits::Fit;
use linfa::DatasetBase;
use linfa_reduction::Pca;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// How vectors are scaled before the head.
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

/// PCA projection: `(x - mean) · componentsᵀ`, components `[k, D]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PcaMap {
    pub mean: Array1<f32>,
    pub components: Array2<f32>,
    pub explained_variance_ratio: Vec<f64>,
}

/// A fitted transform pipeline: L2 → standardise → PCA (each optional).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transform {
    pub scaling: Scaling,
    pub input_dim: usize,
    /// Per-feature mean and 1/std (standard scaling only).
    pub mean: Option<Array1<f32>>,
    pub inv_std: Option<Array1<f32>>,
    pub pca: Option<PcaMap>,
}

impl Transform {
    /// Fit on training rows.
    pub fn fit(x: ArrayView2<f32>, scaling: Scaling, pca: Option<usize>) -> Result<Transform> {
        let mut t = Transform {
            scaling,
            input_dim: x.ncols(),
            mean: None,
            inv_std: None,
            pca: None,
        };
        if x.nrows() == 0 {
            bail!("cannot fit a transform on 0 rows");
        }
        if scaling == Scaling::Standard {
            let n = x.nrows() as f64;
            let mut mean = vec![0f64; x.ncols()];
            let mut sq = vec![0f64; x.ncols()];
            for row in x.outer_iter() {
                for (j, &v) in row.iter().enumerate() {
                    mean[j] += v as f64;
                }
            }
            mean.iter_mut().for_each(|m| *m /= n);
            for row in x.outer_iter() {
                for (j, &v) in row.iter().enumerate() {
                    let d = v as f64 - mean[j];
                    sq[j] += d * d;
                }
            }
            let inv: Array1<f32> = sq
                .iter()
                .map(|s| {
                    let sd = (s / n).sqrt();
                    // Constant features are left unscaled (like scikit-learn).
                    if sd > 1e-12 {
                        (1.0 / sd) as f32
                    } else {
                        1.0
                    }
                })
                .collect();
            t.mean = Some(mean.iter().map(|&m| m as f32).collect());
            t.inv_std = Some(inv);
        }
        if let Some(k) = pca {
            let z = t.scale(x);
            if k == 0 || k > z.ncols() || k > z.nrows() {
                bail!(
                    "--pca {k}: must be between 1 and min(training rows {}, dim {})",
                    z.nrows(),
                    z.ncols()
                );
            }
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
            t.pca = Some(PcaMap {
                mean: p.mean().mapv(|v| v as f32),
                components: p.components().mapv(|v| v as f32),
                explained_variance_ratio: ratio,
            });
        }
        Ok(t)
    }

    fn scale(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut z = x.to_owned();
        if self.scaling == Scaling::L2 {
            for mut row in z.axis_iter_mut(Axis(0)) {
                let n = row.iter().map(|v| v * v).sum::<f32>().sqrt();
                if n > 0.0 {
                    row /= n;
                }
            }
        }
        if let (Some(m), Some(s)) = (&self.mean, &self.inv_std) {
            z -= m;
            z *= s;
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
        let z = self.scale(x);
        Ok(match &self.pca {
            Some(p) => (z - &p.mean).dot(&p.components.t()),
            None => z,
        })
    }

    /// Check a loaded transform: parameter lengths agree with `input_dim`, numbers are finite.
    /// Errors name the field (`transform.inv_std`, ...).
    pub fn validate(&self) -> Result<(), crate::error::HeadError> {
        use crate::error::{check_finite, HeadError};
        let d = self.input_dim;
        if d == 0 {
            return Err(HeadError::malformed("transform.input_dim", "is 0"));
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
    fn dimension_mismatch_is_an_error() {
        let x = array![[1.0f32, 2.0]];
        let t = Transform::fit(x.view(), Scaling::None, None).unwrap();
        assert!(t.apply(array![[1.0f32, 2.0, 3.0]].view()).is_err());
    }
}
