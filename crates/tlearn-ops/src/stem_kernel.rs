//! The arithmetic of a full (not grouped) 2-D convolution over a few input planes: the stem of
//! EfficientNet-style networks (Lite0: 3 colour planes → 32 channels, 3×3, stride 2, 224 →
//! 112), with explicit AVX-512 or AVX2 + FMA picked at run time; the portable path is the
//! definition the vector paths follow (the rewrite keeps tract's stem where [`available`] is
//! false).
//!
//! Why it exists: tract lowers the stem to a `Pad`, an im2col and a matrix multiply, 0.52 ms per
//! Lite0 image on one core, where onnxruntime takes 0.19 ms
//! (`examples/profile_ops.rs`, `bench/infer_bench.py --ort-profile`). With three input planes
//! there is nothing to gain from a matrix multiply: every output is 27 multiply-adds.
//!
//! How: the zero-padded input planes are laid out once per image as `stride_w` column phases
//! each (phase `q` holds padded columns `q, q + stride_w, ...`, as in
//! [`super::depthwise_kernel`]), so each tap reads contiguous floats for a run of contiguous
//! outputs; then each output channel is computed in blocks of one row × 64 columns, four 16-lane
//! accumulators, the taps (input plane, row, column) as the loop around them, with fused
//! multiply-adds, from zero, the bias added last: the order of tract's im2col and matrix product,
//! so the outputs are tract's bit for bit where tract lowers the stem that way (Lite0, Lite1,
//! MobileNetV2; tests/depthwise.rs, tests/ops_equality.rs). Tract's direct convolution, which
//! it picks for Lite2's 260×260 input, sums in another order: codes within 1e-5 there.

use super::depthwise_kernel::Geometry;

/// Output columns per block: four 16-lane vectors.
const BLOCK_W: usize = 64;

/// One stem convolution's shape and the offsets of its taps in the phase layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StemPlan {
    pub geometry: Geometry,
    /// Input planes (channels).
    pub planes: usize,
    /// Rows of each phase plane: every padded input row an output reads.
    rows: usize,
    /// Width of each phase row: the outputs rounded up to a block, plus the furthest tap.
    width: usize,
    /// Offset of tap `(plane, ky, kx)` (row-major, the weights' order) for output `(0, 0)`.
    offsets: Vec<usize>,
}

impl StemPlan {
    pub fn new(geometry: Geometry, planes: usize) -> StemPlan {
        let [kh, kw] = geometry.kernel;
        let [sh, sw] = geometry.stride;
        let [oh, ow] = geometry.output;
        let rows = (oh - 1) * sh + kh;
        let width = ow.div_ceil(BLOCK_W) * BLOCK_W + (kw - 1) / sw + 1;
        let mut offsets = Vec::with_capacity(planes * kh * kw);
        for c in 0..planes {
            for ky in 0..kh {
                for kx in 0..kw {
                    offsets.push(((c * sw + kx % sw) * rows + ky) * width + kx / sw);
                }
            }
        }
        StemPlan {
            geometry,
            planes,
            rows,
            width,
            offsets,
        }
    }

    /// Taps per output channel (`planes × kh × kw`): the length of each channel's weights.
    pub fn taps(&self) -> usize {
        self.offsets.len()
    }

    /// Scratch floats [`StemPlan::run`] needs.
    pub fn scratch_len(&self) -> usize {
        self.planes * self.geometry.stride[1] * self.rows * self.width
    }

