//! What tlearn changes in a backbone's graph before tract optimises it: its own operators for
//! the two convolutions EfficientNet-style networks spend their time in.
//!
//! - [`super::depthwise_op`]: depthwise convolutions (+ ReLU6), bit-identical to tract's.
//! - [`super::pointwise_op`]: 1×1 convolutions at batch 1 (+ bias, ReLU6 or residual add) with
//!   tlearn's AVX-512 kernel (every plane) or one `gemm` call each (planes from 10×10 up),
//!   bit-identical to tract's with the AVX-512 kernel, equal up to float rounding with `gemm`.
//! - [`super::stem_op`]: the stem (a full convolution over the colour planes, or over up to 32
//!   planes as after Xception's and Inception-v3's stems), direct instead
//!   of tract's im2col + matrix multiply, summing in its order (bit-identical to it where tract
//!   lowers the stem that way, measured with AVX-512); only on CPUs
//!   with its vector path ([`super::stem_kernel::available`]: AVX-512F, or AVX2 with FMA).
//!
//! A last pass keeps a tensor in the channel-blocked layout ([`super::channel_blocks`]) where
//! the operator writing it and every operator reading it take that layout and it is not a
//! model output (the cuts `extract` reads stay planar): on planes up to 14×14 the 1×1 and
//! depthwise convolutions then hand their maps to each other with no transpose, scatter or
//! gather (Lite0 and MobileNetV2 with AVX-512: 0.85-0.91 of the planar run's time per image,
//! `bench/infer_bench.py --variants all planar`). Same operations in the same order: the codes
//! are bit-identical to the planar run's.
//!
//! Everything else (pooling, classifier, batched runs of the 1×1 convolutions) stays tract's.
//! The rewrite is a tract [`ModelTransform`] named `tlearn_ops` ([`TlearnOps`]), as tract's own
//! graph rewrites are (`conv_nhwc`, `batchify`, ...): `model.transform(&TlearnOps(ops))` on the
//! decluttered model, before `into_optimized`. [`Ops`] picks what it replaces: `all` (default),
//! `planar` (as `all`, every tensor between the operators planar), `gemm` (the 1×1
//! convolutions on `gemm` even with AVX-512, the stem tract's: the path before those two
//! kernels), `depthwise` (only the depthwise operator) or `tract` (none: tract's plan as it
//! comes) — to measure, or to rule tlearn's operators out when chasing a numerical
//! difference. The choice is the caller's (the backbone loader's options); nothing here reads
//! the environment.

use std::fmt;
use std::str::FromStr;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::math::{Max, Min};
use tract_onnx::tract_core::transform::ModelTransform;

use super::channel_blocks;
use super::depthwise_op::{self, Depthwise};
use super::graph::{const_f32, fused_clamp};
use super::pointwise_kernel;
use super::pointwise_op::{self, Pointwise};
use super::stem_kernel;
use super::stem_op;

/// Which of tlearn's operators replace tract's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Ops {
    /// Every tlearn operator this CPU runs (the default).
    #[default]
    All,
    /// As `All`, with every tensor between tlearn's operators planar (tract's NCHW): the
    /// path before the channel-blocked layout, kept to measure it against.
    Planar,
    /// As `All`, but the 1×1 convolutions run `gemm` (planes from 10×10 up) even where the
    /// AVX-512 kernel could, and the stem stays tract's: the previous path, kept to measure the
    /// kernels against.
    Gemm,
    /// Only the depthwise operator.
    Depthwise,
    /// None: tract's own plan.
    Tract,
}

impl Ops {
    /// Every choice, in the spelling [`FromStr`] reads and [`fmt::Display`] writes.
    pub const ALL: [Ops; 5] = [Ops::All, Ops::Planar, Ops::Gemm, Ops::Depthwise, Ops::Tract];

    pub fn name(self) -> &'static str {
        match self {
            Ops::All => "all",
            Ops::Planar => "planar",
            Ops::Gemm => "gemm",
            Ops::Depthwise => "depthwise",
            Ops::Tract => "tract",
        }
    }
}

