//! Where a backbone is cut: a registry cut name, a raw ONNX tensor/node name, or a structural
//! form (`@classifier_input`, `@last:OP[:K]`) resolved on the ONNX graph; and the check that
//! the graph's declared input agrees with the registry's input size.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use tract_onnx::pb::{self, tensor_shape_proto, type_proto};

use super::verify::read_verified;
use crate::registry::ModelEntry;

pub(super) fn graph_of<'a>(proto: &'a pb::ModelProto, path: &Path) -> Result<&'a pb::GraphProto> {
    match &proto.graph {
        Some(g) if !g.node.is_empty() => Ok(g),
        _ => bail!(
            "{}: not an ONNX model (no graph nodes; corrupt file?)",
            path.display()
        ),
    }
}

/// The verified ONNX model of `entry` (sha256 checked as for [`super::Backbone::load`]) and the tensor
/// `layer` resolves to: what `tlearn export` copies the backbone's graph from.
pub fn proto_and_cut(
    entry: &ModelEntry,
    models_dir: &Path,
    layer: &str,
) -> Result<(pb::ModelProto, String)> {
    proto_cut_and_sha(entry, models_dir, layer).map(|(proto, node, _)| (proto, node))
}

/// [`proto_and_cut`] and the file's verified sha256 (what the fine-tuning head records).
pub fn proto_cut_and_sha(
    entry: &ModelEntry,
    models_dir: &Path,
    layer: &str,
) -> Result<(pb::ModelProto, String, String)> {
    let path = entry.path(models_dir);
    let (proto, sha) = read_verified(entry, models_dir)?;
    let node = resolve_layer(entry, graph_of(&proto, &path)?, layer, &path)?;
    Ok((proto, node, sha))
}

/// The ONNX input's declared shape must agree with the registry's input size where it is fixed.
pub(super) fn check_declared_input(
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

/// Registry cut name → node spec → ONNX tensor name; else the layer is itself a node spec (a
/// grid suffix `@KxK` set aside).
pub(super) fn resolve_layer(
    entry: &ModelEntry,
    graph: &pb::GraphProto,
    layer: &str,
    path: &Path,
) -> Result<String> {
    // `NAME@KxK` is cut NAME pooled on a grid (`crate::grid`), unless the registry names it.
    let spec = match entry.cut(layer) {
        Some(c) => c.node.as_str(),
        None => {
            let base = crate::grid::split_grid(layer)?.0;
            entry.cut(base).map(|c| c.node.as_str()).unwrap_or(base)
        }
    };
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
