//! A pretrained ONNX network run in tract, cut at any node, turning one preprocessed image into
//! a feature vector ("CNN code").
//!
//! Loading verifies the file (present, non-empty, sha256 against the registry or
//! `models/manifest.json`, decodable ONNX), resolves the cut (a registry cut name, a raw ONNX
//! tensor/node name, or a structural form), makes the cut tensor the only output, fixes the
//! input to f32 `[1,3,S,S]` (or `[1,S,S,3]`), optimises and plans it. A spatial cut is reduced to
//! a vector in Rust by avg / max pooling over the spatial axes, or flattened.
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
use sha2::{Digest, Sha256};
use tract_onnx::pb::{self, tensor_shape_proto, type_proto};
use tract_onnx::prelude::*;

use crate::registry::ModelEntry;
use crate::spec::{Layout, Pooling, Preprocess};

type Plan = Arc<TypedRunnableModel>;

/// A loaded, cut and optimised backbone. `Send + Sync`: share one across rayon threads.
pub struct Backbone {
    name: String,
    sha256: String,
    layer: String,
    node: String,
    pool: Pooling,
    preprocess: Preprocess,
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
    dim: usize,
    load_time: Duration,
    plan: Plan,
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
    /// node/tensor name; `None` = the entry's default cut).
    pub fn load(
        entry: &ModelEntry,
        models_dir: &Path,
        layer: Option<&str>,
        pool: Pooling,
    ) -> Result<Backbone> {
        let t0 = Instant::now();
        let path = entry.path(models_dir);
        let (proto, sha256) = read_verified(entry, models_dir)?;
        let graph = graph_of(&proto, &path)?;
        let layer = layer.unwrap_or(&entry.default_cut).to_string();
        let node = resolve_layer(entry, graph, &layer, &path)?;
        let input_shape = input_shape(&entry.preprocess);
        check_declared_input(entry, graph, &input_shape, &path)?;

        let mut model = onnx()
            .model_for_proto_model(&proto)
            .with_context(|| format!("tract cannot load {}", path.display()))?;
        if model.input_outlets()?.len() != 1 {
            bail!(
                "{}: expected one image input, the graph has {}",
                path.display(),
                model.input_outlets()?.len()
            );
        }
        model
            .select_outputs_by_name([node.as_str()])
            .with_context(|| format!("{}: cannot cut at {node}", path.display()))?;
        model.set_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), &input_shape))?;
        let typed = optimize(model).with_context(|| {
            format!(
                "{} cannot run on input {:?} cut at {node} (input size the model cannot take?)",
                entry.name, input_shape
            )
        })?;
        let output_shape: Vec<usize> = typed
            .output_fact(0)?
            .shape
            .as_concrete()
            .ok_or_else(|| anyhow!("{}: output of {node} has no concrete shape", entry.name))?
            .to_vec();
        let dim = pooled_dim(&output_shape, entry.preprocess.layout, pool);
        if dim == 0 {
            bail!(
                "{}: cut {node} has an empty output {:?}",
                entry.name,
                output_shape
            );
        }
        let plan = typed.into_runnable()?;
        Ok(Backbone {
            name: entry.name.clone(),
            sha256,
            layer,
            node,
            pool,
            preprocess: entry.preprocess.clone(),
            input_shape,
            output_shape,
            dim,
            load_time: t0.elapsed(),
            plan,
        })
    }

    /// The full model's class scores: the entry's `logits` tensor, else the graph's first output.
    pub fn load_logits(entry: &ModelEntry, models_dir: &Path) -> Result<Backbone> {
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
        Backbone::load(entry, models_dir, Some(&layer), Pooling::Flatten)
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    /// sha256 of the ONNX file actually loaded.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    /// The requested layer (registry cut name or raw node name).
    pub fn layer(&self) -> &str {
        &self.layer
    }
    /// The ONNX tensor the graph is cut at.
    pub fn node(&self) -> &str {
        &self.node
    }
    pub fn pool(&self) -> Pooling {
        self.pool
    }
    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }
    /// Length of the vectors `encode` returns.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Input tensor shape (batch 1).
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }
    /// Shape of the cut tensor before pooling.
    pub fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }
    /// Wall time of `load` (read, verify, parse, cut, optimise, plan).
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// One preprocessed image `[1,3,S,S]` (NCHW) or `[1,S,S,3]` (NHWC) → feature vector.
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
            .with_context(|| format!("running {} cut at {}", self.name, self.node))?;
        let view = out[0].to_plain_array_view::<f32>()?;
        let v = pool_output(view, self.preprocess.layout, self.pool);
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

