//! A tract operator for the 1×1 convolutions of a batch-1 network, with the bias, a ReLU / ReLU6
//! clamp or the residual add that follows it folded in. With AVX-512 it runs
//! [`super::pointwise_kernel`] on every plane (7×7 included: 0.78-0.80 of the `gemm` path's time
//! per Lite0 image in alternating single-thread rounds, `bench/infer_bench.py`); otherwise one
//! `gemm` call (the `gemm` crate, run-time dispatched SIMD kernels) per convolution on planes of
//! 10×10 and up, where tract's AVX-512 products were faster on the smaller ones.
//!
//! Why: after [`super::depthwise_op`], tract's matrix products (11.6 ms) and the packing of their
//! activations (1.3 ms) were 75% of an EfficientNet-Lite0 image. On the 32 1×1 convolution
//! shapes of that network the `gemm` crate computes the same products in 8.7 ms with no
//! separate packing step (`examples/pointwise_bench.rs`).
//!
//! The weights are `O × I`, the input `I × H·W` (CHW, batch axis decluttered away): the output
//! `O × H·W` is `W · X`, row-major, so no layout change is needed on either side. Each output is
//! the same sum as tract's, then the bias, the skip connection and the clamp in tract's order:
//! with the AVX-512 kernel, which also sums the products as tract does, the codes are tract's
//! bit for bit; `gemm`'s sums depart from tract's order from 14×14 planes on (codes within
//! 6.1e-7 of tract's, relative to the largest, on this project's backbones). tests/depthwise.rs
//! and tests/ops_equality.rs check both on real photos.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::math::Add;

use super::channel_blocks::{self, Blocked};
use super::graph::{const_f32, fused_clamp, sole_bin_successor};
use super::pointwise_kernel::{self, Layout, PackedWeights};

/// Without the AVX-512 kernel, planes smaller than this (7×7) stay with tract's matrix product:
/// with their large channel counts its AVX-512 kernels beat gemm's AVX2 ones there, and on a
/// Zen 3 core (AVX2 only) `gemm` on the 7×7 planes too was slower in the whole network
/// (`examples/infer_bench`, six alternating rounds; bench/RESULTS.md). AVX2 + FMA tiles of
/// [`super::pointwise_kernel`] were tried there as well: 15.4 ms over Lite0's 32 1×1 shapes
/// against `gemm`'s 8.7 ms (`examples/pointwise_bench`), so CPUs without AVX-512 keep `gemm`.
pub const SMALL_PLANE: usize = 100;

/// The smallest plane (points) this operator takes: every plane with [`pointwise_kernel`]
/// (`kernel`), [`SMALL_PLANE`] with `gemm`.
pub fn min_plane(kernel: bool) -> usize {
    if kernel {
        1
    } else {
        SMALL_PLANE
    }
}

/// `y = clamp(W · x + bias [+ residual])` on CHW f32 tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct Pointwise {
    cin: usize,
    cout: usize,
    /// Spatial shape `[h, w]`.
    spatial: [usize; 2],
    /// Input and output shapes: `[C, H, W]`, or with a leading batch axis of 1.
    /// Each in its layout ([`Pointwise::block`] turns one channel-blocked), so that `eval`
    /// compares and allocates with them as they are.
    in_shape: TVec<usize>,
    out_shape: TVec<usize>,
    /// The skip connection's shape (the output's, planar unless blocked on its own).
    res_shape: TVec<usize>,
    /// `cout × cin`, row major, for `gemm`; empty when `packed` holds them (the 1×1 layers'
    /// weights are most of the backbone's: one copy instead of two took Lite0's `extract` peak
    /// RSS on the Tux Paint PNGs from 112 to 105 MiB).
    weights: Arc<Vec<f32>>,
    bias: Arc<Vec<f32>>,
    clamp: Option<(f32, f32)>,
    /// A second input of the output's shape is added (the block's skip connection).
    residual: bool,
    /// The weights packed for [`pointwise_kernel`], when this CPU runs it (else `gemm`).
    packed: Option<Arc<PackedWeights>>,
    /// Which tensors are channel-blocked ([`channel_blocks`]), set by [`super::rewrite`]'s
    /// last pass; only with the kernel's [`Layout::Lanes`].
    blocked: Blocked,
}

impl Eq for Pointwise {}

/// What [`pointwise_of`] found: the operator, the skip-connection input if any, and the last
/// node of the chain it replaces.
pub(crate) struct Fused {
    pub op: Pointwise,
    pub residual: Option<OutletId>,
    pub last: usize,
}

/// A planar `[.., C, H, W]` shape, or its channel-blocked form.
fn layout(planar: &[usize], blocked: bool) -> TVec<usize> {
    if blocked {
        channel_blocks::blocked_shape(planar).expect("blocked only with whole blocks")
    } else {
        planar.into()
    }
}

