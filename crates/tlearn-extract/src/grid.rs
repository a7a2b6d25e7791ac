//! Spatial grid pooling: a cut named `NAME@KxK` (`stage6@2x2`) is the spatial map of cut `NAME`
//! pooled over a K×K grid of cells instead of over the whole map, so the code keeps where things
//! are (a digit's strokes, a garment's silhouette), which global pooling throws away.
//!
//! Cells follow PyTorch's `AdaptiveAvgPool2d` bins: along an axis of length `L`, cell `i` of `K`
//! covers `floor(i·L/K) .. ceil((i+1)·L/K)` (a 7×7 map in 2×2 cells: rows 0..4 and 3..7, the
//! middle row in both). Each cell is averaged (`--pool avg`) or maxed (`--pool max`) per
//! channel; the vector is channel-major, `[c][cell row][cell column]`, i.e. `C·K·K` values laid
//! out as the flattened `[C, K, K]` tensor (NHWC networks too). The grid is part of the cut's
//! name, hence of the cache fingerprint's `layer`: a cache of `stage6` and one of `stage6@2x2`
//! are different extractors, and one is refused where the other is expected.

use anyhow::{bail, Result};
use tract_onnx::prelude::tract_ndarray::{ArrayViewD, Axis};

use crate::spec::{Layout, Pooling};

pub use tlearn_cache::cut_spec::{GRID_MARK, MAX_GRID};

/// `NAME@KxK` → (`NAME`, `Some(K)`); any other name → (name, `None`); a malformed grid is
/// refused ([`tlearn_cache::CutName::parse`] holds the rule).
pub fn split_grid(layer: &str) -> Result<(&str, Option<usize>)> {
    let cut = tlearn_cache::CutName::parse(layer)?;
    Ok((&layer[..cut.base().len()], cut.grid()))
}

/// The `k` adaptive cells `[start, end)` along an axis of length `len`.
pub fn cells(len: usize, k: usize) -> Vec<(usize, usize)> {
    (0..k)
        .map(|i| ((i * len) / k, ((i + 1) * len).div_ceil(k)))
        .collect()
}

/// Length of the grid-pooled vector of a `[1, C, H, W]` (or `[1, H, W, C]`) map.
pub fn grid_dim(shape: &[usize], layout: Layout, k: usize) -> usize {
    let c = match layout {
        Layout::Nchw => shape[1],
        Layout::Nhwc => shape[3],
    };
    c * k * k
}

/// Why `shape` under `pool` cannot be grid-pooled, if it cannot (`cut` names it in the message).
pub fn check(cut: &str, shape: &[usize], layout: Layout, pool: Pooling, k: usize) -> Result<()> {
    if pool == Pooling::Flatten {
        bail!(
            "cut '{cut}': a grid pools the map cell by cell, so it needs --pool avg or max, \
             not flatten"
        );
    }
    if shape.len() != 4 {
        bail!("cut '{cut}': the tensor is {shape:?}, not a spatial map, so it has no grid");
    }
    let (h, w) = match layout {
        Layout::Nchw => (shape[2], shape[3]),
        Layout::Nhwc => (shape[1], shape[2]),
    };
    if h < k || w < k {
        bail!("cut '{cut}': the map is {h}x{w}, smaller than the {k}x{k} grid");
    }
    Ok(())
}