/// The verified ONNX model of `entry` (sha256 checked as for [`Backbone::load`]) and the tensor
/// `layer` resolves to: what `tlearn export` copies the backbone's graph from.
pub fn proto_and_cut(
    entry: &ModelEntry,
    models_dir: &Path,
    layer: &str,
) -> Result<(pb::ModelProto, String)> {
    let path = entry.path(models_dir);
    let (proto, _) = read_verified(entry, models_dir)?;
    let node = resolve_layer(entry, graph_of(&proto, &path)?, layer, &path)?;
    Ok((proto, node))
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

/// tract's declutter and optimisation, with tlearn's convolution operators swapped in between
/// ([`crate::rewrite`]; `TLEARN_OPS` chooses which).
fn optimize(model: InferenceModel) -> Result<TypedModel> {
    let ops = crate::rewrite::Ops::from_env()?;
    let mut typed = model.into_typed()?.into_decluttered()?;
    crate::rewrite::apply(&mut typed, ops)?;
    typed.into_optimized()
}

fn input_shape(p: &Preprocess) -> Vec<usize> {
    let s = p.crop as usize;
    match p.layout {
        Layout::Nchw => vec![1, 3, s, s],
        Layout::Nhwc => vec![1, s, s, 3],
    }
}

fn graph_of<'a>(proto: &'a pb::ModelProto, path: &Path) -> Result<&'a pb::GraphProto> {
    match &proto.graph {
        Some(g) if !g.node.is_empty() => Ok(g),
        _ => bail!(
            "{}: not an ONNX model (no graph nodes; corrupt file?)",
            path.display()
        ),
    }
}

/// The ONNX input's declared shape must agree with the registry's input size where it is fixed.
fn check_declared_input(
    entry: &ModelEntry,
    graph: &pb::GraphProto,
    want: &[usize],
    path: &Path,
) -> Result<()> {
    let inits: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let Some(input) = graph
        .input
        .iter()
        .find(|i| !inits.contains(i.name.as_str()))
    else {
        bail!("{}: graph has no image input", path.display());
    };
    let Some(type_proto::Value::TensorType(tt)) =
        input.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Ok(());
    };
    let Some(shape) = &tt.shape else {
        return Ok(());
    };
    let dims: Vec<Option<i64>> = shape
        .dim
        .iter()
        .map(|d| match d.value {
            Some(tensor_shape_proto::dimension::Value::DimValue(v)) if v > 0 => Some(v),
            _ => None,
        })
        .collect();
    let show = |d: &[Option<i64>]| {
        d.iter()
            .map(|x| x.map(|v| v.to_string()).unwrap_or_else(|| "?".into()))
            .collect::<Vec<_>>()
            .join(",")
    };
    let bad = dims.len() != want.len()
        || dims
            .iter()
            .zip(want)
            .skip(1)
            .any(|(d, &w)| d.is_some_and(|d| d as usize != w));
    if bad {
        bail!(
            "{} cannot take input {:?}: its input '{}' is declared [{}] (crop {} / layout {:?} in the registry entry do not fit this model)",
            entry.name,
            want,
            input.name,
            show(&dims),
            entry.preprocess.crop,
            entry.preprocess.layout
        );
    }
    Ok(())
}

/// Registry cut name → node spec → ONNX tensor name; else the layer is itself a node spec.
fn resolve_layer(
    entry: &ModelEntry,
    graph: &pb::GraphProto,
    layer: &str,
    path: &Path,
) -> Result<String> {
    let spec = entry.cut(layer).map(|c| c.node.as_str()).unwrap_or(layer);
    resolve_node(graph, spec).map_err(|e| {
        let cuts: Vec<&str> = entry.cuts.iter().map(|c| c.name.as_str()).collect();
        let tensors: Vec<&str> = graph
            .node
            .iter()
            .rev()
            .filter_map(|n| n.output.first().map(|s| s.as_str()))
            .take(6)
            .collect();
        anyhow!(
            "{} ({}): unknown cut '{layer}': {e}. Registry cuts: [{}]; some node outputs: [{}]; \
             `tlearn layers {}` lists them all",
            entry.name,
            path.display(),
            cuts.join(", "),
            tensors.join(", "),
            entry.name
        )
    })
}

