//! Augmented training rows: with a cache that keeps every augmentation view's codes
//! (`extract --augment crops10 --keep-views`, `views.npy`), each *training* image gives one row
//! per view (its label repeated), while validation and held-out images are scored on their
//! averaged row (`features.npy`). Splits and folds are made over images first and rows are
//! expanded afterwards ([`expand`]), so a view never lands on the other side of a split from
//! its image.

use ndarray::{Array2, ArrayView2, ArrayView3, Axis};
use serde::{Deserialize, Serialize};

/// Where one training row comes from: an image (an index into the rows of `x` / `views`) and
/// one of its views, or its averaged row (`view: None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowSource {
    pub image: usize,
    pub view: Option<usize>,
}

/// The training rows of the images `rows`: each image's `n_views` views one after another, or
/// its averaged row alone when `n_views` is `None`.
pub fn expand(rows: &[usize], n_views: Option<usize>) -> Vec<RowSource> {
    match n_views {
        None => rows
            .iter()
            .map(|&image| RowSource { image, view: None })
            .collect(),
        Some(v) => rows
            .iter()
            .flat_map(|&image| {
                (0..v).map(move |k| RowSource {
                    image,
                    view: Some(k),
                })
            })
            .collect(),
    }
}

/// The training matrix for the images `rows` (indices into `x`, `views` and `y`): `x`'s rows
/// when `views` is `None`, else every view of each image as a row, image by image, with `y`
/// repeated to match ([`expand`]).
pub fn training_rows(
    x: ArrayView2<f32>,
    views: Option<ArrayView3<f32>>,
    rows: &[usize],
    y: &[usize],
) -> (Array2<f32>, Vec<usize>) {
    let sources = expand(rows, views.map(|v| v.dim().1));
    let labels = sources.iter().map(|s| y[s.image]).collect();
    match views {
        None => (x.select(Axis(0), rows), labels),
        Some(v) => {
            let (_, n_views, dim) = v.dim();
            let picked = v.select(Axis(0), rows);
            let flat = picked
                .into_shape_with_order((rows.len() * n_views, dim))
                .expect("select gives a standard-layout array");
            (flat, labels)
        }
    }
}

/// `train --train-views`: which training rows CV may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TrainViews {
    /// One averaged row per training image (`features.npy`).
    Off,
    /// One row per kept view of each training image; the cache must keep views.
    On,
    /// Both cross-validated on the same folds, the better kept; averaged rows when the cache
    /// keeps no views.
    #[default]
    Auto,
}

impl std::fmt::Display for TrainViews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TrainViews::Off => "off",
            TrainViews::On => "on",
            TrainViews::Auto => "auto",
        })
    }
}

/// Whether training used one row per kept view (`head.json` `view_rows`, `cv.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewRows {
    /// The views each training image contributed a row for (`centre`, `centre-flip`, ...).
    pub views: Vec<String>,
    /// Rows the final fit was trained on (training images × views).
    pub training_rows: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array3};

    #[test]
    fn training_images_expand_to_their_views_in_order() {
        let x = array![[0.5f32, 0.5], [1.5, 1.5], [2.5, 2.5]];
        let v = Array3::from_shape_fn((3, 2, 2), |(i, k, _)| (i * 10 + k) as f32);
        let (m, y) = training_rows(x.view(), Some(v.view()), &[2, 0], &[7, 8, 9]);
        assert_eq!(
            m,
            array![[20.0, 20.0], [21.0, 21.0], [0.0, 0.0], [1.0, 1.0]]
        );
        assert_eq!(y, vec![9, 9, 7, 7]);
        assert_eq!(
            expand(&[2, 0], Some(2)),
            vec![
                RowSource {
                    image: 2,
                    view: Some(0)
                },
                RowSource {
                    image: 2,
                    view: Some(1)
                },
                RowSource {
                    image: 0,
                    view: Some(0)
                },
                RowSource {
                    image: 0,
                    view: Some(1)
                },
            ]
        );
        let (m, y) = training_rows(x.view(), None, &[1], &[7, 8, 9]);
        assert_eq!(m, array![[1.5, 1.5]]);
        assert_eq!(y, vec![8]);
    }
}
