//! A tract operator running depthwise convolutions with [`super::depthwise_kernel`] (and
//! [`super::depthwise_blocked`] for whole blocks of 16 channels where it pays), and the
//! graph rewrite that puts it in place of tract's own `DepthWiseConv`.
//!
//! The rewrite runs on the decluttered model, before tract optimises it. It replaces a float
//! `Conv` whose groups equal its input and output channels (NCHW or CHW, 2-D, no dilation,
//! constant OIHW kernel and bias) by [`Depthwise`], folding a following `Max(x, lo)` and
//! `Min(x, hi)` with constant scalars (ReLU / ReLU6) into it when nothing else reads the
//! intermediate values. The other operators tlearn swaps in are listed in [`super::rewrite`].
//!
//! Each output is `bias + Σ tap·x` over the taps in row-major order, one multiply and one add
//! per tap (no FMA), then clamped: the operations tract's own operator does, in its order, so the
//! codes are bit-identical to tract's (tests/depthwise.rs checks it on real photos).
//!
//! [`super::rewrite`] decides when it runs.

use std::cell::RefCell;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::channel_blocks::{self, Blocked};
use super::depthwise_blocked::{self as blocked, LANES};
use super::depthwise_kernel::Plan;
use super::graph::conv_parts;

/// A depthwise convolution with its weights, on `[N,] C, H, W` f32 input.
#[derive(Debug, Clone, PartialEq)]
pub struct Depthwise {
    plan: Plan,
    channels: usize,
    /// Input and output carry a leading batch axis.
    batched: bool,
    /// `channels × kh × kw`, row major.
    taps: Arc<Vec<f32>>,
    /// The taps regrouped 16 channels per block when [`blocked::worth_it`] (then the full
    /// blocks of 16 channels run through [`blocked::conv_block`], the rest one by one), or
    /// when [`blocked::worth_it_between_blocked_maps`] (then only with a blocked map on a side).
    taps16: Option<Arc<Vec<f32>>>,
    /// The blocked path pays with planar maps too ([`blocked::worth_it`]).
    planar_blocked: bool,
    bias: Arc<Vec<f32>>,
    clamp: Option<(f32, f32)>,
    /// Clamp applied to the input as it is read: the ReLU6 (or ReLU) of the layer before,
    /// moved here by [`super::rewrite`] so that no separate pass over its output is needed
    /// (the stem's too).
    input_clamp: Option<(f32, f32)>,
    /// Input and / or output channel-blocked ([`super::channel_blocks`]), set by
    /// [`super::rewrite`]'s last pass; only when every channel runs the blocked path.
    blocked: Blocked,
}

impl Eq for Depthwise {}

impl Depthwise {
    fn output_shape(&self, batch: usize) -> TVec<usize> {
        self.shape(batch, self.plan.geometry.output, self.blocked.output)
    }

    /// `[N,] C, H, W` for a plane of `[h, w]`, or its channel-blocked form.
    fn shape(&self, batch: usize, [h, w]: [usize; 2], blocked: bool) -> TVec<usize> {
        let planar = if self.batched {
            tvec!(batch, self.channels, h, w)
        } else {
            tvec!(self.channels, h, w)
        };
        if blocked {
            channel_blocks::blocked_shape(&planar).expect("blocked only with whole blocks")
        } else {
            planar
        }
    }

    /// Whether its input and output may be channel-blocked: every channel in a block of 16
    /// on the blocked path, with AVX-512 (where the 1×1 kernel at the other end runs too).
    pub(crate) fn blockable(&self) -> bool {
        self.taps16.is_some()
            && self.channels.is_multiple_of(LANES)
            && super::pointwise_kernel::available()
    }

    /// Whether the blocked path pays with a planar input too ([`blocked::worth_it`]); else only
    /// with a blocked input (its transposes are the larger part of the path's extra cost).
    pub(crate) fn pays_planar(&self) -> bool {
        self.planar_blocked
    }

    /// The input (`output` false) or the output becomes channel-blocked; the caller checked
    /// [`Depthwise::blockable`].
    pub(crate) fn block(&mut self, output: bool) {
        if output {
            self.blocked.output = true;
        } else {
            self.blocked.input = true;
        }
    }
}

impl Op for Depthwise {
    fn name(&self) -> StaticName {
        "TlearnDepthwise".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{:?} channels: {} clamp: {:?} input clamp: {:?} {:?}",
            self.plan.geometry, self.channels, self.clamp, self.input_clamp, self.blocked
        )])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