/// A node spec (tensor name, node name or structural form) → ONNX tensor name.
pub fn resolve_node(graph: &pb::GraphProto, spec: &str) -> Result<String> {
    if spec == "@classifier_input" {
        return classifier_input(graph);
    }
    if let Some(rest) = spec.strip_prefix("@last:") {
        let (op, k) = match rest.split_once(':') {
            Some((op, k)) => (
                op,
                k.parse::<usize>()
                    .ok()
                    .filter(|&k| k >= 1)
                    .ok_or_else(|| anyhow!("bad index in {spec} (want @last:OP:K, K >= 1)"))?,
            ),
            None => (rest, 1),
        };
        let hits: Vec<&pb::NodeProto> = graph.node.iter().filter(|n| n.op_type == op).collect();
        return hits
            .len()
            .checked_sub(k)
            .and_then(|i| hits[i].output.first().cloned())
            .ok_or_else(|| anyhow!("{spec}: the graph has {} {op} nodes", hits.len()));
    }
    if graph
        .node
        .iter()
        .any(|n| n.output.iter().any(|o| o == spec))
    {
        return Ok(spec.to_string());
    }
    if let Some(n) = graph.node.iter().find(|n| n.name == spec) {
        if let Some(o) = n.output.first() {
            return Ok(o.clone());
        }
    }
    bail!("no node or tensor named '{spec}'")
}

fn classifier_input(graph: &pb::GraphProto) -> Result<String> {
    const PASSIVE: &[&str] = &[
        "Softmax",
        "LogSoftmax",
        "Reshape",
        "Flatten",
        "Dropout",
        "Identity",
        "Squeeze",
        "Relu",
        "GlobalAveragePool",
        "AveragePool",
    ];
    let producer: HashMap<&str, &pb::NodeProto> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
        .collect();
    let mut t = graph
        .output
        .first()
        .map(|o| o.name.as_str())
        .ok_or_else(|| anyhow!("@classifier_input: graph has no output"))?;
    for _ in 0..64 {
        let n = producer
            .get(t)
            .ok_or_else(|| anyhow!("@classifier_input: {t} has no producing node"))?;
        match n.op_type.as_str() {
            "Gemm" | "MatMul" | "Conv" => {
                return n
                    .input
                    .first()
                    .cloned()
                    .ok_or_else(|| anyhow!("@classifier_input: {} has no input", n.name))
            }
            op if PASSIVE.contains(&op) => {
                t = n
                    .input
                    .first()
                    .map(|s| s.as_str())
                    .ok_or_else(|| anyhow!("@classifier_input: {} has no input", n.name))?
            }
            op => bail!(
                "@classifier_input: reached a {op} node ({}) before any classifier",
                n.name
            ),
        }
    }
    bail!("@classifier_input: no classifier within 64 nodes of the output")
}

/// Read the ONNX file, check its sha256 (registry pin, else `manifest.json`), decode it.
fn read_verified(entry: &ModelEntry, models_dir: &Path) -> Result<(pb::ModelProto, String)> {
    let path = entry.path(models_dir);
    let bytes = std::fs::read(&path).with_context(|| {
        if entry.source.kind == "local" {
            format!("cannot read model file {}", path.display())
        } else {
            format!(
                "cannot read model file {} for {} (run `make models MODELS={}`?)",
                path.display(),
                entry.name,
                entry.name
            )
        }
    })?;
    if bytes.is_empty() {
        bail!(
            "model file {} is empty (0 bytes); delete it and re-fetch",
            path.display()
        );
    }
    let sha = hex::encode(Sha256::digest(&bytes));
    let want = if entry.sha256.is_empty() {
        manifest_sha(models_dir, &entry.name)
    } else {
        Some(entry.sha256.to_lowercase())
    };
    if let Some(want) = want {
        if want != sha {
            bail!(
                "sha256 mismatch for {} ({}): expected {want}, file has {sha}; \
                 refusing it (delete it and run `make models MODELS={}`)",
                path.display(),
                entry.name,
                entry.name
            );
        }
    }
    let proto = onnx().proto_model_for_read(&mut &bytes[..]).map_err(|e| {
        anyhow!(
            "{}: not a valid ONNX file (truncated or corrupt?): {e}",
            path.display()
        )
    })?;
    Ok((proto, sha))
}

fn manifest_sha(models_dir: &Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(models_dir.join("manifest.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get(name)?
        .get("sha256")?
        .as_str()
        .map(|s| s.to_lowercase())
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
