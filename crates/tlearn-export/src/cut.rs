//! Cutting a backbone's ONNX graph at a tensor: keep only the nodes that tensor depends on (and
//! the initialisers they read), rename the image input, and append the pooling that turns the
//! cut tensor into the CNN code exactly as `tlearn_extract::backbone::pool_output` does.

use std::collections::{HashMap, HashSet};

use tlearn_extract::grid::cells;
use tlearn_extract::spec::{Layout, Pooling};
use tract_onnx::pb;

use crate::graph::{attr_int, attr_ints, Builder};
use crate::ExportError;

/// Every tensor name a node reads, including those read by its subgraphs (If/Loop/Scan bodies
/// may refer to outer-scope tensors).
fn node_reads(n: &pb::NodeProto, out: &mut Vec<String>) {
    out.extend(n.input.iter().filter(|s| !s.is_empty()).cloned());
    for a in &n.attribute {
        for g in a.g.iter().chain(a.graphs.iter()) {
            for m in &g.node {
                node_reads(m, out);
            }
        }
    }
}

/// Keep the nodes `target` depends on, in their original (topological) order; drop the other
/// nodes, initialisers, value infos and outputs; rename the single image input to `input_name`.
pub fn cut_graph(
    graph: &mut pb::GraphProto,
    target: &str,
    input_name: &str,
) -> Result<(), ExportError> {
    let inits: HashSet<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
    let images: Vec<String> = graph
        .input
        .iter()
        .filter(|i| !inits.contains(&i.name))
        .map(|i| i.name.clone())
        .collect();
    let [old_input] = images.as_slice() else {
        return Err(ExportError::Graph(format!(
            "expected one image input, the graph has {}: {images:?}",
            images.len()
        )));
    };
    let old_input = old_input.clone();
    let producer: HashMap<&str, usize> = graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let mut keep = vec![false; graph.node.len()];
    let mut needed: HashSet<String> = HashSet::new();
    let mut stack = vec![target.to_string()];
    while let Some(t) = stack.pop() {
        if !needed.insert(t.clone()) {
            continue;
        }
        if let Some(&i) = producer.get(t.as_str()) {
            if !keep[i] {
                keep[i] = true;
                let mut reads = Vec::new();
                node_reads(&graph.node[i], &mut reads);
                stack.extend(reads);
            }
        }
    }
    if !producer.contains_key(target) {
        return Err(ExportError::Graph(format!(
            "no node produces the cut tensor '{target}'"
        )));
    }
    if !needed.contains(&old_input) {
        return Err(ExportError::Graph(format!(
            "the cut tensor '{target}' does not depend on the image input '{old_input}'"
        )));
    }
    let clash =
        |name: &str| name != old_input && (producer.contains_key(name) || inits.contains(name));
    if clash(input_name) {
        return Err(ExportError::Graph(format!(
            "the backbone already has a tensor named '{input_name}'; cannot rename its input"
        )));
    }
    let mut i = 0;
    graph.node.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    graph.initializer.retain(|t| needed.contains(&t.name));
    graph
        .input
        .retain(|v| v.name == old_input || needed.contains(&v.name));
    graph.value_info.retain(|v| needed.contains(&v.name));
    graph.output.clear();
    rename(graph, &old_input, input_name);
    Ok(())
}

fn rename(graph: &mut pb::GraphProto, from: &str, to: &str) {
    for v in &mut graph.input {
        if v.name == from {
            v.name = to.to_string();
        }
    }
    for n in &mut graph.node {
        rename_in_node(n, from, to);
    }
}

fn rename_in_node(n: &mut pb::NodeProto, from: &str, to: &str) {
    for s in &mut n.input {
        if s == from {
            *s = to.to_string();
        }
    }
    for a in &mut n.attribute {
        for g in a.g.iter_mut().chain(a.graphs.iter_mut()) {
            for m in &mut g.node {
                rename_in_node(m, from, to);
            }
        }
    }
}

