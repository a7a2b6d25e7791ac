//! The trainable network: the pretrained layers after the cut (`block::TopBlock`), global
//! average pooling and a new linear classifier, with its forward and backward passes.
//!
//! Maps are channels-last, `[N·H·W, C]` row-major, so a 1x1 convolution is one matrix product
//! (the `gemm` crate the extraction's operators use, parallel over the cores) and its gradients
//! two more; the depthwise layers run `depthwise`; ReLU6 passes gradients where 0 < x < 6.
//!
//! Why gradients written by hand instead of an autodiff crate (measured on this project's
//! 2-core machine; bench/RESULTS.md, "Fine-tuning the top block"): the block is five kinds of
//! layers whose gradients are textbook (each checked here against finite differences), and
//! - candle 0.11 (candle-core + candle-nn) computes the same step with the same family of gemm
//!   kernels, 1.5 CPU-seconds per 64-image step of Lite0's top with a hand-written depthwise
//!   operator (2.6 s with its own ops), but its clean release build adds 5.5 CPU-minutes
//!   (gemm 0.19 beside the workspace's 0.18, tokenizers, safetensors, zip) and, by unifying
//!   the features of `half`, recompiles all of tract in every checkout;
//! - burn 0.22 on its ndarray backend did not finish its clean build in 75 minutes on the same
//!   machine (130 crates, `burn-ndarray` alone past 4 CPU-minutes), so no step was timed;
//! - this file: under 0.4 CPU-seconds per step, and no new dependency.

use anyhow::{bail, Result};
use ndarray::{Array1, Array2, Array4};
use rayon::prelude::*;

use crate::block::{Op, OpKind, TopBlock};
use crate::depthwise::Depthwise;

/// `out (m x n) = [out +] a (m x k) · b (k x n)`, each operand given by (row stride, column
/// stride), so transposes are free.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    m: usize,
    n: usize,
    k: usize,
    out: &mut [f32],
    accumulate: bool,
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
) {
    assert!(out.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            out[..m * n].fill(0.0);
        }
        return;
    }
    assert!(a.len() > (m - 1) * a_rs + (k - 1) * a_cs && b.len() > (k - 1) * b_rs + (n - 1) * b_cs);
    // Rows of the output in parallel blocks (each element is summed by one thread in one
    // order, so the result does not depend on the number of threads).
    let threads = rayon::current_num_threads();
    let block = if m * n * k > 1 << 16 {
        m.div_ceil(threads * 2).max(8)
    } else {
        m
    };
    out[..m * n]
        .par_chunks_mut(block * n)
        .enumerate()
        .for_each(|(i, o)| {
            let rows = o.len() / n;
            let a = &a[i * block * a_rs..];
            // SAFETY: `o` holds rows x n values; `a` from this block's first row and `b` hold every
            // element the strides reach (asserted above for the whole product).
            unsafe {
                gemm::gemm(
                    rows,
                    n,
                    k,
                    o.as_mut_ptr(),
                    1,
                    n as isize,
                    accumulate,
                    a.as_ptr(),
                    a_cs as isize,
                    a_rs as isize,
                    b.as_ptr(),
                    b_cs as isize,
                    b_rs as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            }
        });
}

/// Column sums of `g [rows, c]` added to `out [c]`.
fn add_col_sums(g: &[f32], c: usize, out: &mut [f32]) {
    for row in g.chunks_exact(c) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
}

/// One trainable tensor: its values and its gradient.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub value: Vec<f32>,
    pub grad: Vec<f32>,
}

impl Param {
    fn new(value: Vec<f32>) -> Param {
        let grad = vec![0.0; value.len()];
        Param { value, grad }
    }
}

/// One layer: a pointwise conv (`w [Cin, Cout]`), a depthwise conv (`w [K*K, C]`) or a
/// parameter-free op.
#[derive(Debug, Clone)]
pub enum Layer {
    Pointwise {
        w: Param,
        b: Param,
        cin: usize,
        cout: usize,
    },
    Depthwise {
        w: Param,
        b: Param,
        op: Depthwise,
    },
    Relu6,
    Relu,
    Add,
}

