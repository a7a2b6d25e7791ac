//! A pretrained ONNX network run in tract, cut at any node, turning one preprocessed image into
//! a feature vector ("CNN code").
//!
//! Loading verifies the file ([`verify`]: present, non-empty, sha256 against the registry or
//! `models/manifest.json`, decodable ONNX), resolves the cut ([`cut`]: a registry cut name, a
//! raw ONNX tensor/node name, or a structural form), makes the cut tensor the only output, fixes the
//! input to f32 `[1,3,S,S]` (or `[1,S,S,3]`), optimises and plans it. A spatial cut is reduced to
//! a vector in Rust by avg / max pooling over the spatial axes, or flattened; a cut named
//! `NAME@KxK` is pooled over a K×K grid of cells ([`crate::grid`]).
//!
//! Structural cut forms (valid for any export of an architecture, whatever its node names):
//! - `@classifier_input`: the tensor entering the final classifier (Gemm, MatMul or Conv), found by
//!   walking back from the graph's first output over Softmax, LogSoftmax, Reshape, Flatten,
//!   Dropout, Identity, Squeeze, Relu and (global) average pooling;
//! - `@last:OP` / `@last:OP:K`: output of the K-th last (default 1) ONNX node of type OP.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tract_onnx::prelude::*;

mod cut;
mod verify;

use cut::{check_declared_input, graph_of, resolve_layer};
pub use cut::{proto_and_cut, proto_cut_and_sha, resolve_node};
use verify::read_verified;

use crate::registry::ModelEntry;
use crate::spec::{Layout, Pooling, Preprocess};
pub use tlearn_ops::Ops;
use tlearn_ops::TlearnOps;

type Plan = Arc<TypedRunnableModel>;

/// A loaded, cut and optimised backbone. `Send + Sync`: share one across rayon threads.
pub struct Backbone {
    name: String,
    sha256: String,
    /// The requested cut, or several joined by `tlearn_cache::set::CUT_SEPARATOR`.
    layer: String,
    /// One per requested cut, in order: its pooled vector is that part of `encode`'s output.
    cuts: Vec<CutOutput>,
    pool: Pooling,
    preprocess: Preprocess,
    input_shape: Vec<usize>,
    dim: usize,
    load_time: Duration,
    plan: Plan,
}

/// One cut of a loaded backbone.
#[derive(Debug, Clone, PartialEq)]
pub struct CutOutput {
    /// As requested (registry cut name or node spec).
    pub layer: String,
    /// The ONNX tensor.
    pub node: String,
    /// Which output of the plan (two cuts on one tensor share it).
    output: usize,
    /// Shape of the tensor before pooling.
    pub shape: Vec<usize>,
    /// Length of its pooled vector.
    pub dim: usize,
    /// `Some(K)` for a `NAME@KxK` cut: pooled over a K×K grid ([`crate::grid`]).
    pub grid: Option<usize>,
}

/// How a backbone is loaded (the defaults: every tlearn operator).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackboneOptions {
    /// Which of tlearn's operators replace tract's (the `tlearn_ops` transform of
    /// `tlearn-ops`, [`TlearnOps`]).
    pub ops: Ops,
}

/// One row of `tlearn layers`.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerInfo {
    /// ONNX tensor name (what `--layer` takes).
    pub name: String,
    /// ONNX node name (may be empty).
    pub node: String,
    /// ONNX op type.
    pub op: String,
    /// Output shape for the registry input size, when tract could infer it.
    pub shape: Option<Vec<usize>>,
    /// Registry cut names resolving to this tensor.
    pub cuts: Vec<String>,
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Backbone>();
};

impl Backbone {
    /// Load `entry` from `models_dir`, cut at `layer` (a registry cut name or any raw ONNX
    /// node/tensor name; `None` = the entry's default cut), with the default
    /// [`BackboneOptions`].
    pub fn load(
        entry: &ModelEntry,
        models_dir: &Path,
        layer: Option<&str>,
        pool: Pooling,
    ) -> Result<Backbone> {
        Backbone::load_with(entry, models_dir, layer, pool, &BackboneOptions::default())
    }

    /// [`Backbone::load`] with explicit options.
    pub fn load_with(
        entry: &ModelEntry,
        models_dir: &Path,
        layer: Option<&str>,
        pool: Pooling,
        options: &BackboneOptions,
    ) -> Result<Backbone> {
        let layer = layer.unwrap_or(&entry.default_cut).to_string();
        Backbone::load_cuts(entry, models_dir, &[layer], pool, options)
    }

