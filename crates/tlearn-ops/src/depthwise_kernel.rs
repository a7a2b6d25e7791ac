//! The arithmetic of a depthwise 2-D convolution over one channel plane (f32, any kernel size,
//! stride and explicit zero padding, optional clamps), with explicit AVX-512 / AVX code picked at
//! run time and a portable path for other CPUs.
//!
//! Why it exists: on EfficientNet-Lite, tract 0.23.9's `DepthWiseConv` took half of every
//! image's inference time (15 of 30 ms at batch 1 on this machine, 34.5 M of the network's
//! 384 M multiply-adds), mostly in strided and padded zones that its vector kernel does not
//! cover. [`super::depthwise_op`] swaps it in for tract's operator inside the tract plan.
//!
//! How, on AVX-512 for the network's own shapes (3×3 and 5×5, stride 1 or 2, any padding:
//! `x86::direct`): straight from the input plane, `ROWS` output rows × up to 32 columns at a
//! time in registers. Each input row of the block is loaded once with masked 16-lane loads
//! (columns outside the plane read as zero, rows outside it are zero vectors), clamped (the
//! folded ReLU6), for stride 2 split into even and odd columns (`vpermt2ps`), and each tap's
//! columns are a lane shift (`valignd`) of those vectors; the row then feeds every output row of
//! the block that it reaches. Measured reason: the earlier design copied each zero-padded plane
//! into `stride_w` "phase" planes first, and that copy took more time than the arithmetic (16%
//! of `tlearn extract` on the Tux Paint photos, one thread, against 13% for the arithmetic;
//! `perf record`), its samples on the first read of each input vector. Reading the plane once,
//! in the loop that uses it, took the operator from 31.6% to 22.6% of the samples of that
//! extraction (same photos, bit-identical `features.npy`), and on Lite0 at batch 1 on one core
//! (`examples/profile_ops`, medians of 6 alternating runs) from 2.81 to
//! 1.84 ms per image, `plan.run` from 7.80 to 6.81 ms. Tried and dropped (no gain in
//! `examples/dw_bench`, minima of 5 alternating runs): one copy of the code per input row so
//! the taps each row feeds are known at compile time (1.10 against 0.93 ms over the Lite0
//! layers), and 7-row blocks (every Lite plane size is a multiple of 7; 1.60 against 1.05 ms).
//!
//! The same direct design on AVX2 (8-lane loads once per row, `vperm2f128` + `vpalignr` for
//! the column shifts, `vshufps` + `vpermpd` for the stride-2 split; bit-identical) was slower on
//! a Zen 3 core than the phase planes below: 8.5-9.1 against 6.1-7.1 ms over Lite0's
//! one-channel layers (`examples/dw_bench`, two alternating runs): two shuffles per tap and
//! vector cost more than the copy.
//!
//! Elsewhere (other kernels and strides, CPUs without AVX-512, an input clamp that does not
//! keep 0 at 0) the phase-plane path stays: the zero-padded input plane is laid out once per
//! channel as `stride_w` "phase" planes (phase `q` holds padded columns `q, q + stride_w, ...`),
//! so every kernel tap reads a contiguous run of the scratch for a run of contiguous outputs,
//! with no edge cases left in the inner loop, and `ROWS` rows × up to `BLOCK_W` columns are
//! computed at a time with taps as the loop around them.
//!
//! On every path each output is `bias + Σ tap·x` in the taps' row-major order with ordinary
//! (unfused) multiplies and adds: the arithmetic of tract's operator, so the results are
//! bit-identical to it, and identical on every instruction set this file has a path for (the
//! tests compare each vector path with the portable one bit for bit).

/// Shape of one depthwise convolution: kernel, stride and padding per spatial axis (`[h, w]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Geometry {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Zero rows above / columns left of the input (the rest of the padding is implied by
    /// `output`).
    pub pad_before: [usize; 2],
    pub input: [usize; 2],
    pub output: [usize; 2],
}

impl Geometry {
    /// `output` from the input, kernel, stride and padding on both sides, as ONNX defines it.
    pub fn new(
        input: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        pad_before: [usize; 2],
        pad_after: [usize; 2],
    ) -> Option<Geometry> {
        let mut output = [0; 2];
        for a in 0..2 {
            let padded = input[a] + pad_before[a] + pad_after[a];
            if kernel[a] == 0 || stride[a] == 0 || padded < kernel[a] {
                return None;
            }
            output[a] = (padded - kernel[a]) / stride[a] + 1;
        }
        Some(Geometry {
            kernel,
            stride,
            pad_before,
            input,
            output,
        })
    }

    /// Rows of each phase plane: every output row rounded up to a whole block of [`ROWS`]
    /// (the extra rows are zeros and their outputs are not stored).
    fn padded_rows(&self) -> usize {
        (self.output[0].div_ceil(ROWS) * ROWS - 1) * self.stride[0] + self.kernel[0]
    }

    /// Width of one phase row: every block of outputs (rounded up to the chunk) plus the
    /// furthest tap to its right.
    fn phase_width(&self) -> usize {
        self.output[1].div_ceil(BLOCK_W) * BLOCK_W + (self.kernel[1] - 1) / self.stride[1] + 1
    }

    /// Scratch floats [`Plan::conv_channel`] needs: the phase planes, then one padded row.
    pub fn scratch_len(&self) -> usize {
        self.stride[1] * (self.padded_rows() + 1) * self.phase_width()
    }

