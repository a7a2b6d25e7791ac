//! A tract operator running a full convolution over a few input planes (the network's stem) with
//! [`super::stem_kernel`], and the query [`super::rewrite`] uses to put it in place of tract's
//! `Conv` (which tract would lower to `Pad` + im2col + matrix multiply, or to its direct
//! convolution).
//!
//! It covers a float `Conv` with one group, at most [`MAX_PLANES`] input channels, NCHW or CHW,
//! 2-D, no dilation, constant OIHW kernel and bias: the colour-plane input of an image network,
//! and in Xception and Inception-v3 the convolutions right after it.
//! A following ReLU / ReLU6 is not folded here: the depthwise operator after the stem already
//! reads it as its input clamp.

use std::cell::RefCell;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::graph::conv_parts;
use super::stem_kernel::StemPlan;

/// Input channels up to which a convolution counts as a stem: the colour planes, and the 32
/// planes of the 3×3 convolutions after Xception's and Inception-v3's stems (147×147 outputs),
/// where tract runs its direct convolution: 32 → 64 channels 13.4 → 10.2 ms, 32 → 32 7.2 → 5.7
/// ms (Inception-v3, `examples/profile_ops`, one core; Xception's 32 → 64 14.9 → 10.3). From 48
/// planes on tract takes an im2col and its matrix kernels, and those are faster: Inception's 48
/// → 64 5×5 on 35×35 2.2 ms against 3.1 here, 64 → 96 3×3 1.5 against 2.2, 80 → 192 3×3 on
/// 71×71 18.7 against 22.5.
pub const MAX_PLANES: usize = 32;

/// A stem convolution with its weights, on `[N,] C, H, W` f32 input.
#[derive(Debug, Clone, PartialEq)]
pub struct Stem {
    plan: StemPlan,
    channels: usize,
    batched: bool,
    /// `channels × planes × kh × kw` (OIHW).
    weights: Arc<Vec<f32>>,
    bias: Arc<Vec<f32>>,
}

impl Eq for Stem {}

impl Stem {
    fn output_shape(&self, batch: usize) -> TVec<usize> {
        let [h, w] = self.plan.geometry.output;
        if self.batched {
            tvec!(batch, self.channels, h, w)
        } else {
            tvec!(self.channels, h, w)
        }
    }
}

impl Op for Stem {
    fn name(&self) -> StaticName {
        "TlearnStem".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{:?} planes: {} channels: {}",
            self.plan.geometry, self.plan.planes, self.channels
        )])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

thread_local! {
    /// Phase-plane scratch, one per thread, reused across images.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl EvalOp for Stem {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let g = &self.plan.geometry;
        let planes = self.plan.planes;
        let batch = if self.batched { input.shape()[0] } else { 1 };
        let expected: TVec<usize> = if self.batched {
            tvec!(batch, planes, g.input[0], g.input[1])
        } else {
            tvec!(planes, g.input[0], g.input[1])
        };
        ensure!(
            input.shape() == &*expected,
            "stem input shape {:?}, expected {:?}",
            input.shape(),
            expected
        );
        let x = input.try_as_plain_ram()?;
        let x = x.as_slice::<f32>()?;
        // SAFETY: f32 has no invalid bit patterns, and every element is written below (each
        // image's output planes are filled whole by `StemPlan::run`).
        let mut output = unsafe { Tensor::uninitialized::<f32>(&self.output_shape(batch))? };
        {
            let mut view = output.try_as_plain_ram_mut()?;
            let y = view.as_slice_mut::<f32>()?;
            let in_image = planes * g.input[0] * g.input[1];
            let out_image = self.channels * g.output[0] * g.output[1];
            SCRATCH.with_borrow_mut(|scratch| {
                for (src, dst) in x.chunks_exact(in_image).zip(y.chunks_exact_mut(out_image)) {
                    self.plan
                        .run(src, &self.weights, &self.bias, None, dst, scratch);
                }
            });
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for Stem {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let batch = if self.batched {
            inputs[0].shape[0]
                .to_usize()
                .context("stem: batch size must be known")?
        } else {
            1
        };
        Ok(tvec!(f32::fact(self.output_shape(batch))))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let g = &self.plan.geometry;
        let per_image = self.channels * g.output[0] * g.output[1] * self.plan.taps();
        let batch = if self.batched {
            inputs[0].shape[0].clone()
        } else {
            1.into()
        };
        Ok(tvec!((Cost::FMA(f32::datum_type()), batch * per_image)))
    }
}

/// The node as a [`Stem`], or `None` if it is not a convolution this operator covers exactly.
pub(crate) fn stem_of(model: &TypedModel, id: usize) -> TractResult<Option<Stem>> {
    let Some(c) = conv_parts(model, id)? else {
        return Ok(None);
    };
    if c.group != 1 || c.input_channels == 0 || c.input_channels > MAX_PLANES {
        return Ok(None);
    }
    Ok(Some(Stem {
        plan: StemPlan::new(c.geometry, c.input_channels),
        channels: c.output_channels,
        batched: c.batched,
        weights: Arc::new(c.weights),
        bias: Arc::new(c.bias),
    }))
}