    /// Load `entry` cut at every layer of `layers` at once (one graph whose outputs are the
    /// cut tensors): [`Backbone::encode`] returns their pooled vectors side by side, in order,
    /// from one forward pass; [`Backbone::cuts`] says where each lies.
    pub fn load_cuts(
        entry: &ModelEntry,
        models_dir: &Path,
        layers: &[String],
        pool: Pooling,
        options: &BackboneOptions,
    ) -> Result<Backbone> {
        let t0 = Instant::now();
        if layers.is_empty() {
            bail!("{}: no cut requested", entry.name);
        }
        for (i, l) in layers.iter().enumerate() {
            if layers[..i].contains(l) {
                bail!("{}: cut '{l}' is requested twice", entry.name);
            }
        }
        let path = entry.path(models_dir);
        let (proto, sha256) = read_verified(entry, models_dir)?;
        let graph = graph_of(&proto, &path)?;
        let mut nodes: Vec<String> = vec![];
        let mut outputs = Vec::with_capacity(layers.len());
        let mut grids = Vec::with_capacity(layers.len());
        for l in layers {
            grids.push(crate::grid::split_grid(l)?.1);
            let node = resolve_layer(entry, graph, l, &path)?;
            outputs.push(match nodes.iter().position(|n| *n == node) {
                Some(i) => i,
                None => {
                    nodes.push(node);
                    nodes.len() - 1
                }
            });
        }
        let input_shape = input_shape(&entry.preprocess);
        check_declared_input(entry, graph, &input_shape, &path)?;

        let mut model = onnx()
            .model_for_proto_model(&proto)
            .with_context(|| format!("tract cannot load {}", path.display()))?;
        // The parsed file holds a copy of every weight and is not needed past this point: freed
        // before tract's optimisation makes its own copies. (Measured: no change in Lite0's
        // peak RSS within run-to-run noise; kept since holding it has no use.)
        drop(proto);
        if model.input_outlets()?.len() != 1 {
            bail!(
                "{}: expected one image input, the graph has {}",
                path.display(),
                model.input_outlets()?.len()
            );
        }
        let shown = nodes.join(", ");
        model
            .select_outputs_by_name(&nodes)
            .with_context(|| format!("{}: cannot cut at {shown}", path.display()))?;
        model.set_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), &input_shape))?;
        let typed = optimize(model, options.ops).with_context(|| {
            format!(
                "{} cannot run on input {:?} cut at {shown} (input size the model cannot take?)",
                entry.name, input_shape
            )
        })?;
        let mut cuts = Vec::with_capacity(layers.len());
        for ((l, &output), &grid) in layers.iter().zip(&outputs).zip(&grids) {
            let node = &nodes[output];
            let shape: Vec<usize> = typed
                .output_fact(output)?
                .shape
                .as_concrete()
                .ok_or_else(|| anyhow!("{}: output of {node} has no concrete shape", entry.name))?
                .to_vec();
            let dim = match grid {
                Some(k) => {
                    crate::grid::check(l, &shape, entry.preprocess.layout, pool, k)?;
                    crate::grid::grid_dim(&shape, entry.preprocess.layout, k)
                }
                None => pooled_dim(&shape, entry.preprocess.layout, pool),
            };
            if dim == 0 {
                bail!("{}: cut {node} has an empty output {:?}", entry.name, shape);
            }
            cuts.push(CutOutput {
                layer: l.clone(),
                node: node.clone(),
                output,
                shape,
                dim,
                grid,
            });
        }
        let plan = typed.into_runnable()?;
        Ok(Backbone {
            name: entry.name.clone(),
            sha256,
            layer: tlearn_cache::set::set_layer(layers),
            dim: cuts.iter().map(|c| c.dim).sum(),
            cuts,
            pool,
            preprocess: entry.preprocess.clone(),
            input_shape,
            load_time: t0.elapsed(),
            plan,
        })
    }

    /// The full model's class scores: the entry's `logits` tensor, else the graph's first output.
    pub fn load_logits(
        entry: &ModelEntry,
        models_dir: &Path,
        options: &BackboneOptions,
    ) -> Result<Backbone> {
        let layer = match &entry.logits {
            Some(l) => l.clone(),
            None => {
                let (proto, _) = read_verified(entry, models_dir)?;
                let g = graph_of(&proto, &entry.path(models_dir))?;
                g.output
                    .first()
                    .map(|o| o.name.clone())
                    .ok_or_else(|| anyhow!("{}: graph has no output", entry.name))?
            }
        };
        Backbone::load_with(entry, models_dir, Some(&layer), Pooling::Flatten, options)
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    /// sha256 of the ONNX file actually loaded.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    /// The requested layer (registry cut name or raw node name); several cuts joined by
    /// `tlearn_cache::set::CUT_SEPARATOR`.
    pub fn layer(&self) -> &str {
        &self.layer
    }
    /// The ONNX tensor the graph is cut at (the first cut's).
    pub fn node(&self) -> &str {
        &self.cuts[0].node
    }
    /// Every cut, in the order of `encode`'s output.
    pub fn cuts(&self) -> &[CutOutput] {
        &self.cuts
    }
    pub fn pool(&self) -> Pooling {
        self.pool
    }
    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }
    /// Length of the vectors `encode` returns (the cuts' dims summed).
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Input tensor shape (batch 1).
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }
    /// Shape of the (first) cut tensor before pooling.
    pub fn output_shape(&self) -> &[usize] {
        &self.cuts[0].shape
    }
    /// Wall time of `load` (read, verify, parse, cut, optimise, plan).
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// One preprocessed image `[1,3,S,S]` (NCHW) or `[1,S,S,3]` (NHWC) → feature vector (the
    /// cuts' pooled vectors side by side).
    pub fn encode(&self, input: Tensor) -> Result<Vec<f32>> {
        if input.datum_type() != f32::datum_type() {
            bail!(
                "{}: input must be f32, got {:?}",
                self.name,
                input.datum_type()
            );
        }
        if input.shape() != self.input_shape.as_slice() {
            bail!(
                "{}: input shape {:?}, expected {:?}",
                self.name,
                input.shape(),
                self.input_shape
            );
        }
        let out = self
            .plan
            .run(tvec!(input.into()))
            .with_context(|| format!("running {} cut at {}", self.name, self.layer))?;
        let mut v = Vec::with_capacity(self.dim);
        for c in &self.cuts {
            let view = out[c.output].to_plain_array_view::<f32>()?;
            match c.grid {
                Some(k) => v.extend(crate::grid::grid_pool(
                    view,
                    self.preprocess.layout,
                    self.pool,
                    k,
                )),
                None => v.extend(pool_output(view, self.preprocess.layout, self.pool)),
            }
        }
        debug_assert_eq!(v.len(), self.dim);
        Ok(v)
    }

    /// A batch `[n, ...]` → n vectors (runs the batch-1 plan per row).
    pub fn encode_batch(&self, input: Tensor) -> Result<Vec<Vec<f32>>> {
        let shape = input.shape().to_vec();
        if shape.len() != self.input_shape.len() || shape[1..] != self.input_shape[1..] {
            bail!(
                "{}: batch shape {:?}, expected [n, {:?}]",
                self.name,
                shape,
                &self.input_shape[1..]
            );
        }
        (0..shape[0])
            .map(|i| self.encode(input.slice(0, i, i + 1)?))
            .collect()
    }
}