    /// Offset in the scratch of tap `(ky, kx)` for output `(0, 0)`.
    fn tap_offsets(&self) -> Vec<usize> {
        let (rows, pw) = (self.padded_rows(), self.phase_width());
        let mut offsets = Vec::with_capacity(self.kernel[0] * self.kernel[1]);
        for ky in 0..self.kernel[0] {
            for kx in 0..self.kernel[1] {
                let (phase, shift) = (kx % self.stride[1], kx / self.stride[1]);
                offsets.push((phase * rows + ky) * pw + shift);
            }
        }
        offsets
    }
}

/// Per-operator constants worked out once: the scratch layout of every tap.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Plan {
    pub geometry: Geometry,
    offsets: Vec<usize>,
    /// The largest of `offsets` (checked against the scratch once per call).
    max_offset: usize,
    /// A shape the AVX-512 direct kernel covers: square 3×3 or 5×5 kernel, stride 1 or 2 on
    /// both axes.
    direct: bool,
}

impl Plan {
    pub fn new(geometry: Geometry) -> Plan {
        let offsets = geometry.tap_offsets();
        let [kh, kw] = geometry.kernel;
        let [sh, sw] = geometry.stride;
        Plan {
            direct: kh == kw && matches!(kh, 3 | 5) && sh == sw && matches!(sh, 1 | 2),
            max_offset: offsets.iter().copied().max().unwrap_or(0),
            offsets,
            geometry,
        }
    }

    /// Convolve one channel: `input` is its `h × w` plane, `taps` its `kh × kw` kernel (row
    /// major), `out` the `oh × ow` plane to fill. `input_clamp` is applied to each input value as
    /// it is read (the ReLU6 of the layer before, folded in here; padding stays zero), `clamp`
    /// (lo, hi) to each output
    /// (ReLU6 is `(0, 6)`). `scratch` is resized as needed and may be reused across calls.
    #[allow(clippy::too_many_arguments)]
    pub fn conv_channel(
        &self,
        input: &[f32],
        input_clamp: Option<(f32, f32)>,
        taps: &[f32],
        bias: f32,
        clamp: Option<(f32, f32)>,
        out: &mut [f32],
        scratch: &mut Vec<f32>,
    ) {
        self.conv_channel_with(
            input,
            input_clamp,
            taps,
            bias,
            clamp,
            out,
            scratch,
            Isa::Best,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn conv_channel_with(
        &self,
        input: &[f32],
        input_clamp: Option<(f32, f32)>,
        taps: &[f32],
        bias: f32,
        clamp: Option<(f32, f32)>,
        out: &mut [f32],
        scratch: &mut Vec<f32>,
        isa: Isa,
    ) {
        let g = &self.geometry;
        assert_eq!(input.len(), g.input[0] * g.input[1], "input plane size");
        assert_eq!(taps.len(), g.kernel[0] * g.kernel[1], "kernel size");
        assert_eq!(out.len(), g.output[0] * g.output[1], "output plane size");
        #[cfg(target_arch = "x86_64")]
        if isa == Isa::Best
            && self.direct
            && input_clamp.is_none_or(|(lo, hi)| lo <= 0.0 && 0.0 <= hi)
            && std::is_x86_feature_detected!("avx512f")
        {
            // SAFETY: the CPU has AVX-512F; the function checks every length it relies on.
            return unsafe { x86::direct_avx512(g, input, input_clamp, taps, bias, clamp, out) };
        }
        if scratch.len() < g.scratch_len() {
            scratch.resize(g.scratch_len(), 0.0);
        }
        let (phases, row) = scratch.split_at_mut(g.stride[1] * g.padded_rows() * g.phase_width());
        let padded_row = &mut row[..g.stride[1] * g.phase_width()];
        fill_phases(g, input, input_clamp, phases, padded_row);
        let row_step = g.stride[0] * g.phase_width();
        let rows = Rows {
            phases,
            offsets: &self.offsets,
            max_offset: self.max_offset,
            taps,
            row_step,
            bias,
            clamp,
        };
        conv_rows(&rows, g.output[1], out, isa);
    }
}

/// Lay the zero-padded plane out as `stride_w` phase planes of `padded_rows × phase_width`
/// (`padded`: room for one padded input row, `stride_w × phase_width`).
///
/// The copy (with the folded input clamp) is plain Rust, compiled a second time with AVX-512
/// enabled and picked at run time, rows copied with masked 16-lane vectors: the portable
/// build's SSE2 loops (scalar tails on the 7- and 14-wide planes) took 16.9% of `tlearn
/// extract` on the Tux Paint photos (`perf record`, one thread), 14.1% with this. What was left
/// was reading the input plane (memory, not arithmetic), which the direct AVX-512 path below
/// removes for the 3×3 / 5×5, stride 1 / 2 convolutions; this copy now serves the other shapes
/// on AVX-512 CPUs. Without AVX-512 the portable build runs: an AVX2 build of it with an AVX2
/// deinterleave gained nothing on a Zen core (`examples/dw_bench`, the 112- and 56-wide
/// layers, three alternating runs each way, within noise).
fn fill_phases(
    g: &Geometry,
    input: &[f32],
    input_clamp: Option<(f32, f32)>,
    scratch: &mut [f32],
    padded: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F; the body is safe code.
        return unsafe { x86::fill_phases_avx512(g, input, input_clamp, scratch, padded) };
    }
    fill_phases_body(g, input, input_clamp, scratch, padded)
}

#[inline(always)]
fn fill_phases_body(
    g: &Geometry,
    input: &[f32],
    input_clamp: Option<(f32, f32)>,
    scratch: &mut [f32],
    padded: &mut [f32],
) {
    let (rows, pw) = (g.padded_rows(), g.phase_width());
    let [in_h, in_w] = g.input;
    let [pad_t, pad_l] = g.pad_before;
    let sw = g.stride[1];
    // Strided: one zero-padded input row, `sw × pw` wide, deinterleaved into the phases (its
    // borders stay zero; stride 1 copies straight into the scratch and never reads it).
    if sw > 1 {
        padded.fill(0.0);
    }
    let n = in_w.min(padded.len().saturating_sub(pad_l));
    for r in 0..rows {
        let src = r
            .checked_sub(pad_t)
            .filter(|&ir| ir < in_h)
            .map(|ir| &input[ir * in_w..][..in_w]);
        let Some(src) = src else {
            for phase in 0..sw {
                scratch[(phase * rows + r) * pw..][..pw].fill(0.0);
            }
            continue;
        };
        if sw == 1 {
            let dst = &mut scratch[r * pw..][..pw];
            let left = pad_l.min(pw);
            dst[..left].fill(0.0);
            copy_clamped(&mut dst[left..left + n], &src[..n], input_clamp);
            dst[left + n..].fill(0.0);
            continue;
        }
        copy_clamped(
            &mut padded[pad_l.min(sw * pw)..][..n],
            &src[..n],
            input_clamp,
        );
        if sw == 2 {
            let (even, odd) = scratch[r * pw..].split_at_mut(rows * pw);
            deinterleave2(padded, &mut even[..pw], &mut odd[..pw]);
        } else {
            for (j, group) in padded.chunks_exact(sw).enumerate() {
                for (phase, &v) in group.iter().enumerate() {
                    scratch[(phase * rows + r) * pw + j] = v;
                }
            }
        }
    }
}

/// `even[j] = src[2j]`, `odd[j] = src[2j + 1]`: the two column phases of a stride-2 row.
fn deinterleave2(src: &[f32], even: &mut [f32], odd: &mut [f32]) {
    assert!(even.len() == odd.len() && src.len() >= 2 * even.len());
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F; lengths checked above.
        done = unsafe { x86::deinterleave2_avx512(src, even, odd) };
    }
    for ((e, o), pair) in even[done..]
        .iter_mut()
        .zip(&mut odd[done..])
        .zip(src[2 * done..].chunks_exact(2))
    {
        *e = pair[0];
        *o = pair[1];
    }
}

