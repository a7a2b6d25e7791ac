//! A depthwise convolution over 16 channels at once, one channel per vector lane (AVX-512; with
//! AVX2, two 8-lane halves): the "NCHW16c" layout onnxruntime's MLAS uses, built inside the
//! operator from tract's NCHW planes.
//!
//! Why it exists: [`super::depthwise_kernel`] puts one channel's columns in the lanes. On the
//! 7- and 14-wide planes of EfficientNet's last stages a 16-lane vector then holds 7 or 14 useful
//! columns, and its stride-2 layers spend their shuffles splitting even and odd columns; on
//! those shapes it ran at 4-6 GMAC/s against 11-14 on the wide stride-1 planes
//! (`examples/dw_bench`, one core). With a channel in each lane every vector is full whatever the
//! plane's width and a stride is an address step, so each tap of each output is one load, one
//! multiply and one add. The price is a transpose of the 16 input planes into a zero-padded
//! `rows × cols × 16` scratch and of the outputs back (16×16 register transposes); where that
//! pays is measured per geometry in `examples/dw_bench` and decided by [`worth_it`]. Between
//! channel-blocked maps ([`super::channel_blocks`], [`conv_block_blocked`]) there is no
//! transpose to pay, and the path pays on more geometries
//! ([`worth_it_between_blocked_maps`]).
//!
//! Each output is `bias + Σ tap·x` over the taps in row-major order, unfused, zero padding
//! included: the same operations in the same order as every path of
//! [`super::depthwise_kernel`], so the outputs are bit-identical to it (tests below) and to
//! tract's own operator.

use super::channel_blocks::{Blocked, BLOCK};
use super::depthwise_kernel::Geometry;

/// Channels per block: the lanes of one AVX-512 vector, [`BLOCK`] of the channel-blocked layout.
pub const LANES: usize = BLOCK;

/// Whether the blocked path is used for this geometry on this CPU: AVX-512F, and a shape where
/// it measured faster than the per-channel kernel (`examples/dw_bench`, one core, min of 5-7
/// rounds): outputs up to 10 wide (Lite0's 7: 1152 ch 5×5 0.19 → 0.09 ms, 3×3 0.073 → 0.050,
/// 672 ch 5×5 stride 2 from 14 0.16 → 0.07; Lite1's 8: 1152 ch 5×5 0.139 → 0.085, 3×3 0.070 →
/// 0.053, 672 ch 5×5 stride 2 from 15 0.100 → 0.066; Lite2's 9: 1392 ch 5×5 0.224 → 0.133, 3×3
/// 0.095 → 0.083, 816 ch 5×5 stride 2 from 17 0.125 → 0.111; Xception's 10: 1024 ch 3×3 0.077 →
/// 0.072), and 5×5 kernels on 14-wide outputs (672 ch: 0.214 → 0.175) or on 17-wide ones,
/// where one channel per vector leaves most lanes empty (Lite2's 816 ch: 0.436 → 0.268). Not
/// 3×3 on 14 (480 ch: 0.051 → 0.077), 5×5 on 15 (Lite1's 672 ch: 0.154 → 0.169, 15 of 16 lanes
/// live), 3×3 on 17 and 19 (480 ch stride 1 on 17: 0.102 → 0.095-0.097, too close to call;
/// 288 ch stride 2 into 17: 0.101 → 0.113; Xception's 728 ch on 19: 0.172 → 0.198) nor anything on 28 and wider (240 ch 5×5: 0.25 → 0.27-0.30; 56 and 112:
/// 1.5-2.5× slower), where the transposes cost more than the full lanes save.
///
/// With AVX2 and no AVX-512 (two 8-lane halves per block, 8×8 transposes), measured the same
/// way on an AMD EPYC (Zen), min of 9 rounds under load: outputs 14 wide and narrower (1152 ch
/// 5×5 on 7: 0.55 → 0.26 ms; 672 ch 5×5 on 14: 1.29 → 0.54; 480 ch 3×3 on 14: 0.50 → 0.28; 240
/// ch 3×3 stride 2 from 28: 0.38 → 0.33), over Lite0's layers 7.5 → 3.6 ms; not on 28 (240 ch
/// 5×5: 0.82 → 0.77, within noise) nor 56 and 112 (1.4-2.6× slower).
pub fn worth_it(g: &Geometry) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let [kh, kw] = g.kernel;
        if std::is_x86_feature_detected!("avx512f") {
            let w = g.output[1];
            // The per-channel kernel's share of live lanes: `w` columns in whole 16-lane vectors.
            let live = w as f32 / (w.div_ceil(16) * 16) as f32;
            w <= 10 || (kh * kw >= 25 && (w <= 14 || (w <= 17 && live < 0.6)))
        } else if avx2() {
            g.output[1] <= 14
        } else {
            false
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = g;
        false
    }
}