impl Pointwise {
    fn lanes(&self) -> bool {
        self.packed
            .as_ref()
            .is_some_and(|p| p.layout == Layout::Lanes)
    }

    /// Whether input `slot` (0 the map, 1 the skip connection) may come channel-blocked.
    pub(crate) fn reads_blocked(&self, slot: usize) -> bool {
        self.lanes()
            && match slot {
                0 => self.cin.is_multiple_of(channel_blocks::BLOCK),
                1 => self.residual,
                _ => false,
            }
    }

    /// Whether the output may be written channel-blocked.
    pub(crate) fn writes_blocked(&self) -> bool {
        self.lanes()
    }

    /// Whether the kernel could take [`Layout::Lanes`] here to pass a map blocked: a plane of
    /// [`pointwise_kernel::BLOCKED_LANES_POINTS`] points, output channels in whole blocks.
    pub(crate) fn could_take_lanes(&self) -> bool {
        self.packed.is_some()
            && self.cout.is_multiple_of(channel_blocks::BLOCK)
            && pointwise_kernel::BLOCKED_LANES_POINTS.contains(&(self.spatial[0] * self.spatial[1]))
    }

    /// Repack the weights in [`Layout::Lanes`] (same outputs bit for bit); the caller checked
    /// [`Pointwise::could_take_lanes`].
    pub(crate) fn take_lanes(&mut self) {
        if let Some(p) = &self.packed {
            if p.layout != Layout::Lanes {
                self.packed = Some(Arc::new(p.relayout(Layout::Lanes)));
            }
        }
    }

    /// Input `slot` (as in [`Pointwise::reads_blocked`]) or, with `None`, the output becomes
    /// channel-blocked; the caller checked that it may.
    pub(crate) fn block(&mut self, slot: Option<usize>) {
        let (flag, shape) = match slot {
            None => (&mut self.blocked.output, &mut self.out_shape),
            Some(0) => (&mut self.blocked.input, &mut self.in_shape),
            Some(_) => (&mut self.blocked.residual, &mut self.res_shape),
        };
        if !*flag {
            *flag = true;
            *shape = layout(shape, true);
        }
    }
}