impl fmt::Display for Ops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of [`Ops::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownOps(pub String);

impl fmt::Display for UnknownOps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown operator set '{}': expected ", self.0)?;
        let names: Vec<&str> = Ops::ALL.iter().map(|o| o.name()).collect();
        f.write_str(&names.join(", "))
    }
}

impl std::error::Error for UnknownOps {}

impl FromStr for Ops {
    type Err = UnknownOps;

    /// `all`, `planar`, `gemm`, `depthwise` or `tract` (an unknown name is an error, not a silent
    /// default).
    fn from_str(s: &str) -> Result<Ops, UnknownOps> {
        Ops::ALL
            .into_iter()
            .find(|o| o.name() == s.trim())
            .ok_or_else(|| UnknownOps(s.to_string()))
    }
}

/// tlearn's operators as a tract model transform (named `tlearn_ops`): [`apply`] with the
/// chosen [`Ops`], on a decluttered model, before `into_optimized`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlearnOps(pub Ops);

impl ModelTransform for TlearnOps {
    fn name(&self) -> tract_onnx::tract_core::internal::StaticName {
        "tlearn_ops".into()
    }

    fn transform(&self, model: &mut TypedModel) -> TractResult<()> {
        apply(model, self.0).map(|_| ())
    }
}

/// Operators replaced by [`apply`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replaced {
    pub depthwise: usize,
    pub pointwise: usize,
    pub stem: usize,
    /// Tensors kept channel-blocked between tlearn's operators.
    pub blocked: usize,
}

/// Rewrite a decluttered model in place; run `into_optimized` after it.
pub fn apply(model: &mut TypedModel, ops: Ops) -> TractResult<Replaced> {
    let mut n = Replaced::default();
    if ops != Ops::Tract {
        n.depthwise = rewrite_depthwise(model)?;
    }
    let all = matches!(ops, Ops::All | Ops::Planar);
    if all || ops == Ops::Gemm {
        let kernel = all && pointwise_kernel::available();
        n.pointwise = rewrite_pointwise(model, kernel)?;
    }
    if all && stem_kernel::available() {
        n.stem = rewrite_stem(model)?;
    }
    if ops == Ops::All {
        n.blocked = rewrite_blocked(model)?;
    }
    Ok(n)
}

/// Replace every depthwise `Conv` tract would lower to `DepthWiseConv` by tlearn's operator
/// (with a following ReLU / ReLU6 folded in); returns how many were replaced.
pub fn rewrite_depthwise(model: &mut TypedModel) -> TractResult<usize> {
    let mut replaced = 0;
    for id in model.eval_order()? {
        let Some(op) = depthwise_op::depthwise_of(model, id)? else {
            continue;
        };
        let (clamp, last) = fused_clamp(model, id)?;
        let node = model.node(id);
        // A clamp (ReLU6) whose only reader is this convolution moves into its input copy: one
        // pass less over the layer before's output, the largest activations of the network.
        let (input, input_clamp) = match clamp_feeding(model, node.inputs[0])? {
            Some((x, c)) => (x, Some(c)),
            None => (node.inputs[0], None),
        };
        let op = op.with_clamp(clamp).with_input_clamp(input_clamp);
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, input)?;
        let name = format!("{}.tlearn", node.name);
        let y = patch.wire_node(name, op, &[x])?[0];
        patch.shunt_outside(model, OutletId::new(last, 0), y)?;
        patch.apply(model)?;
        replaced += 1;
    }
    model.compact()?;
    Ok(replaced)
}

/// Replace every convolution over at most [`stem_op::MAX_PLANES`] input planes (the stem, and
/// the convolutions right after Xception's and Inception-v3's) by
/// tlearn's operator; returns how many were replaced.
pub fn rewrite_stem(model: &mut TypedModel) -> TractResult<usize> {
    let mut replaced = 0;
    for id in model.eval_order()? {
        let Some(op) = stem_op::stem_of(model, id)? else {
            continue;
        };
        let node = model.node(id);
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, node.inputs[0])?;
        let name = format!("{}.tlearn", node.name);
        let y = patch.wire_node(name, op, &[x])?[0];
        patch.shunt_outside(model, OutletId::new(id, 0), y)?;
        patch.apply(model)?;
        replaced += 1;
    }
    model.compact()?;
    Ok(replaced)
}

/// Replace every batch-1 1×1 convolution (`EinSum IHW,OI->OHW` with constant weights, plane of
/// at least [`pointwise_op::min_plane`] points; `kernel`: with tlearn's AVX-512 kernel, which the
/// caller checked this CPU runs, else `gemm`) and the
/// bias add, clamp or residual add after it by tlearn's operator; returns how many.
pub fn rewrite_pointwise(model: &mut TypedModel, kernel: bool) -> TractResult<usize> {
    let mut replaced = 0;
    for id in model.eval_order()? {
        let Some(fused) = pointwise_op::pointwise_of(model, id, kernel)? else {
            continue;
        };
        let node = model.node(id);
        let mut patch = TypedModelPatch::default();
        let mut inputs = tvec!(patch.tap_model(model, node.inputs[0])?);
        if let Some(r) = fused.residual {
            inputs.push(patch.tap_model(model, r)?);
        }
        let name = format!("{}.tlearn", node.name);
        let y = patch.wire_node(name, fused.op, &inputs)?[0];
        patch.shunt_outside(model, OutletId::new(fused.last, 0), y)?;
        patch.apply(model)?;
        replaced += 1;
    }
    model.compact()?;
    Ok(replaced)
}

/// Keep channel-blocked every tensor that a tlearn operator writes in that layout and that
/// only tlearn operators taking it read, unless it is a model output; returns how many. Run
/// after the operators are in place: it only sets their layouts and the tensors' shapes.
pub fn rewrite_blocked(model: &mut TypedModel) -> TractResult<usize> {
    let outputs = model.output_outlets()?.to_vec();
    // First the 1×1 convolutions on planes up to 14×14 next to a blocked depthwise convolution
    // (the one writing its input alone, those reading its output) take the lanes layout, so
    // that the maps between them can stay blocked. A depthwise convolution whose blocked path
    // pays only between blocked maps is left alone unless its input can be blocked.
    let mut to_lanes = vec![];
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(dw) = node.op_as::<Depthwise>().filter(|d| d.blockable()) else {
            continue;
        };
        let lanes_able = |id: usize| {
            model
                .node(id)
                .op_as::<Pointwise>()
                .is_some_and(|p| p.could_take_lanes())
        };
        let input = node.inputs[0];
        let input_ok = !outputs.contains(&input)
            && model.outlet_successors(input).len() == 1
            && lanes_able(input.node);
        if input_ok {
            to_lanes.push(input.node);
        } else if !dw.pays_planar() {
            continue;
        }
        let out = OutletId::new(id, 0);
        let readers = model.outlet_successors(out);
        if !outputs.contains(&out) && readers.iter().all(|r| r.slot == 0 && lanes_able(r.node)) {
            to_lanes.extend(readers.iter().map(|r| r.node));
        }
    }
    for id in to_lanes {
        if let Some(p) = model.node_mut(id).op_as_mut::<Pointwise>() {
            p.take_lanes();
        }
    }
    let mut edges = vec![];
    // Depthwise convolutions whose input is blocked (their producers come first in eval order).
    let mut blocked_input = std::collections::HashSet::new();
    for id in model.eval_order()? {
        let node = model.node(id);
        let writes = if let Some(p) = node.op_as::<Pointwise>() {
            p.writes_blocked()
        } else if let Some(d) = node.op_as::<Depthwise>() {
            d.blockable() && (d.pays_planar() || blocked_input.contains(&id))
        } else {
            false
        };
        let out = OutletId::new(id, 0);
        if !writes
            || node.outputs.len() != 1
            || outputs.contains(&out)
            || node.outputs[0].fact.shape.as_concrete().is_none()
        {
            continue;
        }
        let readers = model.outlet_successors(out);
        let all_read = !readers.is_empty()
            && readers.iter().all(|inlet| {
                let reader = model.node(inlet.node);
                if let Some(p) = reader.op_as::<Pointwise>() {
                    p.reads_blocked(inlet.slot)
                } else if let Some(d) = reader.op_as::<Depthwise>() {
                    inlet.slot == 0 && d.blockable()
                } else {
                    false
                }
            });
        if all_read {
            blocked_input.extend(readers.iter().map(|r| r.node));
            edges.push((out, readers.to_vec()));
        }
    }
    for (out, readers) in &edges {
        let node = model.node_mut(out.node);
        if let Some(p) = node.op_as_mut::<Pointwise>() {
            p.block(None);
        } else if let Some(d) = node.op_as_mut::<Depthwise>() {
            d.block(true);
        }
        for inlet in readers {
            let node = model.node_mut(inlet.node);
            if let Some(p) = node.op_as_mut::<Pointwise>() {
                p.block(Some(inlet.slot));
            } else if let Some(d) = node.op_as_mut::<Depthwise>() {
                d.block(false);
            }
        }
        let planar = model
            .outlet_fact(*out)?
            .shape
            .as_concrete()
            .map(|s| s.to_vec());
        let shape = planar
            .as_deref()
            .and_then(channel_blocks::blocked_shape)
            .ok_or_else(|| {
                tract_onnx::tract_core::internal::format_err!(
                    "a blocked tensor needs a concrete shape of whole blocks"
                )
            })?;
        model.set_outlet_fact(*out, f32::fact(&*shape))?;
    }
    Ok(edges.len())
}

/// `outlet` as `Min(Max(x, lo), hi)` (ReLU6) or `Max(x, lo)` (ReLU: `hi` infinite) with
/// constant scalars, each read only by the next op and not a model output: `x` and the clamp.
fn clamp_feeding(
    model: &TypedModel,
    outlet: OutletId,
) -> TractResult<Option<(OutletId, (f32, f32))>> {
    let single_reader = |o: OutletId| -> TractResult<bool> {
        Ok(model.outlet_successors(o).len() == 1 && !model.output_outlets()?.contains(&o))
    };
    // One side of a binary `B` node: the constant scalar, and the other input.
    let split =
        |id: usize, is_b: fn(&TypedBinOp) -> bool| -> TractResult<Option<(f32, OutletId)>> {
            let node = model.node(id);
            let Some(bin) = node.op_as::<TypedBinOp>() else {
                return Ok(None);
            };
            if !is_b(bin) || bin.1.is_some() || node.inputs.len() != 2 {
                return Ok(None);
            }
            for (c, x) in [(1, 0), (0, 1)] {
                if let Some(v) = const_f32(model, node.inputs[c])?.filter(|v| v.len() == 1) {
                    let same = model.outlet_fact(node.inputs[x])?.shape
                        == model.outlet_fact(OutletId::new(id, 0))?.shape;
                    return Ok(same.then_some((v[0], node.inputs[x])));
                }
            }
            Ok(None)
        };
    if !single_reader(outlet)? {
        return Ok(None);
    }
    let Some((hi, inner)) = split(outlet.node, |b| b.0.is::<Min>())? else {
        // A lone ReLU (Xception's, before each of its depthwise convolutions).
        return Ok(split(outlet.node, |b| b.0.is::<Max>())?.map(|(lo, x)| (x, (lo, f32::INFINITY))));
    };
    if !single_reader(inner)? {
        return Ok(None);
    }
    let Some((lo, x)) = split(inner.node, |b| b.0.is::<Max>())? else {
        return Ok(None);
    };
    Ok((lo <= hi).then_some((x, (lo, hi))))
}