/// Nodes of `entry`'s graph with op and output shape (for the entry's input size).
pub fn list_layers(entry: &ModelEntry, models_dir: &Path) -> Result<Vec<LayerInfo>> {
    let path = entry.path(models_dir);
    let (proto, _) = read_verified(entry, models_dir)?;
    let graph = graph_of(&proto, &path)?;
    let mut cut_of: HashMap<String, Vec<String>> = HashMap::new();
    for c in &entry.cuts {
        if let Ok(t) = resolve_node(graph, &c.node) {
            cut_of.entry(t).or_default().push(c.name.clone());
        }
    }
    let mut model = onnx()
        .model_for_proto_model(&proto)
        .with_context(|| format!("tract cannot load {}", path.display()))?;
    let shape = input_shape(&entry.preprocess);
    if model.input_outlets()?.len() == 1 {
        model.set_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), &shape))?;
    }
    // Best effort: shapes stay unknown where tract cannot infer them.
    let _ = model.analyse(false);
    let mut rows = vec![];
    for n in &graph.node {
        for out in n.output.iter().filter(|o| !o.is_empty()) {
            let shape = model
                .find_outlet_label(out)
                .and_then(|o| model.outlet_fact(o).ok())
                .and_then(|f| f.shape.as_concrete_finite().ok().flatten())
                .map(|s| s.to_vec());
            rows.push(LayerInfo {
                name: out.clone(),
                node: n.name.clone(),
                op: n.op_type.clone(),
                shape,
                cuts: cut_of.get(out).cloned().unwrap_or_default(),
            });
        }
    }
    Ok(rows)
}

