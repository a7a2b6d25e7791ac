//! The pretrained layers after a cut, read from the backbone's own ONNX file: every node on the
//! way from the cut tensor to the pooled bottleneck (`features`), as a small op list with its
//! weights. For EfficientNet-Lite0 cut at `stage6` that is the last MBConv block (1x1 expansion
//! and ReLU6, 3x3 depthwise and ReLU6, 1x1 projection) and the 1x1 head conv and ReLU6; for
//! MobileNetV2 at `stage6` its last inverted-residual block and head conv. Batch norm is already
//! folded into each conv by the converters (`models/convert_*.py`), so a conv's weight and bias
//! are all there is, and "frozen BN" is the folded form trained as it is.
//!
//! Supported operators: `Conv` (pointwise at stride 1, or depthwise with any kernel and
//! stride: the down-sampling block after Lite0's `stage5`), `Clip` (0, 6) and `Relu`, `Add` (a
//! residual), then `GlobalAveragePool` (+ `Flatten`) at the end. Anything else (a strided 1x1
//! conv, a dilated one, an attention block) is refused naming the node, and so is a cut whose
//! later layers read a tensor computed before the cut.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use ndarray::{Array1, Array4};
use tlearn_extract::backbone::proto_cut_and_sha;
use tlearn_extract::registry::ModelEntry;
use tract_onnx::pb;

/// One layer after the cut. Value 0 is the cut tensor; op `i` writes value `i + 1`.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    /// The ONNX tensor the op writes (`block15.expand.conv`): also the name of its parameters
    /// in the fine-tuned head's sidecar.
    pub name: String,
    pub kind: OpKind,
    /// Values read (indices into 0 = cut, i + 1 = output of op i).
    pub inputs: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OpKind {
    /// Convolution with `group` groups (1: pointwise 1x1; `cin`: depthwise), the same
    /// `stride` both ways (1 for a pointwise one). `w` is ONNX's `[cout, cin / group, k, k]`;
    /// `pads` are (top, left, bottom, right).
    Conv {
        w: Array4<f32>,
        b: Array1<f32>,
        group: usize,
        pads: [usize; 4],
        stride: usize,
    },
    /// min(max(x, 0), 6).
    Relu6,
    /// max(x, 0).
    Relu,
    /// Element-wise sum of the two inputs (a residual connection).
    Add,
}

/// A conv's weight, bias, group count and pads.
pub type ConvRef<'a> = (&'a Array4<f32>, &'a Array1<f32>, usize, [usize; 4]);

impl OpKind {
    pub fn conv(&self) -> Option<ConvRef<'_>> {
        match self {
            OpKind::Conv {
                w, b, group, pads, ..
            } => Some((w, b, *group, *pads)),
            _ => None,
        }
    }
}

/// The layers between a cut and the pooled bottleneck of one backbone, with the pretrained
/// weights: what the fine-tuning head starts from and what it must be given again to load.
#[derive(Debug, Clone, PartialEq)]
pub struct TopBlock {
    pub backbone: String,
    /// sha256 of the ONNX file the weights were read from.
    pub sha256: String,
    /// The cut the block starts at (a registry cut name, as in the cache's fingerprint).
    pub cut: String,
    /// Shape of one cut map, `[C, H, W]` (the cache's `--pool flatten` rows, channel-major).
    pub input: [usize; 3],
    pub ops: Vec<Op>,
}