thread_local! {
    /// Padded-plane scratch, one per thread, reused across channels, layers and images.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl EvalOp for Depthwise {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let g = &self.plan.geometry;
        let batch = if self.batched { input.shape()[0] } else { 1 };
        let expected = self.shape(batch, g.input, self.blocked.input);
        ensure!(
            input.shape() == &*expected,
            "depthwise input shape {:?}, expected {:?}",
            input.shape(),
            expected
        );
        let x = input.try_as_plain_ram()?;
        let x = x.as_slice::<f32>()?;
        // SAFETY: f32 has no invalid bit patterns, and every element is written below (the
        // output planes tile the tensor exactly).
        let mut output = unsafe { Tensor::uninitialized::<f32>(&self.output_shape(batch))? };
        {
            let mut view = output.try_as_plain_ram_mut()?;
            let y = view.as_slice_mut::<f32>()?;
            let (in_plane, out_plane) = (g.input[0] * g.input[1], g.output[0] * g.output[1]);
            let k_plane = g.kernel[0] * g.kernel[1];
            SCRATCH.with_borrow_mut(|scratch| {
                let c = self.channels;
                let on_blocks = self.planar_blocked || self.blocked.any();
                let full = match self.taps16 {
                    Some(_) if on_blocks => c / LANES * LANES,
                    _ => 0,
                };
                for (src, dst) in x
                    .chunks_exact(c * in_plane)
                    .zip(y.chunks_exact_mut(c * out_plane))
                {
                    if let Some(taps16) = self.taps16.as_ref().filter(|_| on_blocks) {
                        for b in 0..full / LANES {
                            let bias: &[f32; LANES] = self.bias[b * LANES..][..LANES]
                                .try_into()
                                .expect("16 biases");
                            // A block of 16 channels is the same floats in either layout.
                            blocked::conv_block_blocked(
                                g,
                                &src[b * LANES * in_plane..][..LANES * in_plane],
                                self.input_clamp,
                                &taps16[b * LANES * k_plane..][..LANES * k_plane],
                                bias,
                                self.clamp,
                                &mut dst[b * LANES * out_plane..][..LANES * out_plane],
                                scratch,
                                self.blocked,
                            );
                        }
                    }
                    for ch in full..c {
                        self.plan.conv_channel(
                            &src[ch * in_plane..][..in_plane],
                            self.input_clamp,
                            &self.taps[ch * k_plane..][..k_plane],
                            self.bias[ch],
                            self.clamp,
                            &mut dst[ch * out_plane..][..out_plane],
                            scratch,
                        );
                    }
                }
            });
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for Depthwise {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let batch = if self.batched {
            inputs[0].shape[0]
                .to_usize()
                .context("depthwise: batch size must be known")?
        } else {
            1
        };
        Ok(tvec!(f32::fact(self.output_shape(batch))))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let g = &self.plan.geometry;
        let per_image = self.channels * g.output[0] * g.output[1] * g.kernel[0] * g.kernel[1];
        let batch = if self.batched {
            inputs[0].shape[0].clone()
        } else {
            1.into()
        };
        Ok(tvec!((Cost::FMA(f32::datum_type()), batch * per_image)))
    }
}

/// The node as a [`Depthwise`] (no clamp yet), or `None` if it is not a convolution this
/// operator covers exactly.
pub(crate) fn depthwise_of(model: &TypedModel, id: usize) -> TractResult<Option<Depthwise>> {
    let Some(c) = conv_parts(model, id)? else {
        return Ok(None);
    };
    let channels = c.input_channels;
    if c.group < 2 || c.group != channels || c.output_channels != channels {
        return Ok(None);
    }
    let k_plane = c.geometry.kernel[0] * c.geometry.kernel[1];
    let planar_blocked = blocked::worth_it(&c.geometry);
    let taps16 = (planar_blocked || blocked::worth_it_between_blocked_maps(&c.geometry))
        .then(|| Arc::new(blocked::block_taps(&c.weights, channels, k_plane)));
    Ok(Some(Depthwise {
        plan: Plan::new(c.geometry),
        channels,
        batched: c.batched,
        taps16,
        planar_blocked,
        taps: Arc::new(c.weights),
        bias: Arc::new(c.bias),
        clamp: None,
        input_clamp: None,
        blocked: Blocked::PLANAR,
    }))
}

impl Depthwise {
    pub(crate) fn with_clamp(self, clamp: Option<(f32, f32)>) -> Depthwise {
        Depthwise { clamp, ..self }
    }

    pub(crate) fn with_input_clamp(self, input_clamp: Option<(f32, f32)>) -> Depthwise {
        Depthwise {
            input_clamp,
            ..self
        }
    }
}