/// The nodes turning the cut tensor (of shape `shape`) into `[N, D]`, as the extractor pools:
/// rank ≤ 2 or `flatten` → row-major values; a `grid` of K×K cells → each channel's cell
/// averages, channel-major (`tlearn_extract::grid`); else average / max over every axis but
/// batch and channel (axis 1 for NCHW, the last for NHWC). Returns the pooled tensor's name.
pub fn pool_nodes(
    b: &mut Builder,
    cut: &str,
    shape: &[usize],
    layout: Layout,
    pool: Pooling,
    grid: Option<usize>,
) -> Result<String, ExportError> {
    let rank = shape.len();
    if rank == 0 {
        return Err(ExportError::Graph(format!(
            "the cut tensor '{cut}' is a scalar; cut at a node with a batch axis"
        )));
    }
    if rank <= 2 || pool == Pooling::Flatten {
        return Ok(b.node("Flatten", &[cut], vec![attr_int("axis", 1)]));
    }
    let nchw = match layout {
        Layout::Nchw => cut.to_string(),
        Layout::Nhwc => {
            let mut perm = vec![0i64, rank as i64 - 1];
            perm.extend(1..rank as i64 - 1);
            b.node("Transpose", &[cut], vec![attr_ints("perm", &perm)])
        }
    };
    if let Some(k) = grid {
        return grid_nodes(b, &nchw, shape, layout, pool, k);
    }
    let op = match pool {
        Pooling::Avg => "GlobalAveragePool",
        _ => "GlobalMaxPool",
    };
    let pooled = b.node(op, &[&nchw], vec![]);
    Ok(b.node("Flatten", &[&pooled], vec![attr_int("axis", 1)]))
}

/// Grid average pooling as one matrix product: the `[N, C, H·W]` map times a `[H·W, K·K]`
/// matrix whose column for a cell holds `1/|cell|` on the cell's positions (the same adaptive
/// cells as `tlearn_extract::grid::cells`), then `[N, C·K·K]`. Max over cells is not linear and
/// is refused.
fn grid_nodes(
    b: &mut Builder,
    nchw: &str,
    shape: &[usize],
    layout: Layout,
    pool: Pooling,
    k: usize,
) -> Result<String, ExportError> {
    if pool != Pooling::Avg {
        return Err(ExportError::Graph(format!(
            "grid pooling with --pool {pool} is not exported (only avg, a linear map, is); \
             retrain on a cache extracted with --pool avg"
        )));
    }
    let (c, h, w) = match layout {
        Layout::Nchw => (shape[1], shape[2], shape[3]),
        Layout::Nhwc => (shape[3], shape[1], shape[2]),
    };
    let (rows, cols) = (cells(h, k), cells(w, k));
    let mut m = vec![0f32; h * w * k * k];
    for (i, &(r0, r1)) in rows.iter().enumerate() {
        for (j, &(c0, c1)) in cols.iter().enumerate() {
            let weight = 1.0 / ((r1 - r0) * (c1 - c0)) as f32;
            for y in r0..r1 {
                for x in c0..c1 {
                    m[(y * w + x) * k * k + i * k + j] = weight;
                }
            }
        }
    }
    let flat_shape = b.constant_i64("grid_in_shape", &[3], vec![0, c as i64, (h * w) as i64]);
    let flat = b.node("Reshape", &[nchw, &flat_shape], vec![]);
    let weights = b.constant("grid_cells", &[h * w, k * k], m);
    let pooled = b.node("MatMul", &[&flat, &weights], vec![]);
    let out_shape = b.constant_i64("grid_out_shape", &[2], vec![0, (c * k * k) as i64]);
    Ok(b.node("Reshape", &[&pooled, &out_shape], vec![]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str, inputs: &[&str], out: &str) -> pb::NodeProto {
        pb::NodeProto {
            op_type: op.into(),
            name: out.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.into()],
            ..Default::default()
        }
    }

    fn graph() -> pb::GraphProto {
        // x -> a -> b -> logits;  w is read by b only; a side branch c hangs off a.
        pb::GraphProto {
            node: vec![
                node("Relu", &["x"], "a"),
                node("Mul", &["a", "w"], "b"),
                node("Relu", &["a"], "c"),
                node("Gemm", &["b", "v"], "logits"),
            ],
            initializer: ["w", "v"]
                .iter()
                .map(|n| pb::TensorProto {
                    name: n.to_string(),
                    ..Default::default()
                })
                .collect(),
            input: vec![crate::graph::value_info("x", &[])],
            output: vec![crate::graph::value_info("logits", &[])],
            ..Default::default()
        }
    }

    #[test]
    fn keeps_only_what_the_cut_depends_on_and_renames_the_input() {
        let mut g = graph();
        cut_graph(&mut g, "b", "image").unwrap();
        let ops: Vec<&str> = g.node.iter().map(|n| n.output[0].as_str()).collect();
        assert_eq!(ops, ["a", "b"]);
        assert_eq!(g.node[0].input, ["image"]);
        let inits: Vec<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(inits, ["w"]);
        assert_eq!(g.input.len(), 1);
        assert_eq!(g.input[0].name, "image");
        assert!(g.output.is_empty());
    }

    #[test]
    fn unknown_cut_and_name_clash_are_errors() {
        let e = cut_graph(&mut graph(), "nope", "image").unwrap_err();
        assert!(e.to_string().contains("'nope'"), "{e}");
        let e = cut_graph(&mut graph(), "b", "c").unwrap_err();
        assert!(
            e.to_string().contains("already has a tensor named 'c'"),
            "{e}"
        );
    }
}