impl TopBlock {
    /// Read the layers after cut `layer` of `entry`'s ONNX file (sha256 verified), for cut maps
    /// of `dim = C*H*W` values (square maps).
    pub fn read(
        entry: &ModelEntry,
        models_dir: &Path,
        layer: &str,
        dim: usize,
    ) -> Result<TopBlock> {
        let (proto, cut_tensor, sha256) = proto_cut_and_sha(entry, models_dir, layer)?;
        let path = entry.path(models_dir);
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| anyhow!("{}: no graph", path.display()))?;
        let end = entry
            .cut(&entry.default_cut)
            .map(|c| c.node.clone())
            .unwrap_or_else(|| entry.default_cut.clone());
        let ops = walk(graph, &cut_tensor, &end).with_context(|| {
            format!(
                "{} ({}): the layers after cut '{layer}'",
                entry.name,
                path.display()
            )
        })?;
        let Some(cin) = ops
            .iter()
            .find_map(|o| o.kind.conv().map(|(w, _, g, _)| w.shape()[1] * g))
        else {
            bail!(
                "{} ({}): no pretrained layer after cut '{layer}' to fine-tune (it is the bottleneck \
                 itself or its pooled map); cut earlier, e.g. `--layer stage6 --pool flatten`",
                entry.name,
                path.display()
            );
        };
        let hw = dim / cin;
        let side = (hw as f64).sqrt().round() as usize;
        if !dim.is_multiple_of(cin) || side * side != hw {
            bail!(
                "{} cut '{layer}': cached rows have {dim} values, not C*H*W of a square map with \
                 C = {cin} (extract with `--layer {layer} --pool flatten`)",
                entry.name
            );
        }
        let block = TopBlock {
            backbone: entry.name.clone(),
            sha256,
            cut: layer.to_string(),
            input: [cin, side, side],
            ops,
        };
        block
            .shapes()
            .with_context(|| format!("{} cut '{layer}'", entry.name))?;
        Ok(block)
    }

    /// `[C, H, W]` of every value (0 = the cut map), checking each op's input shapes.
    pub fn shapes(&self) -> Result<Vec<[usize; 3]>> {
        let mut s = vec![self.input];
        for op in &self.ops {
            let x = s[op.inputs[0]];
            let out = match &op.kind {
                OpKind::Conv {
                    w,
                    b,
                    group,
                    pads,
                    stride,
                } => {
                    let [co, ci, kh, kw] = [w.shape()[0], w.shape()[1], w.shape()[2], w.shape()[3]];
                    if *stride == 0 || (*stride > 1 && *group == 1) {
                        bail!(
                            "{}: stride {stride} (a depthwise conv may stride, a pointwise one \
                             only by 1)",
                            op.name
                        );
                    }
                    if ci * group != x[0] || co % group != 0 || b.len() != co {
                        bail!(
                            "{}: weight [{co},{ci},{kh},{kw}] (group {group}, bias {}) does not fit \
                             an input of {} channels",
                            op.name,
                            b.len(),
                            x[0]
                        );
                    }
                    let h = (x[1] + pads[0] + pads[2]).checked_sub(kh);
                    let wd = (x[2] + pads[1] + pads[3]).checked_sub(kw);
                    match (h, wd) {
                        (Some(h), Some(wd)) => [co, h / stride + 1, wd / stride + 1],
                        _ => bail!(
                            "{}: kernel {kh}x{kw} larger than its {}x{} input",
                            op.name,
                            x[1],
                            x[2]
                        ),
                    }
                }
                OpKind::Add => {
                    let y = s[op.inputs[1]];
                    if x != y {
                        bail!("{}: adds {x:?} to {y:?}", op.name);
                    }
                    x
                }
                OpKind::Relu6 | OpKind::Relu => x,
            };
            s.push(out);
        }
        Ok(s)
    }

    /// Channels of the pooled output (the bottleneck's dimension).
    pub fn features(&self) -> usize {
        self.shapes().map(|s| s.last().unwrap()[0]).unwrap_or(0)
    }

    /// Number of pretrained parameters (weights and biases of the convs).
    pub fn parameters(&self) -> usize {
        self.ops
            .iter()
            .filter_map(|o| o.kind.conv())
            .map(|(w, b, _, _)| w.len() + b.len())
            .sum()
    }
}

fn attr<'a>(n: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

