//! The saved head as ONNX nodes: feature transform (signed power → L2 → standardise → L2 →
//! PCA, whitened or not), decision values, probabilities. [`head_to_nodes`] is the only place
//! that reads the transform and the calibration slope; the decision values come from the
//! head's own description of itself as layers (`tlearn_heads::head::Layer`, one family's
//! `HeadFamily::layers`), each turned into nodes here, so a new head family needs no change
//! here unless it brings a new kind of layer. Each node mirrors one step of
//! `SavedHead::predict_proba`, and the exporter checks the two agree on a real input.
//!
//! Heads fitted by either engine (tlearn's solvers or linfa's) are saved in the same form, so
//! both export alike.
//!
//! Only opset-stable operators are used (no Reduce* ops, whose `axes` moved from attribute to
//! input in opset 13/18): row sums are a MatMul with a column of ones.

use ndarray::ArrayView2;
use tlearn_heads::head::Layer;
use tlearn_heads::transform::Scaling;
use tlearn_heads::SavedHead;

use crate::graph::{attr_int, Builder};
use crate::ExportError;

fn matrix(a: ArrayView2<f32>) -> (Vec<usize>, Vec<f32>) {
    (vec![a.nrows(), a.ncols()], a.iter().copied().collect())
}

/// `Σ_j x[:, j]` as `[N, 1]` for a `[N, d]` tensor.
fn row_sum(b: &mut Builder, x: &str, d: usize) -> String {
    let ones = b.constant("ones", &[d, 1], vec![1.0; d]);
    b.node("MatMul", &[x, &ones], vec![])
}

/// `x · mᵀ` for a `[k, d]` matrix `m`.
fn times_transpose(b: &mut Builder, x: &str, m: ArrayView2<f32>, what: &str) -> String {
    let (dims, data) = matrix(m.t());
    let c = b.constant(what, &dims, data);
    b.node("MatMul", &[x, &c], vec![])
}

/// Each row divided by its L2 norm (rows of norm 0 stay 0), as `Transform`'s `l2_rows`.
fn l2_normalise(b: &mut Builder, z: &str, d: usize) -> String {
    let sq = b.node("Mul", &[z, z], vec![]);
    let ss = row_sum(b, &sq, d);
    let norm = b.node("Sqrt", &[&ss], vec![]);
    let tiny = b.constant("tiny", &[1], vec![f32::MIN_POSITIVE]);
    let safe = b.node("Max", &[&norm, &tiny], vec![]);
    b.node("Div", &[z, &safe], vec![])
}

/// Append the transform, head and probability nodes reading the CNN codes `features` `[N, D]`;
/// the last node writes `output` `[N, classes]`.
pub fn head_to_nodes(
    saved: &SavedHead,
    b: &mut Builder,
    features: &str,
    output: &str,
) -> Result<(), ExportError> {
    let t = &saved.transform;
    let mut z = features.to_string();
    // Transform::scale: signed power, L2 (rows of norm 0 stay 0), standardisation, L2.
    if let Some(alpha) = t.power {
        // sign(x)·|x|^α; Sign(0) = 0 keeps zeros at zero as `signed_power` does.
        let sign = b.node("Sign", &[&z], vec![]);
        let abs = b.node("Abs", &[&z], vec![]);
        let mag = if alpha == 0.5 {
            b.node("Sqrt", &[&abs], vec![])
        } else {
            let a = b.constant("power_alpha", &[1], vec![alpha]);
            b.node("Pow", &[&abs, &a], vec![])
        };
        z = b.node("Mul", &[&sign, &mag], vec![]);
    }
    if t.scaling == Scaling::L2 {
        z = l2_normalise(b, &z, t.input_dim);
    }
    if let (Some(m), Some(s)) = (&t.mean, &t.inv_std) {
        let mean = b.constant("mean", &[m.len()], m.to_vec());
        let inv = b.constant("inv_std", &[s.len()], s.to_vec());
        let c = b.node("Sub", &[&z, &mean], vec![]);
        z = b.node("Mul", &[&c, &inv], vec![]);
    }
    if t.l2_after {
        z = l2_normalise(b, &z, t.input_dim);
    }
    // A whitened PCA stores its components already divided by their standard deviations, so
    // both kinds are the same two nodes.
    if let Some(p) = &t.pca {
        let mean = b.constant("pca_mean", &[p.mean.len()], p.mean.to_vec());
        let c = b.node("Sub", &[&z, &mean], vec![]);
        z = times_transpose(b, &c, p.components.view(), "pca_components");
    }
    // Decision values [N, classes], layer by layer.
    let mut dim = t.output_dim();
    for layer in saved.head.layers() {
        (z, dim) = layer_nodes(b, &layer, &z, dim);
    }
    let scores = z;
    // head::probabilities: softmax of the decision values for a calibrated family (logistic
    // regression) and for heads without a calibration, else softmax(slope · decision values)
    // with the head's one shared calibration slope (calibrate::Temperature), so the argmax is
    // the decision-value argmax.
    let logits = match saved.calibration.as_ref() {
        Some(t) if !saved.head.kind().calibrated() => {
            let slope = b.constant("calibration_slope", &[1], vec![t.slope as f32]);
            b.node("Mul", &[&scores, &slope], vec![])
        }
        _ => scores,
    };
    b.node_named("Softmax", &[&logits], vec![attr_int("axis", 1)], output);
    Ok(())
}