#[derive(Debug, Clone)]
pub struct Net {
    pub block: TopBlock,
    pub layers: Vec<Layer>,
    /// `[C, H, W]` of every value (0 = the cut map).
    pub shapes: Vec<[usize; 3]>,
    /// Classifier `w [F, K]`, `b [K]`.
    pub cls_w: Param,
    pub cls_b: Param,
    pub classes: usize,
}

/// What the forward pass keeps for the backward pass.
pub struct Tape {
    pub batch: usize,
    /// Every value, `[batch·H·W, C]` row-major.
    pub values: Vec<Vec<f32>>,
    /// Pooled features `[batch, F]` (after dropout when training).
    pub features: Vec<f32>,
    /// The dropout mask applied to `features` (empty: none).
    pub mask: Vec<f32>,
}

impl Net {
    /// The network with `block`'s weights and the classifier `cls_w [K, F]` (ONNX/Gemm layout,
    /// as saved), `cls_b [K]`.
    pub fn new(block: &TopBlock, cls_w: &Array2<f32>, cls_b: &Array1<f32>) -> Result<Net> {
        let shapes = block.shapes()?;
        let mut layers = Vec::with_capacity(block.ops.len());
        for op in &block.ops {
            layers.push(match &op.kind {
                OpKind::Conv {
                    w,
                    b,
                    group,
                    pads,
                    stride,
                } => {
                    let [co, ci, kh, kw] = [w.shape()[0], w.shape()[1], w.shape()[2], w.shape()[3]];
                    // [Cout, Cin·K·K] -> [Cin·K·K, Cout]: a pointwise weight [Cin, Cout], a
                    // depthwise one [K·K, C].
                    let t: Vec<f32> = w
                        .view()
                        .into_shape_with_order((co, ci * kh * kw))?
                        .t()
                        .iter()
                        .copied()
                        .collect();
                    if *group == 1 {
                        Layer::Pointwise {
                            w: Param::new(t),
                            b: Param::new(b.to_vec()),
                            cin: ci,
                            cout: co,
                        }
                    } else {
                        if kh != kw {
                            bail!("{}: non-square depthwise kernel {kh}x{kw}", op.name);
                        }
                        Layer::Depthwise {
                            w: Param::new(t),
                            b: Param::new(b.to_vec()),
                            op: Depthwise {
                                k: kh,
                                stride: *stride,
                                pads: *pads,
                            },
                        }
                    }
                }
                OpKind::Relu6 => Layer::Relu6,
                OpKind::Relu => Layer::Relu,
                OpKind::Add => Layer::Add,
            });
        }
        let f = shapes.last().map(|s| s[0]).unwrap_or(0);
        let (k, fw) = cls_w.dim();
        if fw != f || cls_b.len() != k {
            bail!(
                "classifier [{k}, {fw}] + bias [{}] does not fit the block's {f} features",
                cls_b.len()
            );
        }
        Ok(Net {
            block: block.clone(),
            layers,
            shapes,
            cls_w: Param::new(cls_w.t().iter().copied().collect()),
            cls_b: Param::new(cls_b.to_vec()),
            classes: k,
        })
    }

    pub fn features(&self) -> usize {
        self.shapes.last().map(|s| s[0]).unwrap_or(0)
    }

    /// The pretrained layers' parameters (low learning rate), in a fixed order.
    pub fn block_params(&mut self) -> Vec<&mut Param> {
        self.layers
            .iter_mut()
            .flat_map(|l| match l {
                Layer::Pointwise { w, b, .. } | Layer::Depthwise { w, b, .. } => vec![w, b],
                _ => vec![],
            })
            .collect()
    }

    /// The classifier's parameters (high learning rate).
    pub fn head_params(&mut self) -> Vec<&mut Param> {
        vec![&mut self.cls_w, &mut self.cls_b]
    }

