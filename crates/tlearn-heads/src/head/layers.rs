//! A fitted head as layers, from transformed rows `[N, d]` to decision values `[N, classes]`:
//! the neutral description a family gives of its model ([`super::HeadFamily::layers`]) and the
//! ONNX exporter turns into nodes (`tlearn-export`'s `head_nodes`). The probabilities after the
//! last layer (softmax, or softmax of calibrated scores) are the same for every family and are
//! not a layer. A new family reuses these layers; a new kind of layer is one variant here and
//! one arm in the exporter.

use ndarray::{ArrayView1, ArrayView2};

#[derive(Debug, Clone)]
pub enum Layer<'a> {
    /// `x · Wᵀ + b` in float32: `weights` `[out, in]`, `bias` `[out]`.
    Affine {
        weights: ArrayView2<'a, f32>,
        bias: ArrayView1<'a, f32>,
    },
    /// `max(x, 0)` elementwise.
    Relu,
    /// An RBF kernel expansion, computed in float64:
    /// `out_c = Σ_s coef[c, s] · exp(−gamma · |x − sv_s|²) − rho_c`, `support_vectors`
    /// `[n_sv, in]`, `coef` `[out, n_sv]`, `rho` `[out]`.
    RbfExpansion {
        gamma: f64,
        support_vectors: ArrayView2<'a, f32>,
        coef: ArrayView2<'a, f64>,
        rho: ArrayView1<'a, f64>,
    },
}
