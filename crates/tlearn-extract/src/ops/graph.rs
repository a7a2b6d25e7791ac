//! Small queries on a decluttered tract graph shared by the rewrites: constant values, the
//! sole binary successor of a node, a clamp chain to fold.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::{BinMiniOp, TypedBinOp};
use tract_onnx::tract_core::ops::math::{Max, Min};

/// The values of a constant f32 outlet, `None` if it is not one.
pub(crate) fn const_f32(model: &TypedModel, outlet: OutletId) -> TractResult<Option<Vec<f32>>> {
    let fact = model.outlet_fact(outlet)?;
    let Some(t) = fact.konst.as_ref() else {
        return Ok(None);
    };
    if t.datum_type() != f32::datum_type() {
        return Ok(None);
    }
    let view = t.try_as_plain_ram()?;
    Ok(Some(view.as_slice::<f32>()?.to_vec()))
}

/// The only reader of `id`'s output, if it is the binary op `B` and `id`'s output is not a model
/// output: its id and the outlet on its other side. Its output has `id`'s shape.
pub(crate) fn sole_bin_successor<B: BinMiniOp>(
    model: &TypedModel,
    id: usize,
) -> TractResult<Option<(usize, OutletId)>> {
    let outlet = OutletId::new(id, 0);
    if model.output_outlets()?.contains(&outlet) {
        return Ok(None);
    }
    let [succ] = model.outlet_successors(outlet) else {
        return Ok(None);
    };
    let next = model.node(succ.node);
    let Some(bin) = next.op_as::<TypedBinOp>() else {
        return Ok(None);
    };
    if !bin.0.is::<B>() || next.inputs.len() != 2 || bin.1.is_some() {
        return Ok(None);
    }
    let fact = model.outlet_fact(OutletId::new(next.id, 0))?;
    if fact.shape != model.outlet_fact(outlet)?.shape {
        return Ok(None);
    }
    Ok(Some((next.id, next.inputs[1 - succ.slot])))
}

/// A `Max(x, lo)` then optionally `Min(x, hi)` chain with constant scalars reading only `id`'s
/// output: the clamp to fold, and the node whose output the fused op replaces.
pub(crate) fn fused_clamp(
    model: &TypedModel,
    id: usize,
) -> TractResult<(Option<(f32, f32)>, usize)> {
    let scalar = |outlet| -> TractResult<Option<f32>> {
        Ok(const_f32(model, outlet)?
            .filter(|v| v.len() == 1)
            .map(|v| v[0]))
    };
    let Some((lo_id, lo)) = sole_bin_successor::<Max>(model, id)? else {
        return Ok((None, id));
    };
    let Some(lo) = scalar(lo)? else {
        return Ok((None, id));
    };
    if let Some((hi_id, hi)) = sole_bin_successor::<Min>(model, lo_id)? {
        if let Some(hi) = scalar(hi)?.filter(|&hi| lo <= hi) {
            return Ok((Some((lo, hi)), hi_id));
        }
    }
    Ok((Some((lo, f32::INFINITY)), lo_id))
}