/// Whether the blocked path pays for `g` when its input and output are both channel-blocked
/// maps (no transposes), on this CPU: with AVX-512F, outputs up to 14 wide
/// (`examples/dw_bench`, "blocked maps" against the per-channel kernel, one core, min of 9
/// rounds: 480 ch 3×3 on 14: 0.044 → 0.033 ms; 672 ch 5×5 on 14: 0.145 → 0.099; 1152 ch 5×5
/// on 7: 0.131 → 0.044). Wider planes are left planar: their 1×1 neighbours keep the rows
/// layout ([`super::pointwise_kernel::BLOCKED_LANES_POINTS`]).
pub fn worth_it_between_blocked_maps(g: &Geometry) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f") && g.output[1] <= 14
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = g;
        false
    }
}

/// Whether this CPU has a blocked path at all (AVX-512F or AVX2).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f") || avx2()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The taps of `channels` channels (`channels × kh × kw`, row major per channel) regrouped for
/// [`conv_block`]: per block of 16 channels, per tap, the 16 channels' values (channels past
/// the last are zero).
pub fn block_taps(taps: &[f32], channels: usize, k_plane: usize) -> Vec<f32> {
    let blocks = channels.div_ceil(LANES);
    let mut out = vec![0.0; blocks * k_plane * LANES];
    for c in 0..channels {
        let (b, lane) = (c / LANES, c % LANES);
        for t in 0..k_plane {
            out[(b * k_plane + t) * LANES + lane] = taps[c * k_plane + t];
        }
    }
    out
}

/// Scratch floats [`conv_block`] needs for `g`: the padded input block, the output pixels.
pub fn scratch_len(g: &Geometry) -> usize {
    (padded_rows(g) * padded_cols(g) + g.output[0] * g.output[1]) * LANES
}

fn padded_rows(g: &Geometry) -> usize {
    (g.output[0] - 1) * g.stride[0] + g.kernel[0]
}

fn padded_cols(g: &Geometry) -> usize {
    (g.output[1] - 1) * g.stride[1] + g.kernel[1]
}

/// Convolve 16 channels: `input` holds their 16 consecutive `h × w` planes, `taps` their
/// `kh × kw × 16` block from [`block_taps`], `bias` their biases; `out` gets their 16
/// `oh × ow` planes. Clamps as in [`super::depthwise_kernel::Plan::conv_channel`].
///
/// Panics unless [`worth_it`] said yes for `g` on this CPU (AVX-512F present).
#[allow(clippy::too_many_arguments)]
pub fn conv_block(
    g: &Geometry,
    input: &[f32],
    input_clamp: Option<(f32, f32)>,
    taps: &[f32],
    bias: &[f32; LANES],
    clamp: Option<(f32, f32)>,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    conv_block_blocked(
        g,
        input,
        input_clamp,
        taps,
        bias,
        clamp,
        out,
        scratch,
        Blocked::PLANAR,
    )
}