/// The nodes of one layer reading `z` `[N, dim]`; returns the output and its width.
fn layer_nodes(b: &mut Builder, layer: &Layer, z: &str, dim: usize) -> (String, usize) {
    match layer {
        Layer::Affine { weights, bias } => {
            let s = times_transpose(b, z, *weights, "weights");
            let bias = b.constant("bias", &[bias.len()], bias.to_vec());
            (b.node("Add", &[&s, &bias], vec![]), weights.nrows())
        }
        Layer::Relu => (b.node("Relu", &[z], vec![]), dim),
        Layer::RbfExpansion {
            gamma,
            support_vectors: sv,
            coef,
            rho,
        } => {
            // out_c = Σ_s coef[c,s]·exp(−γ·max(|z|² + |sv_s|² − 2 z·sv_s, 0)) − rho_c, the same
            // expansion as the RBF SVM's kernel, in float64 as tlearn computes it: with a small
            // C the decision values are small differences of large sums, and the calibration
            // slope (thousands for C = 0.001) magnifies float32 rounding in them beyond the
            // export's tolerance (measured 1.4e-4 on Tux Paint, C = 0.001).
            let z64 = b.cast(z, true);
            let zz = {
                let sq = b.node("Mul", &[&z64, &z64], vec![]);
                let ones = b.constant_f64("ones", &[dim, 1], vec![1.0; dim]);
                b.node("MatMul", &[&sq, &ones], vec![])
            };
            let svv: Vec<f64> = sv
                .rows()
                .into_iter()
                .map(|r| r.iter().map(|&v| v as f64 * v as f64).sum::<f64>())
                .collect();
            let svv = b.constant_f64("sv_sq_norms", &[1, sv.nrows()], svv);
            let svt: Vec<f64> = sv.t().iter().map(|&v| v as f64).collect();
            let svt = b.constant_f64("support_vectors", &[sv.ncols(), sv.nrows()], svt);
            let cross = b.node("MatMul", &[&z64, &svt], vec![]);
            let minus2 = b.constant_f64("minus_two", &[1], vec![-2.0]);
            let cross2 = b.node("Mul", &[&cross, &minus2], vec![]);
            let sum = b.node("Add", &[&zz, &svv], vec![]);
            let d2 = b.node("Add", &[&sum, &cross2], vec![]);
            let d2 = b.node("Relu", &[&d2], vec![]);
            let g = b.constant_f64("minus_gamma", &[1], vec![-gamma]);
            let e = b.node("Mul", &[&d2, &g], vec![]);
            let k = b.node("Exp", &[&e], vec![]);
            let coef_t: Vec<f64> = coef.t().iter().copied().collect();
            let coef_c = b.constant_f64("dual_coef", &[coef.ncols(), coef.nrows()], coef_t);
            let s = b.node("MatMul", &[&k, &coef_c], vec![]);
            let rho_c = b.constant_f64("rho", &[rho.len()], rho.to_vec());
            let s = b.node("Sub", &[&s, &rho_c], vec![]);
            (b.cast(&s, false), coef.nrows())
        }
    }
}