/// A float initialiser's values and dims.
fn floats(t: &pb::TensorProto) -> Result<(Vec<usize>, Vec<f32>)> {
    if t.data_type != pb::tensor_proto::DataType::Float as i32 {
        bail!(
            "initialiser {} is not float32 (data type {})",
            t.name,
            t.data_type
        );
    }
    let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
    let n: usize = dims.iter().product();
    let v: Vec<f32> = if !t.raw_data.is_empty() {
        t.raw_data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        t.float_data.clone()
    };
    if v.len() != n {
        bail!(
            "initialiser {} holds {} values for dims {dims:?}",
            t.name,
            v.len()
        );
    }
    Ok((dims, v))
}

/// The nodes from tensor `cut` to tensor `end`, in graph order, as ops (the final global
/// average pool and flatten checked and left out).
fn walk(graph: &pb::GraphProto, cut: &str, end: &str) -> Result<Vec<Op>> {
    let inits: HashMap<&str, &pb::TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let producer: HashMap<&str, usize> = graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let mut keep: HashSet<usize> = HashSet::new();
    let mut stack = vec![end.to_string()];
    let mut seen = HashSet::new();
    while let Some(t) = stack.pop() {
        if t == cut || !seen.insert(t.clone()) || inits.contains_key(t.as_str()) {
            continue;
        }
        let Some(&i) = producer.get(t.as_str()) else {
            bail!("tensor '{t}' reaches '{end}' without passing through the cut '{cut}'");
        };
        keep.insert(i);
        stack.extend(
            graph.node[i]
                .input
                .iter()
                .filter(|s| !s.is_empty())
                .cloned(),
        );
    }
    if !seen.contains(cut)
        && !keep
            .iter()
            .any(|&i| graph.node[i].input.iter().any(|s| s == cut))
    {
        bail!(
            "'{end}' does not depend on the cut tensor '{cut}' (the cut is after the bottleneck?)"
        );
    }
    let mut order: Vec<usize> = keep.into_iter().collect();
    order.sort_unstable();
    let mut value: HashMap<String, usize> = HashMap::from([(cut.to_string(), 0)]);
    let mut ops = Vec::new();
    let mut pooled = false;
    for &i in &order {
        let n = &graph.node[i];
        let out = n.output.first().cloned().unwrap_or_default();
        let data_inputs: Vec<usize> = n
            .input
            .iter()
            .filter(|s| !s.is_empty() && !inits.contains_key(s.as_str()))
            .map(|s| {
                value.get(s).copied().ok_or_else(|| {
                    anyhow!(
                        "node {out} ({}) reads '{s}', which is not computed after the cut",
                        n.op_type
                    )
                })
            })
            .collect::<Result<_>>()?;
        if pooled {
            if n.op_type == "Flatten" || n.op_type == "Reshape" {
                value.insert(out, usize::MAX);
                continue;
            }
            bail!(
                "node {out} ({}) after the global average pool is not supported",
                n.op_type
            );
        }
        let kind = match n.op_type.as_str() {
            "Conv" => conv(n, &inits)?,
            "Clip" => clip(n, &inits)?,
            "Relu" => OpKind::Relu,
            "Add" if data_inputs.len() == 2 => OpKind::Add,
            "GlobalAveragePool" => {
                if i != *order.last().unwrap() && !order.iter().skip_while(|&&j| j != i).skip(1).all(|&j| matches!(graph.node[j].op_type.as_str(), "Flatten" | "Reshape")) {
                    bail!("node {out}: the global average pool is not the last layer");
                }
                pooled = true;
                value.insert(out, usize::MAX);
                continue;
            }
            other => bail!(
                "node {out}: operator {other} is not supported after a fine-tuning cut (Conv, Clip, \
                 Relu, Add, GlobalAveragePool are)"
            ),
        };
        if data_inputs.contains(&usize::MAX) {
            bail!("node {out} reads the pooled output");
        }
        value.insert(out.clone(), ops.len() + 1);
        ops.push(Op {
            name: out,
            kind,
            inputs: data_inputs,
        });
    }
    if !pooled {
        bail!("'{end}' is not a global average pool of the layers after the cut");
    }
    Ok(ops)
}