/// Pool one output `[1, C, H, W]` (or `[1, H, W, C]`) over a `k`×`k` grid: `C·k·k` values,
/// channel-major. The shape must have passed [`check`].
pub fn grid_pool(view: ArrayViewD<f32>, layout: Layout, pool: Pooling, k: usize) -> Vec<f32> {
    let map = view.index_axis(Axis(0), 0);
    // [C, H, W] whatever the layout.
    let map = match layout {
        Layout::Nchw => map,
        Layout::Nhwc => map.permuted_axes(vec![2, 0, 1]),
    };
    let (c, h, w) = (map.shape()[0], map.shape()[1], map.shape()[2]);
    let (rows, cols) = (cells(h, k), cells(w, k));
    let mut out = Vec::with_capacity(c * k * k);
    for ch in 0..c {
        let plane = map.index_axis(Axis(0), ch);
        for &(r0, r1) in &rows {
            for &(c0, c1) in &cols {
                let cell = (r0..r1).flat_map(|y| (c0..c1).map(move |x| (y, x)));
                out.push(match pool {
                    Pooling::Max => cell
                        .map(|(y, x)| plane[[y, x]])
                        .fold(f32::NEG_INFINITY, f32::max),
                    _ => {
                        let n = ((r1 - r0) * (c1 - c0)) as f64;
                        (cell.map(|(y, x)| plane[[y, x]] as f64).sum::<f64>() / n) as f32
                    }
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::prelude::tract_ndarray::{Array4, ArrayD};

    #[test]
    fn names_with_and_without_a_grid() {
        assert_eq!(split_grid("stage6@2x2").unwrap(), ("stage6", Some(2)));
        assert_eq!(split_grid("stage6").unwrap(), ("stage6", None));
        assert_eq!(split_grid("@classifier_input").unwrap().1, None);
        assert_eq!(
            split_grid("@last:Conv@3x3").unwrap(),
            ("@last:Conv", Some(3))
        );
        assert_eq!(split_grid("node@home").unwrap(), ("node@home", None));
        for bad in ["stage6@2x3", "stage6@0x0", "stage6@9x9"] {
            let e = split_grid(bad).unwrap_err().to_string();
            assert!(e.contains("KxK"), "{bad}: {e}");
        }
    }

    #[test]
    fn cells_are_pytorch_adaptive_bins() {
        assert_eq!(cells(7, 2), vec![(0, 4), (3, 7)]);
        assert_eq!(cells(7, 3), vec![(0, 3), (2, 5), (4, 7)]);
        assert_eq!(cells(14, 2), vec![(0, 7), (7, 14)]);
        assert_eq!(cells(7, 1), vec![(0, 7)]);
    }

    #[test]
    fn grid_pooling_is_channel_major_and_layout_blind() {
        // [1, 2, 4, 4]: channel c, value c*100 + y*4 + x.
        let a = Array4::from_shape_fn((1, 2, 4, 4), |(_, c, y, x)| (c * 100 + y * 4 + x) as f32);
        let v = grid_pool(a.view().into_dyn(), Layout::Nchw, Pooling::Avg, 2);
        assert_eq!(v, vec![2.5, 4.5, 10.5, 12.5, 102.5, 104.5, 110.5, 112.5]);
        let m = grid_pool(a.view().into_dyn(), Layout::Nchw, Pooling::Max, 2);
        assert_eq!(m, vec![5.0, 7.0, 13.0, 15.0, 105.0, 107.0, 113.0, 115.0]);
        let nhwc: ArrayD<f32> = a
            .view()
            .permuted_axes([0, 2, 3, 1])
            .as_standard_layout()
            .to_owned()
            .into_dyn();
        assert_eq!(grid_pool(nhwc.view(), Layout::Nhwc, Pooling::Avg, 2), v);
        // 1x1 is global average pooling.
        let g = grid_pool(a.view().into_dyn(), Layout::Nchw, Pooling::Avg, 1);
        assert_eq!(g, vec![7.5, 107.5]);
    }

    #[test]
    fn flatten_and_non_maps_are_refused() {
        let e = check("s@2x2", &[1, 8, 7, 7], Layout::Nchw, Pooling::Flatten, 2).unwrap_err();
        assert!(e.to_string().contains("not flatten"), "{e}");
        let e = check("s@2x2", &[1, 1280], Layout::Nchw, Pooling::Avg, 2).unwrap_err();
        assert!(e.to_string().contains("not a spatial map"), "{e}");
        let e = check("s@8x8", &[1, 8, 7, 7], Layout::Nchw, Pooling::Avg, 8).unwrap_err();
        assert!(e.to_string().contains("smaller than"), "{e}");
        assert_eq!(grid_dim(&[1, 192, 7, 7], Layout::Nchw, 2), 768);
    }
}