    /// Forward the block over `x` (`[batch·H·W, C]`, channels-last) to pooled features
    /// `[batch, F]`, keeping every value when `keep` (for `backward`).
    pub fn forward_block(&self, x: Vec<f32>, batch: usize, keep: bool) -> Tape {
        let mut values: Vec<Vec<f32>> = vec![x];
        for (i, (layer, op)) in self.layers.iter().zip(&self.block.ops).enumerate() {
            let [c, h, w] = self.shapes[op.inputs[0]];
            let rows = batch * h * w;
            let a = &values[op.inputs[0]];
            let y = match layer {
                Layer::Pointwise {
                    w: wt,
                    b,
                    cin,
                    cout,
                } => {
                    let mut y = vec![0f32; rows * cout];
                    for r in y.chunks_exact_mut(*cout) {
                        r.copy_from_slice(&b.value);
                    }
                    matmul(
                        rows,
                        *cout,
                        *cin,
                        &mut y,
                        true,
                        a,
                        (*cin, 1),
                        &wt.value,
                        (*cout, 1),
                    );
                    y
                }
                Layer::Depthwise { w: wt, b, op: dw } => {
                    let mut y = dw.forward(a, &wt.value, [batch, h, w, c]);
                    y.par_chunks_mut(c * 64).for_each(|ch| {
                        for r in ch.chunks_exact_mut(c) {
                            for (v, bb) in r.iter_mut().zip(&b.value) {
                                *v += bb;
                            }
                        }
                    });
                    y
                }
                Layer::Relu6 => a.par_iter().map(|v| v.clamp(0.0, 6.0)).collect(),
                Layer::Relu => a.par_iter().map(|v| v.max(0.0)).collect(),
                Layer::Add => {
                    let b = &values[op.inputs[1]];
                    a.par_iter().zip(b.par_iter()).map(|(u, v)| u + v).collect()
                }
            };
            values.push(y);
            // Drop values no later op reads (inference keeps only what it needs).
            if !keep {
                for (j, v) in values.iter_mut().enumerate().take(i + 1) {
                    if !self.block.ops[i + 1..]
                        .iter()
                        .any(|o| o.inputs.contains(&j))
                    {
                        *v = Vec::new();
                    }
                }
            }
        }
        let [f, h, w] = *self.shapes.last().unwrap();
        let hw = h * w;
        let last = values.last().unwrap();
        let mut features = vec![0f32; batch * f];
        features
            .par_chunks_mut(f)
            .zip(last.par_chunks(hw * f))
            .for_each(|(o, img)| {
                for p in img.chunks_exact(f) {
                    for (a, v) in o.iter_mut().zip(p) {
                        *a += v;
                    }
                }
                for a in o.iter_mut() {
                    *a /= hw as f32;
                }
            });
        if !keep {
            values.clear();
        }
        Tape {
            batch,
            values,
            features,
            mask: Vec::new(),
        }
    }

    /// Logits `[batch, K]` of pooled features `[batch, F]`.
    pub fn logits(&self, features: &[f32], batch: usize) -> Vec<f32> {
        let (f, k) = (self.features(), self.classes);
        let mut out = vec![0f32; batch * k];
        for r in out.chunks_exact_mut(k) {
            r.copy_from_slice(&self.cls_b.value);
        }
        matmul(
            batch,
            k,
            f,
            &mut out,
            true,
            features,
            (f, 1),
            &self.cls_w.value,
            (k, 1),
        );
        out
    }

    /// Softmax cross-entropy of `logits` against `y`: (mean loss, dL/dlogits).
    pub fn loss(&self, logits: &[f32], y: &[usize]) -> (f64, Vec<f32>) {
        let k = self.classes;
        let n = y.len();
        let mut g = vec![0f32; logits.len()];
        let mut total = 0f64;
        for ((row, gr), &t) in logits.chunks_exact(k).zip(g.chunks_exact_mut(k)).zip(y) {
            let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let z: f64 = row.iter().map(|v| ((v - m) as f64).exp()).sum();
            total += z.ln() - (row[t] - m) as f64;
            for (j, (gv, v)) in gr.iter_mut().zip(row).enumerate() {
                let p = ((v - m) as f64).exp() / z;
                *gv = ((p - (j == t) as u8 as f64) / n as f64) as f32;
            }
        }
        (total / n as f64, g)
    }