fn ints(n: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

fn conv(n: &pb::NodeProto, inits: &HashMap<&str, &pb::TensorProto>) -> Result<OpKind> {
    let name = n.output.first().map(String::as_str).unwrap_or("?");
    let weight =
        |k: usize| -> Result<(Vec<usize>, Vec<f32>)> {
            let t = n.input.get(k).and_then(|s| inits.get(s.as_str())).ok_or_else(|| {
            anyhow!("conv {name}: input {k} is not an initialiser (weights computed at run time)")
        })?;
            floats(t)
        };
    let (wd, wv) = weight(1)?;
    let [co, ci, kh, kw] = wd[..] else {
        bail!("conv {name}: weight dims {wd:?}, expected 4");
    };
    let b = if n.input.len() > 2 && !n.input[2].is_empty() {
        let (bd, bv) = weight(2)?;
        if bd != [co] {
            bail!("conv {name}: bias dims {bd:?} for {co} output channels");
        }
        bv
    } else {
        vec![0.0; co]
    };
    let strides = ints(n, "strides").unwrap_or_else(|| vec![1, 1]);
    let stride = match strides[..] {
        [s, t] if s == t && s >= 1 => s as usize,
        _ => bail!("conv {name}: strides {strides:?}; only the same stride both ways is supported"),
    };
    if ints(n, "dilations").is_some_and(|s| s.iter().any(|&v| v != 1)) {
        bail!("conv {name}: dilated convolutions are not supported");
    }
    if attr(n, "auto_pad").is_some_and(|a| !a.s.is_empty() && a.s != b"NOTSET") {
        bail!("conv {name}: auto_pad is not supported");
    }
    let group = attr(n, "group").map(|a| a.i).unwrap_or(1).max(1) as usize;
    let p = ints(n, "pads").unwrap_or_else(|| vec![0; 4]);
    let [t, l, bo, r] = p[..] else {
        bail!("conv {name}: pads {p:?}, expected 4 values");
    };
    let pads = [t, l, bo, r].map(|v| v.max(0) as usize);
    if !(group == 1 && kh == 1 && kw == 1 || group > 1 && ci == 1 && co == group) {
        bail!("conv {name}: only pointwise (1x1) and depthwise convolutions are supported (weight [{co},{ci},{kh},{kw}], group {group})");
    }
    if group == 1 && stride != 1 {
        bail!("conv {name}: a 1x1 convolution with stride {stride} is not supported (cut later)");
    }
    let w = Array4::from_shape_vec((co, ci, kh, kw), wv)?;
    Ok(OpKind::Conv {
        w,
        b: Array1::from(b),
        group,
        pads,
        stride,
    })
}

fn clip(n: &pb::NodeProto, inits: &HashMap<&str, &pb::TensorProto>) -> Result<OpKind> {
    let name = n.output.first().map(String::as_str).unwrap_or("?");
    let bound = |k: usize, a: &str| -> Result<Option<f32>> {
        if let Some(s) = n.input.get(k).filter(|s| !s.is_empty()) {
            let t = inits
                .get(s.as_str())
                .ok_or_else(|| anyhow!("clip {name}: bound '{s}' is not an initialiser"))?;
            return Ok(floats(t)?.1.first().copied());
        }
        Ok(attr(n, a).map(|a| a.f))
    };
    match (bound(1, "min")?, bound(2, "max")?) {
        (Some(0.0), Some(6.0)) => Ok(OpKind::Relu6),
        (Some(0.0), None) => Ok(OpKind::Relu),
        other => bail!("clip {name}: bounds {other:?}; only ReLU6 (0, 6) and ReLU are supported"),
    }
}