    /// Convolve one image: `input` its `planes` planes (`h × w` each), `weights` `out_channels
    /// × taps` (OIHW), `bias` one per output channel, `clamp` (lo, hi) on every output, `out`
    /// the `out_channels` output planes. `scratch` is resized as needed and may be reused.
    pub fn run(
        &self,
        input: &[f32],
        weights: &[f32],
        bias: &[f32],
        clamp: Option<(f32, f32)>,
        out: &mut [f32],
        scratch: &mut Vec<f32>,
    ) {
        let g = &self.geometry;
        let channels = bias.len();
        assert_eq!(
            input.len(),
            self.planes * g.input[0] * g.input[1],
            "input size"
        );
        assert_eq!(weights.len(), channels * self.taps(), "weights size");
        assert_eq!(
            out.len(),
            channels * g.output[0] * g.output[1],
            "output size"
        );
        scratch.clear();
        scratch.resize(self.scratch_len(), 0.0);
        self.fill(input, scratch);
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F; `rows_in_bounds` holds by construction of the
            // layout (checked in debug builds and by the tests).
            return unsafe { x86::run_avx512(self, scratch, weights, bias, clamp, out) };
        }
        #[cfg(target_arch = "x86_64")]
        if avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA; reads are bounded as in the AVX-512 path.
            return unsafe { x86::run_avx2(self, scratch, weights, bias, clamp, out) };
        }
        self.run_portable(scratch, weights, bias, clamp, out)
    }

    /// The padded input planes as column phases; the scratch is all zeros on entry.
    fn fill(&self, input: &[f32], scratch: &mut [f32]) {
        let g = &self.geometry;
        let [ih, iw] = g.input;
        let [pad_t, pad_l] = g.pad_before;
        let sw = g.stride[1];
        for c in 0..self.planes {
            let plane = &input[c * ih * iw..][..ih * iw];
            for r in 0..self.rows {
                let Some(ir) = r.checked_sub(pad_t).filter(|&ir| ir < ih) else {
                    continue;
                };
                let src = &plane[ir * iw..][..iw];
                for q in 0..sw {
                    let at = ((c * sw + q) * self.rows + r) * self.width;
                    let row = &mut scratch[at..][..self.width];
                    // Padded column j·sw + q is input column j·sw + q - pad_l: from the first j
                    // at or right of the left padding, every sw-th input value.
                    let j0 = pad_l.saturating_sub(q).div_ceil(sw);
                    let ix0 = j0 * sw + q - pad_l;
                    if ix0 < iw {
                        for (d, &v) in row[j0..].iter_mut().zip(src[ix0..].iter().step_by(sw)) {
                            *d = v;
                        }
                    }
                }
            }
        }
    }

    /// The definition the vector path follows (same summation order, fused multiply-adds).
    fn run_portable(
        &self,
        scratch: &[f32],
        weights: &[f32],
        bias: &[f32],
        clamp: Option<(f32, f32)>,
        out: &mut [f32],
    ) {
        let [oh, ow] = self.geometry.output;
        let row_step = self.geometry.stride[0] * self.width;
        let taps = self.taps();
        for (o, plane) in out.chunks_exact_mut(oh * ow).enumerate() {
            let w = &weights[o * taps..][..taps];
            for y in 0..oh {
                for x in 0..ow {
                    // From zero, the bias after the products: tract's order.
                    let mut a = 0f32;
                    for (&t, &off) in w.iter().zip(&self.offsets) {
                        a = t.mul_add(scratch[y * row_step + off + x], a);
                    }
                    plane[y * ow + x] = clamp_to(a + bias[o], clamp);
                }
            }
        }
    }
}

/// Whether this CPU has a vector path of the stem (AVX-512F, or AVX2 with FMA). Elsewhere the
/// rewrite leaves the stem to tract: the portable path is the scalar definition, and where the
/// CPU has no fused multiply-add instruction each `mul_add` is a library call. Measured on an
/// AVX2 CPU before this check (`bench/infer_bench.py --variants all gemm`, one core): Lite0
/// 87 ms an image with the portable stem against 37 ms with tract's.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f") || avx2_fma()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2_fma() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