    /// Zero every gradient.
    pub fn zero_grad(&mut self) {
        for p in self.block_params() {
            p.grad.fill(0.0);
        }
        self.cls_w.grad.fill(0.0);
        self.cls_b.grad.fill(0.0);
    }

    /// Back-propagate dL/dlogits through the classifier (and, with `block`, the block),
    /// adding into every parameter's `grad`.
    pub fn backward(&mut self, tape: &Tape, dlogits: &[f32], block: bool) {
        let (f, k, n) = (self.features(), self.classes, tape.batch);
        // Classifier: dW = Fᵀ·dZ, db = colsum(dZ), dF = dZ·Wᵀ.
        matmul(
            f,
            k,
            n,
            &mut self.cls_w.grad,
            true,
            &tape.features,
            (1, f),
            dlogits,
            (k, 1),
        );
        add_col_sums(dlogits, k, &mut self.cls_b.grad);
        if !block {
            return;
        }
        let mut df = vec![0f32; n * f];
        matmul(
            n,
            f,
            k,
            &mut df,
            false,
            dlogits,
            (k, 1),
            &self.cls_w.value,
            (1, k),
        );
        if !tape.mask.is_empty() {
            for (d, m) in df.iter_mut().zip(&tape.mask) {
                *d *= m;
            }
        }
        // Average pool.
        let [_, h, w] = *self.shapes.last().unwrap();
        let hw = h * w;
        let mut grads: Vec<Vec<f32>> = vec![Vec::new(); tape.values.len()];
        let mut last = vec![0f32; n * hw * f];
        last.par_chunks_mut(hw * f)
            .zip(df.par_chunks(f))
            .for_each(|(img, d)| {
                for p in img.chunks_exact_mut(f) {
                    for (a, v) in p.iter_mut().zip(d) {
                        *a = v / hw as f32;
                    }
                }
            });
        *grads.last_mut().unwrap() = last;
        for i in (0..self.layers.len()).rev() {
            let g = std::mem::take(&mut grads[i + 1]);
            if g.is_empty() {
                continue;
            }
            let op: &Op = &self.block.ops[i];
            let src = op.inputs[0];
            let [c, hh, ww] = self.shapes[src];
            let rows = n * hh * ww;
            let x = &tape.values[src];
            let dx: Vec<f32> = match &mut self.layers[i] {
                Layer::Pointwise {
                    w: wt,
                    b,
                    cin,
                    cout,
                } => {
                    let (cin, cout) = (*cin, *cout);
                    matmul(
                        cin,
                        cout,
                        rows,
                        &mut wt.grad,
                        true,
                        x,
                        (1, cin),
                        &g,
                        (cout, 1),
                    );
                    add_col_sums(&g, cout, &mut b.grad);
                    if src == 0 {
                        continue; // the cut map needs no gradient
                    }
                    let mut dx = vec![0f32; rows * cin];
                    matmul(
                        rows,
                        cin,
                        cout,
                        &mut dx,
                        false,
                        &g,
                        (cout, 1),
                        &wt.value,
                        (1, cout),
                    );
                    dx
                }
                Layer::Depthwise { w: wt, b, op: dw } => {
                    let gw = dw.grad_w(&g, x, [n, hh, ww, c]);
                    for (a, v) in wt.grad.iter_mut().zip(gw) {
                        *a += v;
                    }
                    add_col_sums(&g, c, &mut b.grad);
                    if src == 0 {
                        continue;
                    }
                    dw.grad_x(&g, &wt.value, [n, hh, ww, c])
                }
                Layer::Relu6 => g
                    .par_iter()
                    .zip(x.par_iter())
                    .map(|(d, v)| if *v > 0.0 && *v < 6.0 { *d } else { 0.0 })
                    .collect(),
                Layer::Relu => g
                    .par_iter()
                    .zip(x.par_iter())
                    .map(|(d, v)| if *v > 0.0 { *d } else { 0.0 })
                    .collect(),
                Layer::Add => {
                    let other = op.inputs[1];
                    if other != 0 {
                        accumulate(&mut grads[other], &g);
                    }
                    g
                }
            };
            if src != 0 {
                accumulate(&mut grads[src], &dx);
            }
        }
    }