/// [`conv_block`] with its input and / or output already in the channel-blocked layout
/// ([`super::channel_blocks`]: the block's `h × w × 16` floats, pixel-major): a blocked input is
/// copied into the padded block row by row, a blocked output written straight from the
/// pixels, with no transpose on that side. Same operations in the same order: bit-identical.
/// A blocked side needs AVX-512F (the layout is only kept where the 1×1 kernel runs too).
#[allow(clippy::too_many_arguments)]
pub fn conv_block_blocked(
    g: &Geometry,
    input: &[f32],
    input_clamp: Option<(f32, f32)>,
    taps: &[f32],
    bias: &[f32; LANES],
    clamp: Option<(f32, f32)>,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
    blocked: Blocked,
) {
    assert!(
        !blocked.residual,
        "a depthwise convolution has no skip connection"
    );
    assert_eq!(input.len(), LANES * g.input[0] * g.input[1], "input planes");
    assert_eq!(taps.len(), g.kernel[0] * g.kernel[1] * LANES, "taps block");
    assert_eq!(
        out.len(),
        LANES * g.output[0] * g.output[1],
        "output planes"
    );
    if scratch.len() < scratch_len(g) {
        scratch.resize(scratch_len(g), 0.0);
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F; lengths checked above.
            unsafe {
                x86::conv_block(
                    g,
                    input,
                    input_clamp,
                    taps,
                    bias,
                    clamp,
                    out,
                    scratch,
                    blocked,
                )
            }
        } else {
            assert!(avx2(), "the blocked depthwise path needs AVX-512F or AVX2");
            assert!(
                !blocked.any(),
                "channel-blocked tensors need AVX-512F in the depthwise path"
            );
            // SAFETY: the CPU has AVX2; lengths checked above.
            unsafe { x86::conv_block_avx2(g, input, input_clamp, taps, bias, clamp, out, scratch) }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (input_clamp, bias, clamp, blocked);
        panic!("the blocked depthwise path needs AVX-512F or AVX2");
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    std::is_x86_feature_detected!("avx2")
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{padded_cols, padded_rows, Blocked, Geometry, LANES};
    use std::arch::x86_64::*;

    /// Transpose 16 vectors of 16 lanes in place (`r[i]` lane `j` becomes `r[j]` lane `i`).
    #[inline(always)]
    unsafe fn transpose16(r: &mut [__m512; 16]) {
        let mut t = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        // t[4q + {0, 1}] hold rows 4q, 4q+1 interleaved; t[4q + {2, 3}] rows 4q+2, 4q+3.
        let mut u = [_mm512_setzero_ps(); 16];
        for q in 0..4 {
            let (a0, a1, b0, b1) = (t[4 * q], t[4 * q + 1], t[4 * q + 2], t[4 * q + 3]);
            u[4 * q] = _mm512_shuffle_ps::<0x44>(a0, b0);
            u[4 * q + 1] = _mm512_shuffle_ps::<0xEE>(a0, b0);
            u[4 * q + 2] = _mm512_shuffle_ps::<0x44>(a1, b1);
            u[4 * q + 3] = _mm512_shuffle_ps::<0xEE>(a1, b1);
        }
        // u[4q + m] 128-bit lane l holds column 4l + m of rows 4q..4q+4. Gather the lanes:
        // first pairs of row groups (q, q+1)...
        for p in 0..2 {
            for m in 0..4 {
                let (a, b) = (u[8 * p + m], u[8 * p + 4 + m]);
                t[8 * p + m] = _mm512_shuffle_f32x4::<0x88>(a, b);
                t[8 * p + 4 + m] = _mm512_shuffle_f32x4::<0xDD>(a, b);
            }
        }
        // ...then the two halves.
        for m in 0..4 {
            for h in 0..2 {
                let (a, b) = (t[4 * h + m], t[8 + 4 * h + m]);
                r[m + 4 * h] = _mm512_shuffle_f32x4::<0x88>(a, b);
                r[m + 4 * h + 8] = _mm512_shuffle_f32x4::<0xDD>(a, b);
            }
        }
    }

    #[inline(always)]
    fn mask(n: usize) -> __mmask16 {
        if n >= 16 {
            !0
        } else {
            ((1u32 << n) - 1) as __mmask16
        }
    }

    /// One output row chunk of `NP` pixels: `acc[j] = bias + Σ tap·x` for pixel `j`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn pixels<const NP: usize>(
        padded: *const f32,
        pcols: usize,
        [kh, kw]: [usize; 2],
        sw: usize,
        taps: *const f32,
        bias: __m512,
        iy: usize,
        ix: usize,
        (lo, hi): (__m512, __m512),
        out: *mut f32,
    ) {
        let mut acc = [bias; NP];
        for ky in 0..kh {
            let row = unsafe { padded.add(((iy + ky) * pcols + ix) * LANES) };
            for kx in 0..kw {
                let t = unsafe { _mm512_loadu_ps(taps.add((ky * kw + kx) * LANES)) };
                for (j, a) in acc.iter_mut().enumerate() {
                    let x = unsafe { _mm512_loadu_ps(row.add((j * sw + kx) * LANES)) };
                    *a = _mm512_add_ps(*a, _mm512_mul_ps(t, x));
                }
            }
        }
        for (j, a) in acc.iter().enumerate() {
            // Same operand order as `depthwise_kernel::clamp`: NaN kept.
            let a = _mm512_min_ps(hi, _mm512_max_ps(lo, *a));
            unsafe { _mm512_storeu_ps(out.add(j * LANES), a) };
        }
    }

    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn conv_block(
        g: &Geometry,
        input: &[f32],
        input_clamp: Option<(f32, f32)>,
        taps: &[f32],
        bias: &[f32; LANES],
        clamp: Option<(f32, f32)>,
        out: &mut [f32],
        scratch: &mut [f32],
        blocked: Blocked,
    ) {
        let [in_h, in_w] = g.input;
        let [out_h, out_w] = g.output;
        let [pt, pl] = g.pad_before;
        let (prows, pcols) = (padded_rows(g), padded_cols(g));
        let (padded, pixels_out) = scratch.split_at_mut(prows * pcols * LANES);
        padded.fill(0.0);
        let bounds = |b: Option<(f32, f32)>| {
            let (lo, hi) = b.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
            (_mm512_set1_ps(lo), _mm512_set1_ps(hi))
        };
        // 1. The 16 input planes, clamped, into the padded pixel-major block: 16 consecutive
        // pixels of the planes at a time (rows run on: a 7-wide plane still fills the lanes).
        // A blocked input is already pixel-major: its rows are copied (and clamped) in place.
        let (ilo, ihi) = bounds(input_clamp);
        let in_plane = in_h * in_w;
        if blocked.input {
            for y in 0..in_h.min(prows.saturating_sub(pt)) {
                for x in 0..in_w.min(pcols.saturating_sub(pl)) {
                    // SAFETY: pixel (y, x) of the block's input, and inside the padded block
                    // (y + pt < prows, x + pl < pcols by the loop bounds).
                    unsafe {
                        let v = _mm512_loadu_ps(input.as_ptr().add((y * in_w + x) * LANES));
                        let v = _mm512_min_ps(ihi, _mm512_max_ps(ilo, v));
                        _mm512_storeu_ps(
                            padded.as_mut_ptr().add(((y + pt) * pcols + x + pl) * LANES),
                            v,
                        );
                    }
                }
            }
        }
        let (mut y, mut x) = (0, 0);
        let planar_rows = if blocked.input { 0 } else { in_plane };
        for p0 in (0..planar_rows).step_by(16) {
            let n = 16.min(in_plane - p0);
            let m = mask(n);
            let mut r = [_mm512_setzero_ps(); 16];
            for (c, r) in r.iter_mut().enumerate() {
                // SAFETY: pixels p0..p0 + n of plane c, inside `input`.
                let v = unsafe { _mm512_maskz_loadu_ps(m, input.as_ptr().add(c * in_plane + p0)) };
                // Same operand order as `depthwise_kernel::clamp` (NaN kept); without a clamp
                // the bounds are infinite and the values pass unchanged.
                *r = _mm512_min_ps(ihi, _mm512_max_ps(ilo, v));
            }
            unsafe { transpose16(&mut r) };
            for r in r.iter().take(n) {
                let (py, px) = (y + pt, x + pl);
                if py < prows && px < pcols {
                    // SAFETY: inside the padded block, checked just above.
                    unsafe {
                        _mm512_storeu_ps(padded.as_mut_ptr().add((py * pcols + px) * LANES), *r)
                    };
                }
                x += 1;
                if x == in_w {
                    (x, y) = (0, y + 1);
                }
            }
        }
        // 2. Every output pixel into `pixels_out` (pixel-major), 3. transposed into the 16
        // planes, 16 consecutive pixels at a time.
        // A blocked output is the pixels themselves: written straight to `out`.
        let (olo, ohi) = bounds(clamp);
        let bias = unsafe { _mm512_loadu_ps(bias.as_ptr()) };
        let [sh, sw] = g.stride;
        let op = if blocked.output {
            out.as_mut_ptr()
        } else {
            pixels_out.as_mut_ptr()
        };
        let (pp, tp) = (padded.as_ptr(), taps.as_ptr());
        let out_plane = out_h * out_w;
        const NP: usize = 7;
        for oy in 0..out_h {
            let mut ox = 0;
            macro_rules! run {
                ($np:expr) => {
                    // SAFETY: pixels ox..ox + np of this row read padded columns up to
                    // (ox + np - 1) * sw + kw - 1 < pcols and rows oy * sh + kh - 1 < prows;
                    // pixels_out holds every output pixel.
                    unsafe {
                        pixels::<{ $np }>(
                            pp,
                            pcols,
                            g.kernel,
                            sw,
                            tp,
                            bias,
                            oy * sh,
                            ox * sw,
                            (olo, ohi),
                            op.add((oy * out_w + ox) * LANES),
                        )
                    }
                };
            }
            while ox + NP <= out_w {
                run!(NP);
                ox += NP;
            }
            match out_w - ox {
                0 => {}
                1 => run!(1),
                2 => run!(2),
                3 => run!(3),
                4 => run!(4),
                5 => run!(5),
                _ => run!(6),
            }
        }
        let planar_out = if blocked.output { 0 } else { out_plane };
        for p0 in (0..planar_out).step_by(16) {
            let n = 16.min(out_plane - p0);
            let mut r = [_mm512_setzero_ps(); 16];
            for (j, r) in r.iter_mut().enumerate().take(n) {
                // SAFETY: pixel p0 + j < out_plane of pixels_out.
                *r = unsafe { _mm512_loadu_ps(pixels_out.as_ptr().add((p0 + j) * LANES)) };
            }
            unsafe { transpose16(&mut r) };
            let m = mask(n);
            for (c, r) in r.iter().enumerate() {
                // SAFETY: pixels p0..p0 + n of output plane c.
                unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr().add(c * out_plane + p0), m, *r) };
            }
        }
    }

    /// Transpose 8 vectors of 8 lanes in place (`r[i]` lane `j` becomes `r[j]` lane `i`).
    #[inline(always)]
    unsafe fn transpose8(r: &mut [__m256; 8]) {
        let mut t = [_mm256_setzero_ps(); 8];
        for i in 0..4 {
            t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        let mut u = [_mm256_setzero_ps(); 8];
        for q in 0..2 {
            let (a0, a1, b0, b1) = (t[4 * q], t[4 * q + 1], t[4 * q + 2], t[4 * q + 3]);
            u[4 * q] = _mm256_shuffle_ps::<0x44>(a0, b0);
            u[4 * q + 1] = _mm256_shuffle_ps::<0xEE>(a0, b0);
            u[4 * q + 2] = _mm256_shuffle_ps::<0x44>(a1, b1);
            u[4 * q + 3] = _mm256_shuffle_ps::<0xEE>(a1, b1);
        }
        // u[m] (rows 0-3) and u[4 + m] (rows 4-7): 128-bit lane l holds column 4l + m.
        for m in 0..4 {
            r[m] = _mm256_permute2f128_ps::<0x20>(u[m], u[4 + m]);
            r[m + 4] = _mm256_permute2f128_ps::<0x31>(u[m], u[4 + m]);
        }
    }

    /// Integer mask of the first `n` of 8 lanes, for `maskload` / `maskstore`.
    #[inline(always)]
    unsafe fn mask8(n: usize) -> __m256i {
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(n.min(8) as i32), lanes)
    }

    /// [`pixels`] on the 8 channels of one half of the block (`padded`, `taps` and `out`
    /// already offset to that half; pixels still `LANES` floats apart).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn pixels8<const NP: usize>(
        padded: *const f32,
        pcols: usize,
        [kh, kw]: [usize; 2],
        sw: usize,
        taps: *const f32,
        bias: __m256,
        iy: usize,
        ix: usize,
        (lo, hi): (__m256, __m256),
        out: *mut f32,
    ) {
        let mut acc = [bias; NP];
        for ky in 0..kh {
            let row = unsafe { padded.add(((iy + ky) * pcols + ix) * LANES) };
            for kx in 0..kw {
                let t = unsafe { _mm256_loadu_ps(taps.add((ky * kw + kx) * LANES)) };
                for (j, a) in acc.iter_mut().enumerate() {
                    let x = unsafe { _mm256_loadu_ps(row.add((j * sw + kx) * LANES)) };
                    *a = _mm256_add_ps(*a, _mm256_mul_ps(t, x));
                }
            }
        }
        for (j, a) in acc.iter().enumerate() {
            // Same operand order as `depthwise_kernel::clamp`: NaN kept.
            let a = _mm256_min_ps(hi, _mm256_max_ps(lo, *a));
            unsafe { _mm256_storeu_ps(out.add(j * LANES), a) };
        }
    }

    /// [`conv_block`] for CPUs with AVX2 but not AVX-512: the same padded pixel-major block of
    /// 16 channels, each half of 8 channels in 8-lane vectors (8×8 transposes); the same
    /// operations in the same order, so bit-identical to it and to the per-channel kernel.
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn conv_block_avx2(
        g: &Geometry,
        input: &[f32],
        input_clamp: Option<(f32, f32)>,
        taps: &[f32],
        bias: &[f32; LANES],
        clamp: Option<(f32, f32)>,
        out: &mut [f32],
        scratch: &mut [f32],
    ) {
        const H: usize = 8;
        let [in_h, in_w] = g.input;
        let [out_h, out_w] = g.output;
        let [pt, pl] = g.pad_before;
        let (prows, pcols) = (padded_rows(g), padded_cols(g));
        let (padded, pixels_out) = scratch.split_at_mut(prows * pcols * LANES);
        padded.fill(0.0);
        let bounds = |b: Option<(f32, f32)>| {
            let (lo, hi) = b.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
            (_mm256_set1_ps(lo), _mm256_set1_ps(hi))
        };
        // 1. Each half's 8 input planes, clamped, into the padded pixel-major block, 8
        // consecutive pixels at a time.
        let (ilo, ihi) = bounds(input_clamp);
        let in_plane = in_h * in_w;
        for half in 0..2 {
            for p0 in (0..in_plane).step_by(H) {
                let n = H.min(in_plane - p0);
                let m = unsafe { mask8(n) };
                let mut r = [_mm256_setzero_ps(); H];
                for (i, r) in r.iter_mut().enumerate() {
                    let c = half * H + i;
                    // SAFETY: pixels p0..p0 + n of plane c, inside `input` (masked lanes
                    // are neither read nor faulted on).
                    let v = unsafe { _mm256_maskload_ps(input.as_ptr().add(c * in_plane + p0), m) };
                    *r = _mm256_min_ps(ihi, _mm256_max_ps(ilo, v));
                }
                unsafe { transpose8(&mut r) };
                for (j, r) in r.iter().enumerate().take(n) {
                    let p = p0 + j;
                    let (py, px) = (p / in_w + pt, p % in_w + pl);
                    if py < prows && px < pcols {
                        // SAFETY: inside the padded block, checked just above.
                        unsafe {
                            _mm256_storeu_ps(
                                padded
                                    .as_mut_ptr()
                                    .add((py * pcols + px) * LANES + half * H),
                                *r,
                            )
                        };
                    }
                }
            }
        }
        // 2. Every output pixel into `pixels_out`, one half at a time.
        let (olo, ohi) = bounds(clamp);
        let [sh, sw] = g.stride;
        let out_plane = out_h * out_w;
        const NP: usize = 7;
        for half in 0..2 {
            let bias = unsafe { _mm256_loadu_ps(bias.as_ptr().add(half * H)) };
            let pp = unsafe { padded.as_ptr().add(half * H) };
            let tp = unsafe { taps.as_ptr().add(half * H) };
            let op = unsafe { pixels_out.as_mut_ptr().add(half * H) };
            for oy in 0..out_h {
                let mut ox = 0;
                macro_rules! run {
                    ($np:expr) => {
                        // SAFETY: as in `conv_block`, within this half's 8 lanes.
                        unsafe {
                            pixels8::<{ $np }>(
                                pp,
                                pcols,
                                g.kernel,
                                sw,
                                tp,
                                bias,
                                oy * sh,
                                ox * sw,
                                (olo, ohi),
                                op.add((oy * out_w + ox) * LANES),
                            )
                        }
                    };
                }
                while ox + NP <= out_w {
                    run!(NP);
                    ox += NP;
                }
                match out_w - ox {
                    0 => {}
                    1 => run!(1),
                    2 => run!(2),
                    3 => run!(3),
                    4 => run!(4),
                    5 => run!(5),
                    _ => run!(6),
                }
            }
        }
        // 3. Transposed back into the 16 planes, 8 pixels × 8 channels at a time.
        for half in 0..2 {
            for p0 in (0..out_plane).step_by(H) {
                let n = H.min(out_plane - p0);
                let mut r = [_mm256_setzero_ps(); H];
                for (j, r) in r.iter_mut().enumerate().take(n) {
                    // SAFETY: pixel p0 + j < out_plane of pixels_out.
                    *r = unsafe {
                        _mm256_loadu_ps(pixels_out.as_ptr().add((p0 + j) * LANES + half * H))
                    };
                }
                unsafe { transpose8(&mut r) };
                let m = unsafe { mask8(n) };
                for (i, r) in r.iter().enumerate() {
                    let c = half * H + i;
                    // SAFETY: pixels p0..p0 + n of output plane c (masked lanes not written).
                    unsafe { _mm256_maskstore_ps(out.as_mut_ptr().add(c * out_plane + p0), m, *r) };
                }
            }
        }
    }

    #[cfg(test)]
    #[test]
    fn transpose8_transposes() {
        if !std::is_x86_feature_detected!("avx2") {
            return;
        }
        #[target_feature(enable = "avx2")]
        unsafe fn run() -> [[f32; 8]; 8] {
            let mut r = [_mm256_setzero_ps(); 8];
            for (i, r) in r.iter_mut().enumerate() {
                let row: Vec<f32> = (0..8).map(|j| (i * 8 + j) as f32).collect();
                *r = unsafe { _mm256_loadu_ps(row.as_ptr()) };
            }
            unsafe { transpose8(&mut r) };
            let mut out = [[0f32; 8]; 8];
            for (o, r) in out.iter_mut().zip(&r) {
                unsafe { _mm256_storeu_ps(o.as_mut_ptr(), *r) };
            }
            out
        }
        let t = unsafe { run() };
        for (i, row) in t.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                assert_eq!(v, (j * 8 + i) as f32, "row {i} lane {j}");
            }
        }
    }

    #[cfg(test)]
    #[test]
    fn transpose16_transposes() {
        if !std::is_x86_feature_detected!("avx512f") {
            return;
        }
        #[target_feature(enable = "avx512f")]
        unsafe fn run() -> [[f32; 16]; 16] {
            let mut r = [_mm512_setzero_ps(); 16];
            for (i, r) in r.iter_mut().enumerate() {
                let row: Vec<f32> = (0..16).map(|j| (i * 16 + j) as f32).collect();
                *r = unsafe { _mm512_loadu_ps(row.as_ptr()) };
            }
            unsafe { transpose16(&mut r) };
            let mut out = [[0f32; 16]; 16];
            for (o, r) in out.iter_mut().zip(&r) {
                unsafe { _mm512_storeu_ps(o.as_mut_ptr(), *r) };
            }
            out
        }
        let t = unsafe { run() };
        for (i, row) in t.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                assert_eq!(v, (j * 16 + i) as f32, "row {i} lane {j}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::depthwise_kernel::Plan;

    /// 16 channels through [`conv_block`] against each through the per-channel kernel, bit for
    /// bit, with and without both clamps.
    fn check(
        input: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        pb: [usize; 2],
        pa: [usize; 2],
    ) {
        let g = Geometry::new(input, kernel, stride, pb, pa).unwrap();
        let plan = Plan::new(g);
        let (in_plane, out_plane, k_plane) = (
            input[0] * input[1],
            g.output[0] * g.output[1],
            kernel[0] * kernel[1],
        );
        let x: Vec<f32> = (0..LANES * in_plane)
            .map(|i| ((i as f32) * 0.37).sin() * 8.0)
            .collect();
        let taps: Vec<f32> = (0..LANES * k_plane)
            .map(|i| ((i as f32) * 0.71).cos())
            .collect();
        let bias: [f32; LANES] = std::array::from_fn(|c| c as f32 * 0.1 - 0.8);
        let blocked_taps = block_taps(&taps, LANES, k_plane);
        for (input_clamp, clamp) in [
            (None, None),
            (Some((0.0, 6.0)), Some((0.0, 6.0))),
            (Some((-0.5, 0.5)), None),
        ] {
            let mut want = vec![0f32; LANES * out_plane];
            let mut scratch = Vec::new();
            for c in 0..LANES {
                plan.conv_channel(
                    &x[c * in_plane..][..in_plane],
                    input_clamp,
                    &taps[c * k_plane..][..k_plane],
                    bias[c],
                    clamp,
                    &mut want[c * out_plane..][..out_plane],
                    &mut scratch,
                );
            }
            let mut got = vec![f32::NAN; LANES * out_plane];
            conv_block(
                &g,
                &x,
                input_clamp,
                &blocked_taps,
                &bias,
                clamp,
                &mut got,
                &mut scratch,
            );
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&got),
                bits(&want),
                "{g:?} clamps {input_clamp:?} {clamp:?}"
            );
            // Blocked input and / or output (AVX-512 only), compared in the planar layout.
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx512f") {
                use crate::channel_blocks::{to_blocked, to_planar};
                let xb = to_blocked(&x, LANES, in_plane);
                for (input, output) in [(true, false), (false, true), (true, true)] {
                    let blocked = Blocked {
                        input,
                        output,
                        residual: false,
                    };
                    let mut got = vec![f32::NAN; LANES * out_plane];
                    conv_block_blocked(
                        &g,
                        if input { &xb } else { &x },
                        input_clamp,
                        &blocked_taps,
                        &bias,
                        clamp,
                        &mut got,
                        &mut scratch,
                        blocked,
                    );
                    if output {
                        got = to_planar(&got, LANES, out_plane);
                    }
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "{g:?} {blocked:?} clamps {input_clamp:?} {clamp:?}"
                    );
                }
            }
            // The AVX2 path too where the CPU would take the AVX-512 one.
            #[cfg(target_arch = "x86_64")]
            if avx2() {
                let mut got = vec![f32::NAN; LANES * out_plane];
                scratch.resize(scratch_len(&g), 0.0);
                // SAFETY: the CPU has AVX2; the lengths are conv_block's.
                unsafe {
                    x86::conv_block_avx2(
                        &g,
                        &x,
                        input_clamp,
                        &blocked_taps,
                        &bias,
                        clamp,
                        &mut got,
                        &mut scratch,
                    )
                };
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "AVX2 {g:?} clamps {input_clamp:?} {clamp:?}"
                );
            }
        }
    }

    #[test]
    fn sixteen_channels_at_once_are_bit_identical_to_one_at_a_time() {
        if !available() {
            // Then the operator never takes the blocked path.
            let g = Geometry::new([7, 7], [3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
            assert!(!worth_it(&g));
            return;
        }
        for size in [112, 56, 28, 17, 15, 14, 10, 9, 8, 7] {
            check([size, size], [3, 3], [1, 1], [1, 1], [1, 1]);
            check([size, size], [5, 5], [1, 1], [2, 2], [2, 2]);
            check([size, size], [3, 3], [2, 2], [0, 0], [1, 1]);
            check([size, size], [5, 5], [2, 2], [1, 1], [2, 2]);
        }
        check([9, 13], [3, 3], [1, 1], [0, 0], [0, 0]);
        check([10, 33], [1, 7], [1, 3], [0, 3], [0, 3]);
        check([5, 5], [5, 5], [1, 1], [0, 0], [0, 0]);
        check([3, 2], [3, 3], [2, 1], [1, 1], [1, 1]);
        check([17, 40], [7, 7], [2, 2], [3, 3], [3, 3]);
        check([4, 4], [3, 3], [1, 1], [4, 4], [4, 4]);
        check([20, 19], [3, 3], [2, 2], [0, 0], [0, 0]);
    }

    #[test]
    fn taps_are_regrouped_channel_per_lane() {
        let taps: Vec<f32> = (0..17 * 4).map(|i| i as f32).collect();
        let b = block_taps(&taps, 17, 4);
        assert_eq!(b.len(), 2 * 4 * LANES);
        assert_eq!(b[3 * LANES + 5], taps[5 * 4 + 3]);
        assert_eq!(b[(4 + 2) * LANES], taps[16 * 4 + 2]);
        assert_eq!(b[(4 + 2) * LANES + 1], 0.0);
    }
}
