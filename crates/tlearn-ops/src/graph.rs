//! Small queries on a decluttered tract graph shared by the rewrites: constant values, a plain
//! 2-D convolution's parts, the sole binary successor of a node, a clamp chain to fold.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::{BinMiniOp, TypedBinOp};
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat};
use tract_onnx::tract_core::ops::math::{Max, Min};
use tract_onnx::tract_core::ops::nn::DataFormat;

use super::depthwise_kernel::Geometry;

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

/// A float 2-D `Conv` with everything tlearn's convolution operators need known: concrete
/// shapes, constant OIHW weights and bias.
pub(crate) struct ConvParts {
    /// Input and output carry a leading batch axis (NCHW; else CHW).
    pub batched: bool,
    pub input_channels: usize,
    pub output_channels: usize,
    pub group: usize,
    pub geometry: Geometry,
    /// `output_channels × input_channels / group × kh × kw` (OIHW).
    pub weights: Vec<f32>,
    /// One per output channel (a scalar bias broadcast).
    pub bias: Vec<f32>,
}

/// Node `id` as a [`ConvParts`]: `None` unless it is an unquantised f32 `Conv`, NCHW or CHW,
/// 2-D, OIHW, no dilation, with concrete input and output shapes and constant weights and bias.
pub(crate) fn conv_parts(model: &TypedModel, id: usize) -> TractResult<Option<ConvParts>> {
    let node = model.node(id);
    let Some(conv) = node.op_as::<Conv>() else {
        return Ok(None);
    };
    let spec = &conv.pool_spec;
    let batched = match spec.data_format {
        DataFormat::NCHW => true,
        DataFormat::CHW => false,
        _ => return Ok(None),
    };
    let (planes, channels, group) = (spec.input_channels, spec.output_channels, conv.group);
    if conv.q_params.is_some()
        || conv.kernel_fmt != KernelFormat::OIHW
        || group == 0
        || planes % group != 0
        || spec.kernel_shape.len() != 2
        || spec
            .dilations
            .as_ref()
            .is_some_and(|d| d.iter().any(|&d| d != 1))
        || node.inputs.len() != 3
    {
        return Ok(None);
    }
    let input = model.outlet_fact(node.inputs[0])?;
    let (Some(shape), true) = (
        input.shape.as_concrete(),
        input.datum_type == f32::datum_type(),
    ) else {
        return Ok(None);
    };
    let spatial: [usize; 2] = match (batched, shape) {
        (true, [_, c, h, w]) | (false, [c, h, w]) if *c == planes => [*h, *w],
        _ => return Ok(None),
    };
    let kernel = [spec.kernel_shape[0], spec.kernel_shape[1]];
    let stride = spec.strides.as_ref().map_or([1, 1], |s| [s[0], s[1]]);
    let pads = spec.padding.compute(&spatial, &kernel, &[1, 1], &stride);
    let before = [pads[0].pad_before, pads[1].pad_before];
    let after = [pads[0].pad_after, pads[1].pad_after];
    let Some(geometry) = Geometry::new(spatial, kernel, stride, before, after) else {
        return Ok(None);
    };
    let out = model.outlet_fact(OutletId::new(id, 0))?;
    let expected_out: Vec<usize> = if batched {
        vec![shape[0], channels, geometry.output[0], geometry.output[1]]
    } else {
        vec![channels, geometry.output[0], geometry.output[1]]
    };
    if out.shape.as_concrete() != Some(&expected_out[..]) {
        return Ok(None);
    }
    let (Some(weights), Some(b)) = (
        const_f32(model, node.inputs[1])?,
        const_f32(model, node.inputs[2])?,
    ) else {
        return Ok(None);
    };
    if weights.len() != channels * planes / group * kernel[0] * kernel[1] {
        return Ok(None);
    }
    let bias = match b.len() {
        n if n == channels => b,
        1 => vec![b[0]; channels],
        _ => return Ok(None),
    };
    Ok(Some(ConvParts {
        batched,
        input_channels: planes,
        output_channels: channels,
        group,
        geometry,
        weights,
        bias,
    }))
}