    /// The block with the network's current weights, and the classifier as `[K, F]`, `[K]`.
    pub fn export(&self) -> Result<(TopBlock, Array2<f32>, Array1<f32>)> {
        let mut block = self.block.clone();
        for (layer, op) in self.layers.iter().zip(block.ops.iter_mut()) {
            let OpKind::Conv { w, b, .. } = &mut op.kind else {
                continue;
            };
            let (pw, pb) = match layer {
                Layer::Pointwise { w, b, .. } | Layer::Depthwise { w, b, .. } => (w, b),
                _ => bail!("{}: layer and op disagree", op.name),
            };
            let shape = w.raw_dim();
            let (co, rest) = (shape[0], shape[1] * shape[2] * shape[3]);
            let t = Array2::from_shape_vec((rest, co), pw.value.clone())?;
            *w = Array4::from_shape_vec(shape, t.t().iter().copied().collect())?;
            *b = Array1::from(pb.value.clone());
        }
        let (f, k) = (self.features(), self.classes);
        let cw = Array2::from_shape_vec((f, k), self.cls_w.value.clone())?
            .t()
            .to_owned();
        Ok((block, cw, Array1::from(self.cls_b.value.clone())))
    }
}

fn accumulate(dst: &mut Vec<f32>, src: &[f32]) {
    if dst.is_empty() {
        dst.extend_from_slice(src);
    } else {
        dst.par_iter_mut()
            .zip(src.par_iter())
            .for_each(|(a, b)| *a += b);
    }
}

/// Cached rows (`[C·H·W]` channel-major each, the `--pool flatten` layout) as one channels-last
/// buffer `[N·H·W, C]`.
pub fn rows_to_nhwc(rows: &[&[f32]], [c, h, w]: [usize; 3]) -> Result<Vec<f32>> {
    let hw = h * w;
    if let Some(r) = rows.iter().find(|r| r.len() != hw * c) {
        bail!("a cached map has {} values, expected {}", r.len(), hw * c);
    }
    let mut out = vec![0f32; rows.len() * hw * c];
    out.par_chunks_mut(hw * c)
        .zip(rows.par_iter())
        .for_each(|(o, r)| {
            for ch in 0..c {
                for p in 0..hw {
                    o[p * c + ch] = r[ch * hw + p];
                }
            }
        });
    Ok(out)
}

