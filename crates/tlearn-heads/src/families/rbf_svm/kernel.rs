//! The RBF kernel `exp(−gamma |a_i − b_j|²)` as dense matrices: the squared distances (the part
//! that does not depend on gamma, computed once per fold in cross-validation) and one `exp`
//! pass per gamma.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use rayon::prelude::*;

/// `exp(−gamma |a_i − b_j|²)` for all pairs, `[a.rows, b.rows]`.
pub fn rbf_kernel(a: ArrayView2<f64>, b: ArrayView2<f64>, gamma: f64) -> Array2<f64> {
    let mut k = sq_distances(a, b);
    exp_in_place(&mut k, gamma);
    k
}

pub(crate) fn exp_in_place(d2: &mut Array2<f64>, gamma: f64) {
    d2.par_mapv_inplace(|v| (-gamma * v).exp());
}

/// Squared Euclidean distances `|a_i − b_j|²` for all pairs, `[a.rows, b.rows]` (clamped at 0),
/// the part of the RBF kernel that does not depend on gamma.
pub fn sq_distances(a: ArrayView2<f64>, b: ArrayView2<f64>) -> Array2<f64> {
    let na: Array1<f64> = a.rows().into_iter().map(|r| r.dot(&r)).collect();
    let nb: Array1<f64> = b.rows().into_iter().map(|r| r.dot(&r)).collect();
    // Row-major whatever the shapes: with one column (`--pca 1`) ndarray's product may come
    // out column-major, and the SMO reads kernel rows as slices.
    let mut k = a.dot(&b.t()).as_standard_layout().into_owned();
    k.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(na.as_slice().expect("contiguous").par_iter())
        .for_each(|(mut row, &ai)| {
            for (v, &bj) in row.iter_mut().zip(nb.iter()) {
                *v = (ai + bj - 2.0 * *v).max(0.0);
            }
        });
    k
}

/// `exp(−gamma · d2)` elementwise: a kernel from precomputed squared distances.
pub fn kernel_from_sq(d2: &Array2<f64>, gamma: f64) -> Array2<f64> {
    let mut k = d2.clone();
    exp_in_place(&mut k, gamma);
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn one_column_codes_give_a_row_major_kernel() {
        let a = Array2::from_shape_fn((5, 1), |(i, _)| i as f64);
        let d2 = sq_distances(a.view(), a.view());
        assert!(d2.is_standard_layout());
        assert_eq!(d2[[0, 3]], 9.0);
        assert_eq!(d2[[4, 1]], 9.0);
    }

    #[test]
    fn kernel_matches_definition() {
        let a = array![[0.0, 1.0], [2.0, -1.0]];
        let b = array![[1.0, 1.0]];
        let k = rbf_kernel(a.view(), b.view(), 0.5);
        assert!((k[[0, 0]] - (-0.5f64).exp()).abs() < 1e-12);
        assert!((k[[1, 0]] - (-0.5f64 * 5.0).exp()).abs() < 1e-12);
    }
}