#[inline(always)]
fn clamp_to(a: f32, bounds: Option<(f32, f32)>) -> f32 {
    match bounds {
        Some((lo, hi)) => a.max(lo).min(hi),
        None => a,
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{StemPlan, BLOCK_W};
    use std::arch::x86_64::*;

    /// [`StemPlan::run_portable`] for groups of 4 output channels (then single ones), blocks of
    /// one row × 64 columns: 16 accumulators, 16 independent fused multiply-add chains per
    /// tap, each loaded input vector used by 4 channels (4 chains would wait on the FMA
    /// latency: measured 0.37 ms per Lite0 image against 0.11 ms of arithmetic).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn run_avx512(
        plan: &StemPlan,
        scratch: &[f32],
        weights: &[f32],
        bias: &[f32],
        clamp: Option<(f32, f32)>,
        out: &mut [f32],
    ) {
        let [oh, ow] = plan.geometry.output;
        let row_step = plan.geometry.stride[0] * plan.width;
        let max_offset = plan.offsets.iter().copied().max().unwrap_or(0);
        // The furthest read: the last row's block starting at the last multiple of BLOCK_W.
        let last = (oh - 1) * row_step + max_offset + (ow - 1) / BLOCK_W * BLOCK_W + BLOCK_W;
        assert!(last <= scratch.len(), "stem scratch too small");
        let channels = bias.len();
        let plane = oh * ow;
        let mut o = 0;
        while o + 4 <= channels {
            // SAFETY: AVX-512F (this function's feature); reads bounded by `last` above.
            unsafe {
                channels_n::<4>(
                    plan,
                    scratch,
                    weights,
                    bias,
                    clamp,
                    &mut out[o * plane..][..4 * plane],
                    o,
                )
            };
            o += 4;
        }
        while o < channels {
            // SAFETY: as above.
            unsafe {
                channels_n::<1>(
                    plan,
                    scratch,
                    weights,
                    bias,
                    clamp,
                    &mut out[o * plane..][..plane],
                    o,
                )
            };
            o += 1;
        }
    }

    /// Output channels `first..first + O` into `out` (their `O` planes).
    #[target_feature(enable = "avx512f")]
    unsafe fn channels_n<const O: usize>(
        plan: &StemPlan,
        scratch: &[f32],
        weights: &[f32],
        bias: &[f32],
        clamp: Option<(f32, f32)>,
        out: &mut [f32],
        first: usize,
    ) {
        const V: usize = 16;
        const NV: usize = BLOCK_W / V;
        let [oh, ow] = plan.geometry.output;
        let row_step = plan.geometry.stride[0] * plan.width;
        let taps = plan.taps();
        let (lo, hi) = clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        let (lo, hi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
        let base = scratch.as_ptr();
        let w: [&[f32]; O] = std::array::from_fn(|k| &weights[(first + k) * taps..][..taps]);
        for y in 0..oh {
            for x0 in (0..ow).step_by(BLOCK_W) {
                let mut acc = [[_mm512_setzero_ps(); NV]; O];
                for (t, &off) in plan.offsets.iter().enumerate() {
                    // SAFETY: y·row_step + off + x0 + BLOCK_W <= the caller's `last`.
                    let p = unsafe { base.add(y * row_step + off + x0) };
                    let x: [__m512; NV] =
                        std::array::from_fn(|v| unsafe { _mm512_loadu_ps(p.add(v * V)) });
                    for (k, acc) in acc.iter_mut().enumerate() {
                        let kv = _mm512_set1_ps(w[k][t]);
                        for (a, &xv) in acc.iter_mut().zip(&x) {
                            *a = _mm512_fmadd_ps(kv, xv, *a);
                        }
                    }
                }
                for (k, acc) in acc.iter().enumerate() {
                    let row = &mut out[k * oh * ow + y * ow..][..ow];
                    for (v, &a) in acc.iter().enumerate() {
                        let x = x0 + v * V;
                        if x >= ow {
                            break;
                        }
                        let a = _mm512_add_ps(a, _mm512_set1_ps(bias[first + k]));
                        let a = match clamp {
                            Some(_) => _mm512_min_ps(_mm512_max_ps(a, lo), hi),
                            None => a,
                        };
                        let n = V.min(ow - x);
                        let mask: __mmask16 = if n == V { !0 } else { (1u16 << n) - 1 };
                        // SAFETY: the mask covers only columns x..x+n < ow of this row.
                        unsafe { _mm512_mask_storeu_ps(row.as_mut_ptr().add(x), mask, a) };
                    }
                }
            }
        }
    }

    /// [`run_avx512`] for CPUs with AVX2 and FMA but not AVX-512 (8-lane vectors, 16
    /// registers): groups of 4 output channels (then single ones), blocks of one row × 16
    /// columns, 8 accumulators; the same operations in the same order as
    /// [`StemPlan::run_portable`], so the outputs are bit-identical to it.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn run_avx2(
        plan: &StemPlan,
        scratch: &[f32],
        weights: &[f32],
        bias: &[f32],
        clamp: Option<(f32, f32)>,
        out: &mut [f32],
    ) {
        let [oh, ow] = plan.geometry.output;
        let row_step = plan.geometry.stride[0] * plan.width;
        let max_offset = plan.offsets.iter().copied().max().unwrap_or(0);
        // The furthest read: the last row's block of 16 ends within its block of BLOCK_W.
        let last = (oh - 1) * row_step + max_offset + (ow - 1) / BLOCK_W * BLOCK_W + BLOCK_W;
        assert!(last <= scratch.len(), "stem scratch too small");
        let channels = bias.len();
        let plane = oh * ow;
        let mut o = 0;
        while o < channels {
            let n = if o + 4 <= channels { 4 } else { 1 };
            let out = &mut out[o * plane..][..n * plane];
            // SAFETY: AVX2 and FMA (this function's features); reads bounded by `last` above.
            unsafe {
                if n == 4 {
                    channels_avx2::<4>(plan, scratch, weights, bias, clamp, out, o)
                } else {
                    channels_avx2::<1>(plan, scratch, weights, bias, clamp, out, o)
                }
            };
            o += n;
        }
    }

    /// Output channels `first..first + O` into `out` (their `O` planes), 8-lane vectors.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn channels_avx2<const O: usize>(
        plan: &StemPlan,
        scratch: &[f32],
        weights: &[f32],
        bias: &[f32],
        clamp: Option<(f32, f32)>,
        out: &mut [f32],
        first: usize,
    ) {
        const V: usize = 8;
        const NV: usize = 2;
        let [oh, ow] = plan.geometry.output;
        let row_step = plan.geometry.stride[0] * plan.width;
        let taps = plan.taps();
        let (lo, hi) = clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        let (lo, hi) = (_mm256_set1_ps(lo), _mm256_set1_ps(hi));
        let base = scratch.as_ptr();
        let w: [&[f32]; O] = std::array::from_fn(|k| &weights[(first + k) * taps..][..taps]);
        for y in 0..oh {
            for x0 in (0..ow).step_by(V * NV) {
                let mut acc = [[_mm256_setzero_ps(); NV]; O];
                for (t, &off) in plan.offsets.iter().enumerate() {
                    // SAFETY: y·row_step + off + x0 + 16 <= the caller's `last` (x0 + 16 stays
                    // inside x0's block of BLOCK_W columns).
                    let p = unsafe { base.add(y * row_step + off + x0) };
                    let x: [__m256; NV] =
                        std::array::from_fn(|v| unsafe { _mm256_loadu_ps(p.add(v * V)) });
                    for (k, acc) in acc.iter_mut().enumerate() {
                        let kv = _mm256_set1_ps(w[k][t]);
                        for (a, &xv) in acc.iter_mut().zip(&x) {
                            *a = _mm256_fmadd_ps(kv, xv, *a);
                        }
                    }
                }
                for (k, acc) in acc.iter().enumerate() {
                    let row = &mut out[k * oh * ow + y * ow..][..ow];
                    for (v, &a) in acc.iter().enumerate() {
                        let x = x0 + v * V;
                        if x >= ow {
                            break;
                        }
                        let a = _mm256_add_ps(a, _mm256_set1_ps(bias[first + k]));
                        let a = match clamp {
                            Some(_) => _mm256_min_ps(_mm256_max_ps(a, lo), hi),
                            None => a,
                        };
                        let n = V.min(ow - x);
                        if n == V {
                            // SAFETY: columns x..x+8 <= ow of this row.
                            unsafe { _mm256_storeu_ps(row.as_mut_ptr().add(x), a) };
                        } else {
                            let mut tail = [0.0f32; V];
                            // SAFETY: `tail` holds 8 floats.
                            unsafe { _mm256_storeu_ps(tail.as_mut_ptr(), a) };
                            row[x..x + n].copy_from_slice(&tail[..n]);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The convolution as ONNX defines it, straight from the unpadded input.
    fn reference(g: &Geometry, planes: usize, x: &[f32], w: &[f32], bias: &[f32]) -> Vec<f32> {
        let ([ih, iw], [kh, kw], [sh, sw]) = (g.input, g.kernel, g.stride);
        let [oh, ow] = g.output;
        let mut out = vec![0.0; bias.len() * oh * ow];
        for (o, &b) in bias.iter().enumerate() {
            for y in 0..oh {
                for xx in 0..ow {
                    let mut a = b as f64;
                    for c in 0..planes {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (y * sh + ky) as isize - g.pad_before[0] as isize;
                                let ix = (xx * sw + kx) as isize - g.pad_before[1] as isize;
                                if iy < 0 || ix < 0 || iy >= ih as isize || ix >= iw as isize {
                                    continue;
                                }
                                let v = x[(c * ih + iy as usize) * iw + ix as usize] as f64;
                                a += w[((o * planes + c) * kh + ky) * kw + kx] as f64 * v;
                            }
                        }
                    }
                    out[(o * oh + y) * ow + xx] = a as f32;
                }
            }
        }
        out
    }

    fn check(
        planes: usize,
        channels: usize,
        input: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        pb: [usize; 2],
        pa: [usize; 2],
    ) {
        let g = Geometry::new(input, kernel, stride, pb, pa).unwrap();
        let plan = StemPlan::new(g, planes);
        let x: Vec<f32> = (0..planes * input[0] * input[1])
            .map(|i| ((i as f32) * 0.37).sin())
            .collect();
        let w: Vec<f32> = (0..channels * plan.taps())
            .map(|i| ((i as f32) * 0.71).cos())
            .collect();
        let bias: Vec<f32> = (0..channels).map(|o| o as f32 * 0.1 - 0.5).collect();
        let want = reference(&g, planes, &x, &w, &bias);
        let mut scratch = Vec::new();
        let mut got = vec![f32::NAN; want.len()];
        plan.run(&x, &w, &bias, None, &mut got, &mut scratch);
        let mut portable = vec![f32::NAN; want.len()];
        plan.run_portable(&scratch, &w, &bias, None, &mut portable);
        #[cfg(target_arch = "x86_64")]
        if avx2_fma() {
            // The AVX2 path, whatever the widest path of this CPU is: bit for bit the portable.
            let mut avx2 = vec![f32::NAN; want.len()];
            // SAFETY: the CPU has AVX2 and FMA.
            unsafe { x86::run_avx2(&plan, &scratch, &w, &bias, None, &mut avx2) };
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&avx2),
                bits(&portable),
                "{g:?}: AVX2 path against portable"
            );
        }
        for (i, ((a, p), b)) in got.iter().zip(&portable).zip(&want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "{g:?} output {i}: {a} vs {b}"
            );
            assert!(
                (p - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "{g:?} portable {i}: {p} vs {b}"
            );
        }
        plan.run(&x, &w, &bias, Some((0.0, 6.0)), &mut got, &mut scratch);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b.clamp(0.0, 6.0)).abs() <= 1e-5 * (1.0 + b.abs()));
        }
    }

    #[test]
    fn matches_the_definition_on_the_stems_and_edge_cases() {
        // EfficientNet-Lite0/1/2 stems: 3 → 32, 3×3, stride 2, TF "SAME" (0 before, 1 after).
        check(3, 32, [224, 224], [3, 3], [2, 2], [0, 0], [1, 1]);
        check(3, 32, [240, 240], [3, 3], [2, 2], [0, 0], [1, 1]);
        check(3, 32, [260, 260], [3, 3], [2, 2], [0, 0], [1, 1]);
        // Symmetric padding, stride 1, odd sizes, one plane, a plane narrower than one vector,
        // asymmetric stride, a 7×7 kernel.
        check(3, 8, [15, 37], [3, 3], [1, 1], [1, 1], [1, 1]);
        check(1, 4, [5, 9], [3, 3], [2, 2], [1, 1], [1, 1]);
        check(2, 5, [20, 70], [3, 5], [1, 3], [1, 2], [1, 2]);
        check(3, 16, [31, 29], [7, 7], [2, 2], [3, 3], [3, 3]);
        // The convolutions after Xception's and Inception-v3's stems: 32 planes, 3×3, stride 1.
        check(32, 64, [40, 37], [3, 3], [1, 1], [0, 0], [0, 0]);
        check(32, 32, [23, 70], [3, 3], [1, 1], [1, 1], [1, 1]);
    }
}