/// AdamW (decoupled weight decay, as PyTorch's `torch.optim.AdamW`) over a fixed list of
/// parameters.
#[derive(Debug, Clone)]
pub struct AdamW {
    pub lr: f64,
    pub weight_decay: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    t: i32,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl AdamW {
    pub fn new(sizes: &[usize], lr: f64, weight_decay: f64) -> AdamW {
        AdamW {
            lr,
            weight_decay,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            t: 0,
            m: sizes.iter().map(|&n| vec![0.0; n]).collect(),
            v: sizes.iter().map(|&n| vec![0.0; n]).collect(),
        }
    }

    pub fn step(&mut self, params: Vec<&mut Param>) {
        self.t += 1;
        let (b1, b2) = (self.beta1 as f32, self.beta2 as f32);
        let c1 = 1.0 / (1.0 - self.beta1.powi(self.t)) as f32;
        let c2 = 1.0 / (1.0 - self.beta2.powi(self.t)) as f32;
        let (lr, decay, eps) = (
            self.lr as f32,
            (1.0 - self.lr * self.weight_decay) as f32,
            self.eps as f32,
        );
        for ((p, m), v) in params.into_iter().zip(&mut self.m).zip(&mut self.v) {
            p.value
                .par_iter_mut()
                .zip(p.grad.par_iter())
                .zip(m.par_iter_mut().zip(v.par_iter_mut()))
                .for_each(|((x, g), (m, v))| {
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    *x = *x * decay - lr * (*m * c1) / ((*v * c2).sqrt() + eps);
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::Op;
    use ndarray::Array4;

    fn lcg(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (((i as u32)
                    .wrapping_mul(2654435761)
                    .wrapping_add(seed * 7919))
                    % 2000) as f32
                    / 1000.0
                    - 1.0
            })
            .collect()
    }

    /// cut [3,3,3] → pointwise 4 + ReLU6 → depthwise 3x3 → Add(cut-shaped? no: pointwise back
    /// to 3) + cut → ReLU → GAP → classifier.
    fn tiny() -> Net {
        let conv =
            |name: &str, input: usize, co: usize, ci: usize, k: usize, group: usize, s: u32| Op {
                name: name.into(),
                kind: OpKind::Conv {
                    w: Array4::from_shape_vec((co, ci, k, k), lcg(co * ci * k * k, s)).unwrap(),
                    b: Array1::from(lcg(co, s + 1)),
                    group,
                    pads: [k / 2; 4],
                    stride: 1,
                },
                inputs: vec![input],
            };
        let ops = vec![
            conv("e", 0, 4, 3, 1, 1, 1),
            Op {
                name: "e6".into(),
                kind: OpKind::Relu6,
                inputs: vec![1],
            },
            conv("d", 2, 4, 1, 3, 4, 2),
            conv("p", 3, 3, 4, 1, 1, 3),
            Op {
                name: "a".into(),
                kind: OpKind::Add,
                inputs: vec![4, 0],
            },
            conv("h", 5, 5, 3, 1, 1, 4),
            Op {
                name: "h0".into(),
                kind: OpKind::Relu,
                inputs: vec![6],
            },
        ];
        let block = TopBlock {
            backbone: "t".into(),
            sha256: String::new(),
            cut: "c".into(),
            input: [3, 3, 3],
            ops,
        };
        let cw = Array2::from_shape_vec((2, 5), lcg(10, 9)).unwrap();
        Net::new(&block, &cw, &Array1::from(vec![0.1, -0.1])).unwrap()
    }

    /// Every parameter's gradient against central finite differences of the loss.
    #[test]
    fn gradients_match_finite_differences() {
        let mut net = tiny();
        let x = lcg(2 * 9 * 3, 5)
            .iter()
            .map(|v| 3.0 * v)
            .collect::<Vec<_>>();
        let y = [0usize, 1];
        let loss_of = |net: &Net| -> f64 {
            let t = net.forward_block(x.clone(), 2, false);
            net.loss(&net.logits(&t.features, 2), &y).0
        };
        net.zero_grad();
        let t = net.forward_block(x.clone(), 2, true);
        let (_, g) = net.loss(&net.logits(&t.features, 2), &y);
        net.backward(&t, &g, true);
        let mut analytic: Vec<Vec<f32>> =
            net.block_params().iter().map(|p| p.grad.clone()).collect();
        analytic.push(net.cls_w.grad.clone());
        let n_params = analytic.len();
        for (pi, grads) in analytic.iter().enumerate() {
            for (j, &a) in grads.iter().enumerate() {
                let eps = 1e-3f32;
                let shifted = |d: f32| {
                    let mut m = net.clone();
                    let p: &mut Param = if pi + 1 == n_params {
                        &mut m.cls_w
                    } else {
                        m.block_params().into_iter().nth(pi).unwrap()
                    };
                    p.value[j] += d;
                    loss_of(&m)
                };
                let fd = (shifted(eps) - shifted(-eps)) / (2.0 * eps as f64);
                let a = a as f64;
                assert!(
                    (fd - a).abs() < 2e-3 * (1.0 + fd.abs()),
                    "param {pi}[{j}]: finite difference {fd}, backward {a}"
                );
            }
        }
    }
}