impl Op for Pointwise {
    fn name(&self) -> StaticName {
        "TlearnPointwise".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{}→{} on {:?} clamp: {:?} residual: {} {:?}",
            self.cin, self.cout, self.spatial, self.clamp, self.residual, self.blocked
        )])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for Pointwise {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let hw = self.spatial[0] * self.spatial[1];
        let b = self.blocked;
        let (in_shape, res_shape, out_shape) =
            (&*self.in_shape, &*self.res_shape, &*self.out_shape);
        ensure!(inputs.len() == 1 + self.residual as usize);
        ensure!(
            inputs[0].shape() == in_shape,
            "pointwise input shape {:?}, expected {in_shape:?}",
            inputs[0].shape()
        );
        ensure!(
            !b.any() || self.packed.is_some(),
            "channel-blocked tensors need the 1×1 kernel"
        );
        let x = inputs[0].try_as_plain_ram()?;
        let x = x.as_slice::<f32>()?;
        let r = if self.residual {
            ensure!(inputs[1].shape() == res_shape, "pointwise residual shape");
            Some(inputs[1].try_as_plain_ram()?)
        } else {
            None
        };
        let r = r.as_ref().map(|r| r.as_slice::<f32>()).transpose()?;
        // SAFETY: f32 has no invalid bit patterns; every element is written before it is read
        // (by the kernel's stores, or by gemm, which does not read it).
        let mut output = unsafe { Tensor::uninitialized::<f32>(out_shape)? };
        if let Some(packed) = &self.packed {
            {
                let mut view = output.try_as_plain_ram_mut()?;
                let y = view.as_slice_mut::<f32>()?;
                pointwise_kernel::pointwise_blocked(packed, &self.bias, x, hw, r, self.clamp, y, b);
            }
            return Ok(tvec!(output.into_tvalue()));
        }
        {
            let mut view = output.try_as_plain_ram_mut()?;
            let y = view.as_slice_mut::<f32>()?;
            // SAFETY: dst is cout × hw, lhs cout × cin, rhs cin × hw, all row major and
            // contiguous, with the strides given; the slices have exactly those lengths. With
            // `read_dst` false, gemm writes every element of dst without reading it.
            unsafe {
                gemm::gemm(
                    self.cout,
                    hw,
                    self.cin,
                    y.as_mut_ptr(),
                    1,
                    hw as isize,
                    false,
                    self.weights.as_ptr(),
                    1,
                    self.cin as isize,
                    x.as_ptr(),
                    1,
                    hw as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            };
            // Then the bias, the skip connection and the clamp, in that order: tract's.
            // (Without the kernel nothing is blocked: the skip connection has the output's shape.)
            let (lo, hi) = self.clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
            for (o, (row, &b)) in y.chunks_exact_mut(hw).zip(&*self.bias).enumerate() {
                let res = r.map(|r| &r[o * hw..][..hw]);
                for (p, v) in row.iter_mut().enumerate() {
                    let mut a = *v + b;
                    if let Some(res) = res {
                        a += res[p];
                    }
                    if self.clamp.is_some() {
                        a = if a < lo { lo } else { a };
                        a = if a > hi { hi } else { a };
                    }
                    *v = a;
                }
            }
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for Pointwise {
    as_op!();

    fn output_facts(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(&*self.out_shape)))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let macs = self.cout * self.cin * self.spatial[0] * self.spatial[1];
        Ok(tvec!((Cost::FMA(f32::datum_type()), macs.into())))
    }
}

/// Node `id` as a [`Pointwise`] with what follows it folded in, or `None` if it is not a batch-1
/// 1×1 convolution with constant f32 weights.
pub(crate) fn pointwise_of(
    model: &TypedModel,
    id: usize,
    kernel: bool,
) -> TractResult<Option<Fused>> {
    let node = model.node(id);
    let Some(einsum) = node.op_as::<EinSum>() else {
        return Ok(None);
    };
    // A batch axis of 1 on either side (after declutter it is kept where pooling needs it)
    // changes nothing in memory.
    let expr = einsum.axes.to_string();
    if einsum.q_params.is_some()
        || einsum.operating_dt != f32::datum_type()
        || !matches!(
            expr.as_str(),
            "IHW,OI->OHW" | "NIHW,OI->OHW" | "IHW,OI->NOHW" | "NIHW,OI->NOHW"
        )
        || node.inputs.len() != 2
    {
        return Ok(None);
    }
    let x = model.outlet_fact(node.inputs[0])?;
    let Some(in_shape) = x.shape.as_concrete() else {
        return Ok(None);
    };
    let (cin, h, w) = match in_shape {
        &[cin, h, w] | &[1, cin, h, w] => (cin, h, w),
        _ => return Ok(None),
    };
    let Some(out_shape) = model.outlet_fact(OutletId::new(id, 0))?.shape.as_concrete() else {
        return Ok(None);
    };
    let out_shape: TVec<usize> = out_shape.into();
    if h * w < min_plane(kernel) {
        return Ok(None);
    }
    let in_shape: TVec<usize> = in_shape.into();
    if x.datum_type != f32::datum_type() {
        return Ok(None);
    }
    let Some(weights) = const_f32(model, node.inputs[1])? else {
        return Ok(None);
    };
    let wfact = model.outlet_fact(node.inputs[1])?;
    let Some(&[cout, wcin]) = wfact.shape.as_concrete() else {
        return Ok(None);
    };
    if wcin != cin
        || weights.len() != cout * cin
        || !matches!(&*out_shape, &[c, oh, ow] | &[1, c, oh, ow] if (c, oh, ow) == (cout, h, w))
    {
        return Ok(None);
    }
    // The bias add, when there is one: a constant with one value per output channel.
    let mut last = id;
    let mut bias = vec![0f32; cout];
    if let Some((add_id, other)) = sole_bin_successor::<Add>(model, id)? {
        if let Some(b) = const_f32(model, other)? {
            let shape = model
                .outlet_fact(other)?
                .shape
                .as_concrete()
                .map(|s| s.to_vec());
            let per_channel = matches!(
                shape.as_deref(),
                Some([_, 1, 1]) | Some([1, _, 1, 1]) | Some([_])
            );
            if b.len() == cout && per_channel {
                bias = b;
                last = add_id;
            }
        }
    }
    // Then either the skip connection (an add of a computed tensor of the same shape) or a
    // clamp.
    let mut residual = None;
    if let Some((add_id, other)) = sole_bin_successor::<Add>(model, last)? {
        let fact = model.outlet_fact(other)?;
        if fact.konst.is_none()
            && fact.datum_type == f32::datum_type()
            && fact.shape.as_concrete() == Some(&out_shape[..])
        {
            residual = Some(other);
            last = add_id;
        }
    }
    let mut clamp = None;
    if residual.is_none() {
        let (c, clamp_last) = fused_clamp(model, last)?;
        clamp = c;
        last = clamp_last;
    }
    let packed = (kernel && pointwise_kernel::available())
        .then(|| Arc::new(PackedWeights::for_plane(&weights, cout, cin, h * w)));
    // Only one copy of the weights stays in memory: the packed one when the kernel runs.
    let weights = if packed.is_some() { vec![] } else { weights };
    Ok(Some(Fused {
        op: Pointwise {
            cin,
            cout,
            spatial: [h, w],
            in_shape,
            res_shape: out_shape.clone(),
            out_shape,
            packed,
            weights: Arc::new(weights),
            bias: Arc::new(bias),
            clamp,
            residual: residual.is_some(),
            blocked: Blocked::PLANAR,
        },
        residual,
        last,
    }))
}