#[inline(always)]
fn copy_clamped(dst: &mut [f32], src: &[f32], bounds: Option<(f32, f32)>) {
    #[cfg(target_arch = "x86_64")]
    if let Some((lo, hi)) = bounds {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F; the function checks the lengths.
            return unsafe { x86::copy_clamped_avx512(dst, src, lo, hi) };
        }
    }
    match bounds {
        None => dst.copy_from_slice(src),
        Some(_) => {
            for (d, &v) in dst.iter_mut().zip(src) {
                *d = clamp(v, bounds);
            }
        }
    }
}

struct Rows<'a> {
    phases: &'a [f32],
    offsets: &'a [usize],
    max_offset: usize,
    taps: &'a [f32],
    /// Scratch floats between the first input rows of two consecutive output rows.
    row_step: usize,
    bias: f32,
    clamp: Option<(f32, f32)>,
}

/// Output rows computed together: `ROWS` × (up to 32 columns) accumulators are independent add
/// chains, enough to keep the vector adders busy (one chain per tap would wait on each add).
const ROWS: usize = 4;

/// Every output row, in blocks of [`ROWS`] rows × up to 32 columns, with the widest vectors
/// the CPU has (checked at run time: a portable binary still runs 512-bit vectors where it can).
/// All paths do the same operations in the same order, so they give bit-identical outputs.
fn conv_rows(rows: &Rows, out_w: usize, out: &mut [f32], isa: Isa) {
    let out_h = out.len() / out_w;
    // Every read of a block is at most this far into the scratch: checked once here, so the
    // vector loops read through raw pointers with no bounds checks.
    let max_offset = rows.max_offset;
    let last_block = (out_h.div_ceil(ROWS) * ROWS - 1) * rows.row_step;
    assert!(last_block + max_offset + out_w.div_ceil(BLOCK_W) * BLOCK_W <= rows.phases.len());
    assert_eq!(rows.taps.len(), rows.offsets.len());
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Best {
        // A plane at most 8 wide fills one 8-lane vector; 16 lanes would compute half zeros.
        if out_w <= 8 && std::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU has AVX; reads are in bounds as asserted above.
            return unsafe { x86::rows_avx_n::<1>(rows, out_w, out) };
        }
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F; reads are in bounds as asserted above.
            return unsafe { x86::rows_avx512(rows, out_w, out) };
        }
        if std::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU has AVX; reads are in bounds as asserted above.
            return unsafe { x86::rows_avx(rows, out_w, out) };
        }
    }
    rows_scalar(rows, out_w, out)
}

/// Which code path [`conv_rows`] takes: the widest the CPU has, or (tests) the portable one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    Best,
    #[cfg_attr(not(test), allow(dead_code))]
    Scalar,
}

/// Columns per block: the scratch rows are padded to a multiple of this.
const BLOCK_W: usize = 32;