/// Feature length for an output shape under `pool`.
pub fn pooled_dim(shape: &[usize], layout: Layout, pool: Pooling) -> usize {
    match (shape.len(), pool) {
        (0, _) => 1,
        (1, _) => shape[0],
        (2, _) | (_, Pooling::Flatten) => shape[1..].iter().product(),
        (_, _) => match layout {
            Layout::Nchw => shape[1],
            Layout::Nhwc => shape[shape.len() - 1],
        },
    }
}

/// Reduce one output `[1, ...]` to a vector: rank ≤ 2 or `Flatten` → row-major values; else
/// avg/max over every axis but batch and channel (axis 1 for NCHW, last for NHWC).
pub fn pool_output(
    view: tract_ndarray::ArrayViewD<f32>,
    layout: Layout,
    pool: Pooling,
) -> Vec<f32> {
    let shape = view.shape().to_vec();
    if shape.len() <= 2 || pool == Pooling::Flatten {
        return view.iter().copied().collect();
    }
    let c_axis = match layout {
        Layout::Nchw => 1,
        Layout::Nhwc => shape.len() - 1,
    };
    let channels = shape[c_axis];
    let batch0 = view.index_axis(tract_ndarray::Axis(0), 0);
    let c_in_batch = c_axis - 1;
    (0..channels)
        .map(|c| {
            let lane = batch0.index_axis(tract_ndarray::Axis(c_in_batch), c);
            match pool {
                Pooling::Avg => {
                    let n = lane.len().max(1) as f64;
                    (lane.iter().map(|&x| x as f64).sum::<f64>() / n) as f32
                }
                _ => lane.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            }
        })
        .collect()
}

/// tract's declutter and optimisation, with the `tlearn_ops` model transform ([`TlearnOps`]:
/// tlearn's convolution operators, as `ops` chooses) in between.
///
/// The declutter before the transform leaves out tract's `ChangeAxes` pass: on the full graph
/// it deep-copies constant weight tensors as it tries each axis change (perf: 15% of a
/// one-photo `tlearn extract`, and the largest part of loading a model), and it still runs in
/// `into_optimized`'s declutter after the transform, when tlearn's operators hold most weights.
/// Measured on Lite0 (`extract` of one 12-MP JPEG, 5 alternating runs): 0.14-0.18 s → 0.11-0.14
/// s; the codes of every cut of Lite0, Lite2, MobileNetV2 and SqueezeNet are byte-identical, and
/// the optimised plans have the same operators.
fn optimize(model: InferenceModel, ops: Ops) -> Result<TypedModel> {
    let mut typed = model.into_typed()?;
    let mut declutter = tract_onnx::tract_core::optim::Optimizer::declutter();
    declutter
        .passes
        .retain(|pass| !format!("{pass:?}").starts_with("ChangeAxes"));
    declutter.optimize(&mut typed)?;
    typed.transform(&TlearnOps(ops))?;
    typed.into_optimized()
}

fn input_shape(p: &Preprocess) -> Vec<usize> {
    let s = p.crop as usize;
    match p.layout {
        Layout::Nchw => vec![1, 3, s, s],
        Layout::Nhwc => vec![1, s, s, 3],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_ndarray::{ArrayD, IxDyn};

    #[test]
    fn pooling_reduces_spatial_axes() {
        // [1, 2, 2, 3] NCHW: channel 0 = 0..6, channel 1 = 6..12
        let a = ArrayD::from_shape_vec(IxDyn(&[1, 2, 2, 3]), (0..12).map(|x| x as f32).collect())
            .unwrap();
        assert_eq!(
            pool_output(a.view(), Layout::Nchw, Pooling::Avg),
            vec![2.5, 8.5]
        );
        assert_eq!(
            pool_output(a.view(), Layout::Nchw, Pooling::Max),
            vec![5.0, 11.0]
        );
        assert_eq!(
            pool_output(a.view(), Layout::Nchw, Pooling::Flatten).len(),
            12
        );
        // NHWC [1,2,2,3]: channel c = {c, c+3, c+6, c+9}
        assert_eq!(
            pool_output(a.view(), Layout::Nhwc, Pooling::Avg),
            vec![4.5, 5.5, 6.5]
        );
        assert_eq!(
            pooled_dim(&[1, 512, 14, 14], Layout::Nchw, Pooling::Avg),
            512
        );
        assert_eq!(
            pooled_dim(&[1, 512, 14, 14], Layout::Nchw, Pooling::Flatten),
            512 * 196
        );
        assert_eq!(
            pooled_dim(&[1, 14, 14, 512], Layout::Nhwc, Pooling::Max),
            512
        );
        assert_eq!(pooled_dim(&[1, 1280], Layout::Nchw, Pooling::Max), 1280);
    }
}