/// The portable path, and the definition the vector paths follow.
fn rows_scalar(rows: &Rows, out_w: usize, out: &mut [f32]) {
    let out_h = out.len() / out_w;
    for y in 0..out_h {
        for x in 0..out_w {
            let mut a = rows.bias;
            for (&tap, &offset) in rows.taps.iter().zip(rows.offsets) {
                a += tap * rows.phases[y * rows.row_step + offset + x];
            }
            out[y * out_w + x] = clamp(a, rows.clamp);
        }
    }
}

#[inline(always)]
fn clamp(a: f32, bounds: Option<(f32, f32)>) -> f32 {
    match bounds {
        Some((lo, hi)) => {
            let a = if a < lo { lo } else { a };
            if a > hi {
                hi
            } else {
                a
            }
        }
        None => a,
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Rows, BLOCK_W, ROWS};
    use std::arch::x86_64::*;

    /// 16-lane vectors, two per row (one on planes at most 16 wide).
    pub(super) unsafe fn rows_avx512(rows: &Rows, out_w: usize, out: &mut [f32]) {
        unsafe {
            if out_w <= 16 {
                rows_avx512_n::<1>(rows, out_w, out)
            } else {
                rows_avx512_n::<2>(rows, out_w, out)
            }
        }
    }

    /// [`rows_n`] with `NV` 16-lane vectors per row.
    #[target_feature(enable = "avx512f")]
    unsafe fn rows_avx512_n<const NV: usize>(rows: &Rows, out_w: usize, out: &mut [f32]) {
        // SAFETY: the caller's (AVX-512F present, reads in bounds).
        unsafe { rows_n::<F32x16, NV>(rows, out_w, out) }
    }

    /// 8-lane vectors, two per row: `ROWS × 2` accumulators, so that they, the tap and the
    /// loaded vector fit AVX's 16 registers. Four per row (the block's whole 32 columns, as the
    /// AVX-512 path) made 16 accumulators that spilled on every tap: on a Zen 3 core the
    /// one-channel layers of Lite0 (112 to 28 wide) took 2.07-2.78 ms an image with four and
    /// 1.73-1.83 with two (`examples/dw_bench`, three alternating runs), and the network's
    /// depthwise operators 4.02 against 4.81 ms (medians of five alternating `profile_ops`
    /// runs). Two vectors divide [`BLOCK_W`], so no read leaves the padded rows.
    pub(super) unsafe fn rows_avx(rows: &Rows, out_w: usize, out: &mut [f32]) {
        unsafe { rows_avx_n::<{ BLOCK_W / 16 }>(rows, out_w, out) }
    }

    /// [`rows_n`] with `NV` 8-lane vectors per row.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn rows_avx_n<const NV: usize>(rows: &Rows, out_w: usize, out: &mut [f32]) {
        // SAFETY: the caller's (AVX present, reads in bounds).
        unsafe { rows_n::<F32x8, NV>(rows, out_w, out) }
    }

    /// The few operations [`rows_n`] does on a vector of `N` lanes, for each x86 width, so that
    /// one body serves the AVX-512 and the AVX paths. Every method is `#[inline(always)]`: it
    /// compiles inside the caller's `#[target_feature]` function, with that function's
    /// instructions (no call per vector operation).
    trait Lanes: Copy {
        const N: usize;
        unsafe fn splat(v: f32) -> Self;
        unsafe fn load(p: *const f32) -> Self;
        /// `self + k·x` with an ordinary multiply and add (not fused), as `rows_scalar`.
        unsafe fn mul_add(self, k: Self, x: Self) -> Self;
        /// [`super::clamp`] lane by lane: `max(lo, ·)` then `min(hi, ·)` return their second
        /// operand when it is NaN or equal, so NaN and -0.0 come out as the scalar clamp's.
        unsafe fn clamp(self, lo: Self, hi: Self) -> Self;
        /// Store lanes `0..n` (`1 <= n <= N`) at `p`.
        unsafe fn store_first(self, p: *mut f32, n: usize);
    }

    #[derive(Clone, Copy)]
    struct F32x16(__m512);

    impl Lanes for F32x16 {
        const N: usize = 16;
        #[inline(always)]
        unsafe fn splat(v: f32) -> Self {
            F32x16(unsafe { _mm512_set1_ps(v) })
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            F32x16(unsafe { _mm512_loadu_ps(p) })
        }
        #[inline(always)]
        unsafe fn mul_add(self, k: Self, x: Self) -> Self {
            F32x16(unsafe { _mm512_add_ps(self.0, _mm512_mul_ps(k.0, x.0)) })
        }
        #[inline(always)]
        unsafe fn clamp(self, lo: Self, hi: Self) -> Self {
            F32x16(unsafe { _mm512_min_ps(hi.0, _mm512_max_ps(lo.0, self.0)) })
        }
        #[inline(always)]
        unsafe fn store_first(self, p: *mut f32, n: usize) {
            let mask: __mmask16 = if n >= 16 { !0 } else { (1u16 << n) - 1 };
            unsafe { _mm512_mask_storeu_ps(p, mask, self.0) }
        }
    }

    #[derive(Clone, Copy)]
    struct F32x8(__m256);

    impl Lanes for F32x8 {
        const N: usize = 8;
        #[inline(always)]
        unsafe fn splat(v: f32) -> Self {
            F32x8(unsafe { _mm256_set1_ps(v) })
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            F32x8(unsafe { _mm256_loadu_ps(p) })
        }
        #[inline(always)]
        unsafe fn mul_add(self, k: Self, x: Self) -> Self {
            F32x8(unsafe { _mm256_add_ps(self.0, _mm256_mul_ps(k.0, x.0)) })
        }
        #[inline(always)]
        unsafe fn clamp(self, lo: Self, hi: Self) -> Self {
            F32x8(unsafe { _mm256_min_ps(hi.0, _mm256_max_ps(lo.0, self.0)) })
        }
        #[inline(always)]
        unsafe fn store_first(self, p: *mut f32, n: usize) {
            if n >= 8 {
                return unsafe { _mm256_storeu_ps(p, self.0) };
            }
            // AVX stores have no lane mask: the last, short vector goes through the stack.
            let mut lanes = [0f32; 8];
            unsafe {
                _mm256_storeu_ps(lanes.as_mut_ptr(), self.0);
                std::ptr::copy_nonoverlapping(lanes.as_ptr(), p, n);
            }
        }
    }

    /// `ROWS × NV` accumulators in registers, `NV` vectors of `L::N` lanes per row: every tap
    /// adds its product to each (taps in `rows_scalar`'s order), then the clamp and a store of
    /// the lanes inside the plane.
    #[inline(always)]
    unsafe fn rows_n<L: Lanes, const NV: usize>(rows: &Rows, out_w: usize, out: &mut [f32]) {
        let out_h = out.len() / out_w;
        let base = rows.phases.as_ptr();
        let (lo, hi) = rows.clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        // SAFETY: the vector operations are the caller's target feature's; every read is
        // within the scratch (asserted by `conv_rows`), every store within row y0 + r of `out`
        // (lanes x..x + n, x + n <= out_w).
        unsafe {
            let (lo, hi) = (L::splat(lo), L::splat(hi));
            let bias = L::splat(rows.bias);
            for y0 in (0..out_h).step_by(ROWS) {
                let n_rows = ROWS.min(out_h - y0);
                for x0 in (0..out_w).step_by(NV * L::N) {
                    let mut acc = [[bias; NV]; ROWS];
                    for (&tap, &offset) in rows.taps.iter().zip(rows.offsets) {
                        let k = L::splat(tap);
                        let p = base.add(y0 * rows.row_step + offset + x0);
                        for (r, acc) in acc.iter_mut().enumerate() {
                            for (v, a) in acc.iter_mut().enumerate() {
                                *a = a.mul_add(k, L::load(p.add(r * rows.row_step + v * L::N)));
                            }
                        }
                    }
                    for (r, acc) in acc.iter().enumerate().take(n_rows) {
                        let row = out.as_mut_ptr().add((y0 + r) * out_w);
                        for (v, &a) in acc.iter().enumerate() {
                            let x = x0 + v * L::N;
                            if x >= out_w {
                                break;
                            }
                            let a = match rows.clamp {
                                Some(_) => a.clamp(lo, hi),
                                None => a,
                            };
                            a.store_first(row.add(x), L::N.min(out_w - x));
                        }
                    }
                }
            }
        }
    }

    /// Lanes `l` of a 16-lane load at column `c` that fall inside a row `w` wide.
    #[inline(always)]
    fn lane_mask(c: isize, w: isize) -> __mmask16 {
        let lo = (-c).clamp(0, 16) as u32;
        let hi = (w - c).clamp(0, 16) as u32;
        if hi <= lo {
            0
        } else {
            (((1u64 << hi) - 1) & !((1u64 << lo) - 1)) as __mmask16
        }
    }

    /// Lanes `m..m + 16` of `a ++ b` (`m < 16`, known at compile time once unrolled).
    #[inline(always)]
    fn shift(a: __m512, b: __m512, m: usize) -> __m512 {
        // SAFETY (of the target feature): only called from AVX-512F functions.
        unsafe {
            let (a, b) = (_mm512_castps_si512(a), _mm512_castps_si512(b));
            _mm512_castsi512_ps(match m {
                0 => a,
                1 => _mm512_alignr_epi32::<1>(b, a),
                2 => _mm512_alignr_epi32::<2>(b, a),
                3 => _mm512_alignr_epi32::<3>(b, a),
                4 => _mm512_alignr_epi32::<4>(b, a),
                _ => unreachable!("kernel reach beyond 4 columns"),
            })
        }
    }

    /// [`super::Plan::conv_channel`] for the shapes `Plan::direct` covers, straight from the
    /// input plane (no padded copy); the input clamp must keep 0 as 0.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn direct_avx512(
        g: &super::Geometry,
        input: &[f32],
        input_clamp: Option<(f32, f32)>,
        taps: &[f32],
        bias: f32,
        clamp: Option<(f32, f32)>,
        out: &mut [f32],
    ) {
        let a = (input, input_clamp, taps, bias, clamp, out);
        let wide = g.output[1] > 16;
        unsafe {
            match (g.kernel[0], g.stride[0], wide) {
                (3, 1, false) => direct::<3, 1, 1>(g, a),
                (3, 1, true) => direct::<3, 1, 2>(g, a),
                (5, 1, false) => direct::<5, 1, 1>(g, a),
                (5, 1, true) => direct::<5, 1, 2>(g, a),
                (3, 2, false) => direct::<3, 2, 1>(g, a),
                (3, 2, true) => direct::<3, 2, 2>(g, a),
                (5, 2, false) => direct::<5, 2, 1>(g, a),
                (5, 2, true) => direct::<5, 2, 2>(g, a),
                _ => unreachable!("Plan::direct admits only 3×3 / 5×5, stride 1 / 2"),
            }
        }
    }

    type DirectArgs<'a> = (
        &'a [f32],
        Option<(f32, f32)>,
        &'a [f32],
        f32,
        Option<(f32, f32)>,
        &'a mut [f32],
    );

    /// `K × K` kernel, stride `S`, `ROWS` output rows × `NV` 16-lane vectors at a time.
    ///
    /// Each input row of a block is loaded once (masked loads: columns outside the plane read
    /// as zero; rows outside it are zero vectors), clamped, and for stride 2 split into its
    /// even and odd columns; each tap's columns are then a lane shift of those vectors, and
    /// the row feeds every output row of the block that it reaches. For one output, input rows
    /// come in increasing order and columns in increasing order within a row: the taps'
    /// row-major order of [`super::rows_scalar`], with the same unfused multiply and add.
    #[target_feature(enable = "avx512f")]
    unsafe fn direct<const K: usize, const S: usize, const NV: usize>(
        g: &super::Geometry,
        (input, input_clamp, taps, bias, clamp, out): DirectArgs,
    ) {
        const V: usize = 16;
        let [in_h, in_w] = g.input;
        let [out_h, out_w] = g.output;
        let [pad_t, pad_l] = g.pad_before;
        assert_eq!(input.len(), in_h * in_w, "input plane size");
        assert_eq!(taps.len(), K * K, "kernel size");
        assert_eq!(out.len(), out_h * out_w, "output plane size");
        // Vectors loaded per input row: the block's columns and the kernel's reach past them.
        let nload = if S == 1 { NV + 1 } else { 2 * NV + 1 };
        let (lo, hi) = input_clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        let (ilo, ihi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
        let (lo, hi) = clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        let (olo, ohi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
        let idx_even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let idx_odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let bias = _mm512_set1_ps(bias);
        let zero = _mm512_setzero_ps();
        for y0 in (0..out_h).step_by(ROWS) {
            let n_rows = ROWS.min(out_h - y0);
            for x0 in (0..out_w).step_by(NV * V) {
                let base = (x0 * S) as isize - pad_l as isize;
                let mut masks = [0 as __mmask16; 5];
                for (j, m) in masks.iter_mut().enumerate().take(nload) {
                    *m = lane_mask(base + (j * V) as isize, in_w as isize);
                }
                let mut acc = [[bias; NV]; ROWS];
                for i in 0..(ROWS - 1) * S + K {
                    let iy = (y0 * S + i) as isize - pad_t as isize;
                    let mut l = [zero; 5];
                    if iy >= 0 && (iy as usize) < in_h {
                        let row = unsafe { input.as_ptr().add(iy as usize * in_w) };
                        for (j, l) in l.iter_mut().enumerate().take(nload) {
                            // SAFETY: the mask keeps only lanes inside this row of `input`;
                            // masked-out lanes are not read (and do not fault).
                            let x = unsafe {
                                _mm512_maskz_loadu_ps(
                                    masks[j],
                                    row.wrapping_offset(base + (j * V) as isize),
                                )
                            };
                            // Same operand order as `super::clamp` (NaN kept); zeros stay 0.
                            *l = _mm512_min_ps(ihi, _mm512_max_ps(ilo, x));
                        }
                    }
                    // Stride 2: even and odd columns of the row (the last pair from the
                    // extra vector, of which only the low lanes are ever shifted in).
                    let (mut even, mut odd) = ([zero; 3], [zero; 3]);
                    if S == 2 {
                        for v in 0..=NV {
                            let (a, b) = (l[2 * v], if v < NV { l[2 * v + 1] } else { zero });
                            even[v] = _mm512_permutex2var_ps(a, idx_even, b);
                            odd[v] = _mm512_permutex2var_ps(a, idx_odd, b);
                        }
                    }
                    for kx in 0..K {
                        for v in 0..NV {
                            let x = if S == 1 {
                                shift(l[v], l[v + 1], kx)
                            } else if kx % 2 == 0 {
                                shift(even[v], even[v + 1], kx / 2)
                            } else {
                                shift(odd[v], odd[v + 1], kx / 2)
                            };
                            for (r, acc) in acc.iter_mut().enumerate() {
                                let Some(ky) = i.checked_sub(r * S).filter(|&ky| ky < K) else {
                                    continue;
                                };
                                // SAFETY: ky, kx < K and taps.len() == K * K.
                                let k = _mm512_set1_ps(unsafe { *taps.get_unchecked(ky * K + kx) });
                                acc[v] = _mm512_add_ps(acc[v], _mm512_mul_ps(k, x));
                            }
                        }
                    }
                }
                for (r, acc) in acc.iter().enumerate().take(n_rows) {
                    let row = unsafe { out.as_mut_ptr().add((y0 + r) * out_w) };
                    for (v, &a) in acc.iter().enumerate() {
                        let x = x0 + v * V;
                        if x >= out_w {
                            break;
                        }
                        let a = _mm512_min_ps(ohi, _mm512_max_ps(olo, a));
                        let n = V.min(out_w - x);
                        let mask: __mmask16 = if n == V { !0 } else { (1u16 << n) - 1 };
                        // SAFETY: lanes x..x + n of row y0 + r < out_h.
                        unsafe { _mm512_mask_storeu_ps(row.add(x), mask, a) };
                    }
                }
            }
        }
    }

    /// [`super::copy_clamped`] with bounds: 16 lanes at a time, the last (short) vector masked,
    /// so a 7- or 14-wide row is one masked load and store instead of a scalar loop. Same
    /// comparisons as [`super::clamp`] (`max(lo, v)` then `min(hi, ·)` keep a NaN input as is).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn copy_clamped_avx512(dst: &mut [f32], src: &[f32], lo: f32, hi: f32) {
        assert_eq!(dst.len(), src.len());
        let (vlo, vhi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
        let n = src.len();
        let mut i = 0;
        while i < n {
            let k = 16.min(n - i);
            let mask: __mmask16 = if k == 16 { !0 } else { (1u16 << k) - 1 };
            // SAFETY: the mask covers only indices i..i+k < n of both slices.
            unsafe {
                let v = _mm512_maskz_loadu_ps(mask, src.as_ptr().add(i));
                // max(a, b) returns b when either is NaN: `max(v, lo)` would turn a NaN into
                // lo, so the operands are ordered as in `clamp` (`v < lo ? lo : v`).
                let v = _mm512_max_ps(vlo, v);
                let v = _mm512_min_ps(vhi, v);
                _mm512_mask_storeu_ps(dst.as_mut_ptr().add(i), mask, v);
            }
            i += 16;
        }
    }

    /// [`super::fill_phases`] compiled for AVX-512 (the same operations, wider vectors).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn fill_phases_avx512(
        g: &super::Geometry,
        input: &[f32],
        input_clamp: Option<(f32, f32)>,
        scratch: &mut [f32],
        padded: &mut [f32],
    ) {
        super::fill_phases_body(g, input, input_clamp, scratch, padded)
    }

    /// The first `16 × k` outputs of [`super::deinterleave2`]; returns how many were written.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn deinterleave2_avx512(
        src: &[f32],
        even: &mut [f32],
        odd: &mut [f32],
    ) -> usize {
        let idx_even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let idx_odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let n = even.len() / 16 * 16;
        for j in (0..n).step_by(16) {
            // SAFETY: 2j + 32 <= 2n <= src.len(); j + 16 <= n <= even.len() == odd.len().
            unsafe {
                let a = _mm512_loadu_ps(src.as_ptr().add(2 * j));
                let b = _mm512_loadu_ps(src.as_ptr().add(2 * j + 16));
                _mm512_storeu_ps(
                    even.as_mut_ptr().add(j),
                    _mm512_permutex2var_ps(a, idx_even, b),
                );
                _mm512_storeu_ps(
                    odd.as_mut_ptr().add(j),
                    _mm512_permutex2var_ps(a, idx_odd, b),
                );
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook definition, one output at a time, zero outside the input.
    fn reference(g: &Geometry, input: &[f32], taps: &[f32], bias: f32) -> Vec<f32> {
        let mut out = Vec::new();
        for oy in 0..g.output[0] {
            for ox in 0..g.output[1] {
                let mut s = bias;
                for ky in 0..g.kernel[0] {
                    for kx in 0..g.kernel[1] {
                        let iy = (oy * g.stride[0] + ky) as isize - g.pad_before[0] as isize;
                        let ix = (ox * g.stride[1] + kx) as isize - g.pad_before[1] as isize;
                        if iy >= 0
                            && ix >= 0
                            && (iy as usize) < g.input[0]
                            && (ix as usize) < g.input[1]
                        {
                            s += taps[ky * g.kernel[1] + kx]
                                * input[iy as usize * g.input[1] + ix as usize];
                        }
                    }
                }
                out.push(s);
            }
        }
        out
    }

    fn check(
        input: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        pb: [usize; 2],
        pa: [usize; 2],
    ) {
        let g = Geometry::new(input, kernel, stride, pb, pa).unwrap();
        let x: Vec<f32> = (0..input[0] * input[1])
            .map(|i| ((i as f32) * 0.37).sin())
            .collect();
        let k: Vec<f32> = (0..kernel[0] * kernel[1])
            .map(|i| ((i as f32) * 0.71).cos())
            .collect();
        let plan = Plan::new(g);
        let mut out = vec![f32::NAN; g.output[0] * g.output[1]];
        let mut scratch = Vec::new();
        plan.conv_channel(&x, None, &k, 0.25, None, &mut out, &mut scratch);
        let want = reference(&g, &x, &k, 0.25);
        for (i, (a, b)) in out.iter().zip(&want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "{g:?} output {i}: {a} vs {b}"
            );
        }
        // The vector path this CPU takes and the portable one do the same operations in the
        // same order: bit-identical codes whatever the machine.
        let mut portable = vec![f32::NAN; out.len()];
        plan.conv_channel_with(
            &x,
            None,
            &k,
            0.25,
            None,
            &mut portable,
            &mut scratch,
            Isa::Scalar,
        );
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&out),
            bits(&portable),
            "{g:?}: vector vs portable path"
        );
        let mut clamped = vec![0.0; out.len()];
        plan.conv_channel(
            &x,
            None,
            &k,
            0.25,
            Some((0.0, 1.0)),
            &mut clamped,
            &mut scratch,
        );
        for (c, o) in clamped.iter().zip(&out) {
            assert_eq!(*c, o.clamp(0.0, 1.0));
        }
        // Clamping the input as it is read is the definition applied to the clamped input.
        let xc: Vec<f32> = x.iter().map(|v| v.clamp(-0.5, 0.5)).collect();
        let want = reference(&g, &xc, &k, 0.25);
        plan.conv_channel(
            &x,
            Some((-0.5, 0.5)),
            &k,
            0.25,
            None,
            &mut out,
            &mut scratch,
        );
        for (i, (a, b)) in out.iter().zip(&want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "{g:?} clamped input {i}: {a} vs {b}"
            );
        }
    }

    #[test]
    fn the_clamped_copy_is_the_scalar_clamp_bit_for_bit_at_every_length() {
        // The AVX-512 copy (masked tail) against `clamp` itself: NaN kept, -0.0 kept, both
        // bounds, every tail length around the 16-lane vector.
        for n in 0..40 {
            let src: Vec<f32> = (0..n)
                .map(|i| match i % 5 {
                    0 => f32::NAN,
                    1 => -0.0,
                    2 => 7.5,
                    3 => -3.0,
                    _ => i as f32 * 0.1,
                })
                .collect();
            let mut dst = vec![99.0; n];
            copy_clamped(&mut dst, &src, Some((0.0, 6.0)));
            for (d, s) in dst.iter().zip(&src) {
                assert_eq!(d.to_bits(), clamp(*s, Some((0.0, 6.0))).to_bits(), "n {n}");
            }
        }
    }

    #[test]
    fn matches_the_definition_for_every_efficientnet_shape_and_edge_cases() {
        // EfficientNet-Lite: 3×3 and 5×5, stride 1 with symmetric padding, stride 2 with TF
        // "SAME" (more padding after than before).
        for size in [112, 56, 28, 14, 7] {
            check([size, size], [3, 3], [1, 1], [1, 1], [1, 1]);
            check([size, size], [5, 5], [1, 1], [2, 2], [2, 2]);
            check([size, size], [3, 3], [2, 2], [0, 0], [1, 1]);
            check([size, size], [5, 5], [2, 2], [1, 1], [2, 2]);
        }
        // Odd sizes, no padding, asymmetric kernels and strides, kernel as large as the input,
        // plane narrower than one block, padding wider than the kernel reach.
        check([9, 13], [3, 3], [1, 1], [0, 0], [0, 0]);
        check([10, 33], [1, 7], [1, 3], [0, 3], [0, 3]);
        check([5, 5], [5, 5], [1, 1], [0, 0], [0, 0]);
        check([3, 2], [3, 3], [2, 1], [1, 1], [1, 1]);
        check([17, 40], [7, 7], [2, 2], [3, 3], [3, 3]);
        check([4, 4], [3, 3], [1, 1], [4, 4], [4, 4]);
    }

    #[test]
    fn the_row_kernels_clamp_nan_and_negative_zero_as_the_scalar_clamp() {
        // Shapes the direct AVX-512 kernel does not take (a 3×7 kernel): planes at most 8 wide
        // run the AVX rows, wider ones the AVX-512 rows. With zero taps and a -0.0 bias every
        // output is -0.0, or NaN where the kernel reaches a NaN input; clamped to (0, 6), the
        // scalar clamp keeps both, and so must every vector path.
        for (input, kernel) in [([6, 12], [3, 7]), ([6, 40], [3, 7]), ([4, 20], [1, 7])] {
            let g = Geometry::new(input, kernel, [1, 1], [0, 0], [0, 0]).unwrap();
            let x: Vec<f32> = (0..input[0] * input[1])
                .map(|i| {
                    if i % 23 == 5 {
                        f32::NAN
                    } else {
                        -1.0 - i as f32
                    }
                })
                .collect();
            let taps = vec![0.0f32; kernel[0] * kernel[1]];
            let plan = Plan::new(g);
            let mut scratch = Vec::new();
            let run = |isa: Isa, scratch: &mut Vec<f32>| {
                let mut out = vec![1.0f32; g.output[0] * g.output[1]];
                plan.conv_channel_with(
                    &x,
                    None,
                    &taps,
                    -0.0,
                    Some((0.0, 6.0)),
                    &mut out,
                    scratch,
                    isa,
                );
                out.iter().map(|f| f.to_bits()).collect::<Vec<u32>>()
            };
            let portable = run(Isa::Scalar, &mut scratch);
            assert!(portable.contains(&(-0.0f32).to_bits()), "{g:?}");
            assert!(
                portable.iter().any(|&b| f32::from_bits(b).is_nan()),
                "{g:?}"
            );
            assert_eq!(run(Isa::Best, &mut scratch), portable, "{g:?}");
        }
    }

    #[test]
    fn deinterleave2_splits_even_and_odd_columns_at_every_length() {
        for n in 0..41 {
            let src: Vec<f32> = (0..2 * n + 1).map(|i| i as f32).collect();
            let (mut even, mut odd) = (vec![f32::NAN; n], vec![f32::NAN; n]);
            deinterleave2(&src, &mut even, &mut odd);
            for j in 0..n {
                assert_eq!(
                    (even[j], odd[j]),
                    (src[2 * j], src[2 * j + 1]),
                    "n {n} j {j}"
                );
            }
        }
    }

    #[test]
    fn geometry_follows_the_onnx_output_size() {
        let g = Geometry::new([224, 224], [3, 3], [2, 2], [0, 0], [1, 1]).unwrap();
        assert_eq!(g.output, [112, 112]);
        let g = Geometry::new([56, 56], [5, 5], [2, 2], [1, 1], [2, 2]).unwrap();
        assert_eq!(g.output, [28, 28]);
        assert!(Geometry::new([2, 2], [5, 5], [1, 1], [0, 0], [0, 0]).is_none());
    }
}
