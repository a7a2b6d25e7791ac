//! The arithmetic of a 1×1 convolution on one CHW image with AVX-512: `y = clamp(W · x + bias
//! [+ residual])`, `W` `cout × cin`, `x` `cin × hw`, `y` `cout × hw`, all row major.
//!
//! Why it exists: the `gemm` crate [`super::pointwise_op`] used for these products runs 8-wide
//! AVX2 kernels on stable Rust (its AVX-512 ones need a nightly compiler), and tract's own
//! AVX-512 products pay for packing the activations and for their generic output stage; on the
//! machine this project is measured on (a 512-bit-wide Zen 5), half the peak was left on the
//! table, and the 1×1 convolutions are most of EfficientNet-Lite's multiply-adds.
//!
//! How: no packing of the activations at all. The output is produced in tiles of [`MR`] output
//! channels × `NV` vectors of 16 consecutive points of a channel plane (accumulators that stay
//! in registers); for each input channel `k` the tile loads `NV` vectors of row `k` of `x`
//! (contiguous in CHW) and broadcasts one weight per output channel from `W`, packed once at
//! load time so that the `MR` weights of each `k` are adjacent. The last vector of a plane is
//! masked, so any plane size works. Each output accumulates `Σ w·x` from zero over `k` in
//! order with fused multiply-adds; the bias and the skip connection are added and the clamp
//! applied, in that order, as the tile is stored: the operations of tract's own AVX-512 matrix
//! kernels in their order, so the outputs are tract's bit for bit (`tests/ops_equality.rs`; an
//! earlier version started each sum from the bias, which put MobileNetV2's codes 1.05e-5 of
//! their largest value away from tract's).
//!
//! Small planes (EfficientNet-Lite's 7×7 stage: 49 points, a third of Lite0's multiply-adds)
//! fit that layout badly: 49 points are three full vectors and a fourth with one live lane,
//! and the tile of that last vector does 8 broadcasts and a load for 8 useful multiply-adds.
//! There the weights are packed transposed instead ([`Layout::Lanes`]: `W` transposed, in
//! blocks of 48 output channels, each block `cin × 48` and contiguous) and the tile turns
//! around: 16 output channels per vector, up to 3 vectors × [`LANE_POINTS`] points
//! of accumulators, one broadcast per point and input channel, every lane live; each output
//! still takes the same fused multiply-adds from zero in the same order, then its bias, so the
//! two layouts give bit-identical results (a test checks it). The tile is written back with
//! scatters (stride `hw`), once per tile, or with plain stores where the output is a
//! channel-blocked map ([`super::channel_blocks`], [`pointwise_blocked`]). The tile is 9 points × 3 vectors (27 accumulators,
//! 31 of the 32 vector registers with the weights and the broadcast): over Lite0's 7×7 stage
//! in network order (`examples/lanes_bench`, core 1, min of 7 rounds, three alternating runs)
//! 2.09-2.10 ms a pass against 2.19-2.22 for 7 × 3 (a 49-point plane takes 6 tiles instead of
//! 7, so the weights are read 6 times); 14 × 2 took 2.17-2.32 and 25 × 1 2.30-2.45 (fewer
//! reloads of the weights, but one broadcast per multiply-add). The blocks: with the plain
//! transpose (`cin × cout`) a tile's weight rows were `cout` floats apart (4.6 KB for the
//! 1152-wide expansions, a new page every row, where the hardware prefetchers stop). One
//! contiguous stream per tile instead: `examples/lanes_bench` before/after in 9 alternating
//! pairs (core 1, min of 7 rounds each, an AMD EPYC with AVX-512), median pair ratio 0.94.
//! On 14×14 planes the two layouts tie as planar kernels (`examples/layout_bench`: median ratio
//! lanes / rows 1.02-1.05), so [`LANES_MAX_POINTS`] stays below them; there the lanes layout is
//! taken only where it lets a map stay channel-blocked ([`BLOCKED_LANES_POINTS`]).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::channel_blocks::{Blocked, BLOCK};

/// Output channels per tile.
pub const MR: usize = 8;

/// Points of a plane per tile of the [`Layout::Lanes`] kernel.
pub const LANE_POINTS: usize = 9;

/// Planes of at most this many points take [`Layout::Lanes`] (when the output channels are a
/// multiple of 16).
pub const LANES_MAX_POINTS: usize = 64;

/// Planes of this many points (12×12 to 14×14) switch to [`Layout::Lanes`] where that lets a
/// map next to a channel-blocked depthwise convolution stay blocked ([`super::rewrite`]): on
/// 14×14 the two layouts tie as planar kernels, and the blocked map saves the depthwise
/// convolution's transposes (Lite0, MobileNetV2: `bench/infer_bench.py --variants all
/// planar`). Not below: on Xception's 10×10 exit flow (1024-2048 channels) the switch made
/// a pass slower (all / planar 1.14, 5 alternating rounds), and between 64 and 144 points
/// nothing was measured faster.
pub const BLOCKED_LANES_POINTS: std::ops::RangeInclusive<usize> = 144..=196;

/// How [`PackedWeights`] lays `W` out, which decides the kernel's tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Blocks of [`MR`] output channels (the last may be shorter), each `cin × rows` with the
    /// rows of one input channel adjacent: points of the plane in the vector lanes.
    Rows,
    /// `W` transposed in blocks of up to 3 × 16 output channels (`cin × 48`, contiguous, the
    /// last block narrower): output channels in the vector lanes.
    Lanes,
}

/// `W` (`cout × cin`, row major) packed for the kernel in one [`Layout`].
#[derive(Debug, Clone, PartialEq)]
pub struct PackedWeights {
    pub cout: usize,
    pub cin: usize,
    pub layout: Layout,
    data: Vec<f32>,
}

impl PackedWeights {
    /// [`Layout::Rows`].
    pub fn new(weights: &[f32], cout: usize, cin: usize) -> PackedWeights {
        PackedWeights::with_layout(weights, cout, cin, Layout::Rows)
    }

    /// The layout that suits a plane of `hw` points: [`Layout::Lanes`] for small planes
    /// (at most [`LANES_MAX_POINTS`]) when `cout` is a multiple of 16, else [`Layout::Rows`].
    pub fn for_plane(weights: &[f32], cout: usize, cin: usize, hw: usize) -> PackedWeights {
        let layout = if hw <= LANES_MAX_POINTS && cout.is_multiple_of(16) {
            Layout::Lanes
        } else {
            Layout::Rows
        };
        PackedWeights::with_layout(weights, cout, cin, layout)
    }

    /// Both layouts are transposes: the source is read row by row and the writes stay within
    /// a block of [`MR`] rows (`Rows`) or go to 16 destination rows at a time (`Lanes`, 16
    /// input channels per pass), so neither side walks a column of a large matrix. Packing
    /// Lite0's 7×7 stage (`examples/lanes_bench`, core 1, three alternating runs): 3.7 ms
    /// element by element in destination order, 1.57 ms this way (part of every model load).
    pub fn with_layout(weights: &[f32], cout: usize, cin: usize, layout: Layout) -> PackedWeights {
        assert_eq!(weights.len(), cout * cin, "weights are cout × cin");
        let mut data = vec![0.0; cout * cin];
        match layout {
            Layout::Rows => {
                for o0 in (0..cout).step_by(MR) {
                    let rows = MR.min(cout - o0);
                    let block = &mut data[o0 * cin..][..rows * cin];
                    for r in 0..rows {
                        let src = &weights[(o0 + r) * cin..][..cin];
                        for (k, &v) in src.iter().enumerate() {
                            block[k * rows + r] = v;
                        }
                    }
                }
            }
            Layout::Lanes => {
                assert_eq!(cout % 16, 0, "the lanes layout needs cout a multiple of 16");
                for k0 in (0..cin).step_by(16) {
                    let ks = 16.min(cin - k0);
                    for o in 0..cout {
                        let (start, width) = lane_group(o / 16, cout / 16);
                        let (block, col) = (&mut data[start * 16 * cin..], o - start * 16);
                        let src = &weights[o * cin + k0..][..ks];
                        for (j, &v) in src.iter().enumerate() {
                            block[(k0 + j) * width * 16 + col] = v;
                        }
                    }
                }
            }
        }
        PackedWeights {
            cout,
            cin,
            layout,
            data,
        }
    }
}

impl PackedWeights {
    /// `W` back as `cout × cin`, row major (the inverse of [`PackedWeights::with_layout`]).
    pub fn unpacked(&self) -> Vec<f32> {
        let (cout, cin) = (self.cout, self.cin);
        let mut w = vec![0.0; cout * cin];
        for o in 0..cout {
            for k in 0..cin {
                w[o * cin + k] = match self.layout {
                    Layout::Rows => {
                        let (o0, rows) = (o / MR * MR, MR.min(cout - o / MR * MR));
                        self.data[o0 * cin + k * rows + (o - o0)]
                    }
                    Layout::Lanes => {
                        let (start, width) = lane_group(o / 16, cout / 16);
                        self.data[start * 16 * cin + k * width * 16 + o - start * 16]
                    }
                };
            }
        }
        w
    }

    /// The same `W` in `layout`.
    pub fn relayout(&self, layout: Layout) -> PackedWeights {
        if layout == self.layout {
            return self.clone();
        }
        PackedWeights::with_layout(&self.unpacked(), self.cout, self.cin, layout)
    }
}

/// Vectors of 16 output channels per [`Layout::Lanes`] tile (and per block of its weights).
const LANE_VECTORS: usize = 3;

/// The [`Layout::Lanes`] block holding vector `v` of `vectors` (16 output channels each): its
/// first vector and its width in vectors. A block's weights are `cin × width·16`, contiguous,
/// so a tile reads them as one stream (the prefetchers follow it; rows `cout` apart cross a
/// page every row or few, where they stop).
fn lane_group(v: usize, vectors: usize) -> (usize, usize) {
    let start = v / LANE_VECTORS * LANE_VECTORS;
    (start, LANE_VECTORS.min(vectors - start))
}

/// Whether this CPU runs the kernel (AVX-512F); otherwise the caller keeps another path.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `y = clamp(W · x + bias [+ residual])` for one image, every tensor planar. Panics if a slice
/// has the wrong length or [`available`] is false.
pub fn pointwise(
    w: &PackedWeights,
    bias: &[f32],
    x: &[f32],
    hw: usize,
    residual: Option<&[f32]>,
    clamp: Option<(f32, f32)>,
    y: &mut [f32],
) {
    pointwise_blocked(w, bias, x, hw, residual, clamp, y, Blocked::PLANAR);
}

/// [`pointwise`] with any of its tensors in the channel-blocked layout
/// ([`super::channel_blocks`]): only with [`Layout::Lanes`] (whose tiles hold 16 output
/// channels per vector: a blocked output is one plain store per vector instead of a scatter, a
/// blocked skip connection one load instead of a gather) and, for a blocked input, `cin` a
/// multiple of 16 (each broadcast then reads the pixel's 16 adjacent channels in turn). The
/// same operations in the same order as the planar call: bit-identical outputs. Panics
/// otherwise, as [`pointwise`].
#[allow(clippy::too_many_arguments)]
pub fn pointwise_blocked(
    w: &PackedWeights,
    bias: &[f32],
    x: &[f32],
    hw: usize,
    residual: Option<&[f32]>,
    clamp: Option<(f32, f32)>,
    y: &mut [f32],
    blocked: Blocked,
) {
    assert!(available(), "pointwise kernel needs AVX-512F");
    assert_eq!(bias.len(), w.cout);
    assert_eq!(x.len(), w.cin * hw);
    assert_eq!(y.len(), w.cout * hw);
    if let Some(r) = residual {
        assert_eq!(r.len(), y.len());
    }
    if blocked.any() {
        assert_eq!(
            w.layout,
            Layout::Lanes,
            "blocked tensors need the lanes layout"
        );
        assert!(
            !blocked.input || w.cin.is_multiple_of(BLOCK),
            "a blocked input needs cin a multiple of {BLOCK}"
        );
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F is present (asserted); every pointer below stays inside the slices whose
    // lengths were checked above (the masked lanes of a plane's last vector are neither read
    // nor written).
    unsafe {
        match w.layout {
            Layout::Rows => run(w, bias, x, hw, residual, clamp, y),
            Layout::Lanes => run_lanes(w, bias, x, hw, residual, clamp, y, blocked),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (w, bias, x, hw, residual, clamp, y);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn run(
    w: &PackedWeights,
    bias: &[f32],
    x: &[f32],
    hw: usize,
    residual: Option<&[f32]>,
    clamp: Option<(f32, f32)>,
    y: &mut [f32],
) {
    let vectors = hw.div_ceil(16);
    let res = residual.map_or(std::ptr::null(), |r| r.as_ptr());
    let mut v0 = 0;
    while v0 < vectors {
        let nv = (vectors - v0).min(3);
        let p0 = v0 * 16;
        let last = hw - (v0 + nv - 1) * 16;
        let mask: __mmask16 = if last >= 16 {
            0xffff
        } else {
            (1u16 << last) - 1
        };
        let mut packed = w.data.as_ptr();
        for o0 in (0..w.cout).step_by(MR) {
            let rows = MR.min(w.cout - o0);
            let t = Tile {
                w: packed,
                cin: w.cin,
                x: x.as_ptr().add(p0),
                hw,
                mask,
                bias: bias.as_ptr().add(o0),
                res: if res.is_null() {
                    res
                } else {
                    res.add(o0 * hw + p0)
                },
                y: y.as_mut_ptr().add(o0 * hw + p0),
                clamp,
            };
            macro_rules! dispatch {
                ($($r:literal)*) => {
                    match (rows, nv) {
                        $(($r, 1) => t.run::<$r, 1>(),
                          ($r, 2) => t.run::<$r, 2>(),
                          ($r, 3) => t.run::<$r, 3>(),)*
                        _ => unreachable!("at most {MR} channels and 3 vectors a tile"),
                    }
                };
            }
            dispatch!(1 2 3 4 5 6 7 8);
            packed = packed.add(rows * w.cin);
        }
        v0 += nv;
    }
}

/// [`Layout::Lanes`]: tiles of up to 3 vectors of 16 output channels × up to
/// [`LANE_POINTS`] points; output channels outer, so a tile's weights stay in cache across the
/// plane's points. A tile covers the same floats of `y` (and of the residual) in either layout:
/// its channels' `16·nc × hw` values; only where each one sits inside them differs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn run_lanes(
    w: &PackedWeights,
    bias: &[f32],
    x: &[f32],
    hw: usize,
    residual: Option<&[f32]>,
    clamp: Option<(f32, f32)>,
    y: &mut [f32],
    blocked: Blocked,
) {
    debug_assert!(hw <= i32::MAX as usize / 16);
    let vectors = w.cout / 16;
    let res = residual.map_or(std::ptr::null(), |r| r.as_ptr());
    // Where point p of a tile's first channel is, from the start of its channels.
    let point = |blocked: bool| if blocked { BLOCK } else { 1 };
    let mut c0 = 0;
    while c0 < vectors {
        let (_, nc) = lane_group(c0, vectors);
        let mut p0 = 0;
        while p0 < hw {
            let np = (hw - p0).min(LANE_POINTS);
            let channels = c0 * 16 * hw;
            let t = LaneTile {
                w: w.data.as_ptr().add(c0 * 16 * w.cin),
                row: nc * 16,
                cin: w.cin,
                x: x.as_ptr().add(p0 * point(blocked.input)),
                hw,
                bias: bias.as_ptr().add(c0 * 16),
                res: if res.is_null() {
                    res
                } else {
                    res.add(channels + p0 * point(blocked.residual))
                },
                res_blocked: blocked.residual,
                y: y.as_mut_ptr().add(channels + p0 * point(blocked.output)),
                y_blocked: blocked.output,
                clamp,
            };
            macro_rules! dispatch {
                ($($p:literal)*) => {
                    match (np, nc, blocked.input) {
                        $(($p, 1, false) => t.run::<$p, 1, false>(),
                          ($p, 2, false) => t.run::<$p, 2, false>(),
                          ($p, 3, false) => t.run::<$p, 3, false>(),
                          ($p, 1, true) => t.run::<$p, 1, true>(),
                          ($p, 2, true) => t.run::<$p, 2, true>(),
                          ($p, 3, true) => t.run::<$p, 3, true>(),)*
                        _ => unreachable!("at most {LANE_POINTS} points and 3 vectors a tile"),
                    }
                };
            }
            dispatch!(1 2 3 4 5 6 7 8 9);
            p0 += np;
        }
        c0 += nc;
    }
}

/// One [`Layout::Lanes`] tile's pointers: `w` its block of the transposed weights (row stride
/// `row`, the block's width), `x` at its first point, `y` (and `res`, null when there is no
/// skip connection) at its first output channel and point, each in its layout.
#[cfg(target_arch = "x86_64")]
struct LaneTile {
    w: *const f32,
    row: usize,
    cin: usize,
    x: *const f32,
    hw: usize,
    bias: *const f32,
    res: *const f32,
    res_blocked: bool,
    y: *mut f32,
    y_blocked: bool,
    clamp: Option<(f32, f32)>,
}

#[cfg(target_arch = "x86_64")]
impl LaneTile {
    /// `P` points × `CV` vectors of 16 output channels; `BI`: the input is channel-blocked.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn run<const P: usize, const CV: usize, const BI: bool>(&self) {
        // The products are summed from zero, the bias added after them: tract's order.
        let mut acc = [[_mm512_setzero_ps(); CV]; P];
        let mut wk = self.w;
        // One input channel: its CV weight vectors, one broadcast per point (`xk` at the
        // channel's value of the tile's first point, points `step` floats apart).
        macro_rules! channel {
            ($xk:expr, $step:expr) => {{
                let mut wv = [_mm512_setzero_ps(); CV];
                for (j, wv) in wv.iter_mut().enumerate() {
                    *wv = _mm512_loadu_ps(wk.add(16 * j));
                }
                for (p, row) in acc.iter_mut().enumerate() {
                    let xb = _mm512_set1_ps(*$xk.add(p * $step));
                    for (a, &wv) in row.iter_mut().zip(&wv) {
                        // w·x + acc, as the rows kernel (the product is the same either way
                        // round).
                        *a = _mm512_fmadd_ps(wv, xb, *a);
                    }
                }
                wk = wk.add(self.row);
            }};
        }
        if BI {
            // Channel k of point p at (k / 16)·hw·16 + p·16 + k % 16: each block's 16 channels
            // in order, the same order as the planar loop.
            let mut xb = self.x;
            for _ in 0..self.cin / BLOCK {
                for kk in 0..BLOCK {
                    channel!(xb.add(kk), BLOCK);
                }
                xb = xb.add(BLOCK * self.hw);
            }
        } else {
            let mut xk = self.x;
            for _ in 0..self.cin {
                channel!(xk, 1);
                xk = xk.add(self.hw);
            }
        }
        let (lo, hi) = self.clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        let (lo, hi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
        // Planar: lane l of a vector is output channel l of its 16, `hw` floats further on.
        let stride = self.hw as i32;
        let idx = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(stride),
        );
        // Vector j (channels 16j..16j+16 of the tile) at point p, in either layout.
        let at = |blocked: bool, j: usize, p: usize| {
            16 * j * self.hw + if blocked { BLOCK * p } else { p }
        };
        for (p, row) in acc.iter().enumerate() {
            for (j, &a) in row.iter().enumerate() {
                // The bias straight from memory at each store: with its vectors loaded into an
                // array first, the 14×14 and 7×7 layers took twice as long
                // (`examples/profile_ops`).
                let mut s = _mm512_add_ps(a, _mm512_loadu_ps(self.bias.add(16 * j)));
                if !self.res.is_null() {
                    let r = self.res.add(at(self.res_blocked, j, p));
                    s = _mm512_add_ps(
                        s,
                        if self.res_blocked {
                            _mm512_loadu_ps(r)
                        } else {
                            _mm512_i32gather_ps::<4>(idx, r as _)
                        },
                    );
                }
                if self.clamp.is_some() {
                    s = _mm512_min_ps(hi, _mm512_max_ps(lo, s));
                }
                let y = self.y.add(at(self.y_blocked, j, p));
                if self.y_blocked {
                    _mm512_storeu_ps(y, s);
                } else {
                    _mm512_i32scatter_ps::<4>(y as _, idx, s);
                }
            }
        }
    }
}

/// One tile's pointers: `w` the packed weights of its output channels, `x` and `y` (and `res`,
/// null when there is no skip connection) at its first point.
#[cfg(target_arch = "x86_64")]
struct Tile {
    w: *const f32,
    cin: usize,
    x: *const f32,
    hw: usize,
    mask: __mmask16,
    bias: *const f32,
    res: *const f32,
    y: *mut f32,
    clamp: Option<(f32, f32)>,
}

#[cfg(target_arch = "x86_64")]
impl Tile {
    /// `R` output channels × `NV` vectors; the last vector masked.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn run<const R: usize, const NV: usize>(&self) {
        // The products are summed from zero, the bias added after them: tract's order.
        let mut acc = [[_mm512_setzero_ps(); NV]; R];
        let mut wk = self.w;
        let mut xk = self.x;
        for _ in 0..self.cin {
            let mut xv = [_mm512_setzero_ps(); NV];
            for (v, xv) in xv.iter_mut().enumerate() {
                *xv = if v + 1 == NV {
                    _mm512_maskz_loadu_ps(self.mask, xk.add(16 * v))
                } else {
                    _mm512_loadu_ps(xk.add(16 * v))
                };
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let wv = _mm512_set1_ps(*wk.add(r));
                for (a, &xv) in row.iter_mut().zip(&xv) {
                    *a = _mm512_fmadd_ps(wv, xv, *a);
                }
            }
            wk = wk.add(R);
            xk = xk.add(self.hw);
        }
        let (lo, hi) = self.clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        let (lo, hi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
        for (r, row) in acc.iter().enumerate() {
            let b = _mm512_set1_ps(*self.bias.add(r));
            for (v, &a) in row.iter().enumerate() {
                let at = r * self.hw + 16 * v;
                let m = if v + 1 == NV { self.mask } else { 0xffff };
                let mut s = _mm512_add_ps(a, b);
                if !self.res.is_null() {
                    s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(m, self.res.add(at)));
                }
                if self.clamp.is_some() {
                    // NaN stays NaN (the second operand is returned when either is NaN).
                    s = _mm512_min_ps(hi, _mm512_max_ps(lo, s));
                }
                _mm512_mask_storeu_ps(self.y.add(at), m, s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `clamp(W · x + bias [+ residual])` in f64, the sum in the plain order.
    fn reference(
        w: &[f32],
        bias: &[f32],
        x: &[f32],
        (cout, cin, hw): (usize, usize, usize),
        residual: Option<&[f32]>,
        clamp: Option<(f32, f32)>,
    ) -> Vec<f32> {
        let mut y = vec![0f32; cout * hw];
        for o in 0..cout {
            for p in 0..hw {
                let mut s = bias[o] as f64;
                for k in 0..cin {
                    s += w[o * cin + k] as f64 * x[k * hw + p] as f64;
                }
                let mut v = s as f32 + residual.map_or(0.0, |r| r[o * hw + p]);
                if let Some((lo, hi)) = clamp {
                    v = v.clamp(lo, hi);
                }
                y[o * hw + p] = v;
            }
        }
        y
    }

    /// Every tile shape: planes of 1 point, 7×7, not a multiple of 16, several tiles; output
    /// channels not a multiple of [`MR`]; with and without skip connection and clamp.
    #[test]
    fn kernel_matches_the_plain_sum() {
        if !available() {
            // The operator then keeps `gemm` (tests/depthwise.rs checks the network either way).
            assert!(std::panic::catch_unwind(|| {
                pointwise(
                    &PackedWeights::new(&[1.0], 1, 1),
                    &[0.0],
                    &[1.0],
                    1,
                    None,
                    None,
                    &mut [0.0],
                )
            })
            .is_err());
            return;
        }
        for &(cout, cin, hw) in &[
            (1, 1, 1),
            (8, 3, 16),
            (13, 7, 49),
            (24, 40, 100),
            (17, 96, 196),
            (40, 5, 785),
            (192, 1152, 49),
        ] {
            let w: Vec<f32> = (0..cout * cin).map(|i| ((i as f32) * 0.37).sin()).collect();
            let x: Vec<f32> = (0..cin * hw)
                .map(|i| ((i as f32) * 0.11).cos() * 3.0)
                .collect();
            let bias: Vec<f32> = (0..cout).map(|i| i as f32 * 0.1 - 0.5).collect();
            let res: Vec<f32> = (0..cout * hw).map(|i| ((i as f32) * 0.05).sin()).collect();
            let packed = PackedWeights::new(&w, cout, cin);
            for (residual, clamp) in [
                (None, None),
                (Some(&res[..]), None),
                (None, Some((0.0, 6.0))),
            ] {
                let mut y = vec![f32::NAN; cout * hw];
                pointwise(&packed, &bias, &x, hw, residual, clamp, &mut y);
                let want = reference(&w, &bias, &x, (cout, cin, hw), residual, clamp);
                for (i, (a, b)) in y.iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-5 * (1.0 + (cin as f32).sqrt() * b.abs().max(1.0)),
                        "{cout}×{cin} on {hw} points, output {i}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn both_layouts_unpack_to_the_weights() {
        for &(cout, cin) in &[(16, 3), (48, 7), (80, 40), (13, 5), (1152, 192)] {
            let w: Vec<f32> = (0..cout * cin).map(|i| i as f32).collect();
            for layout in [Layout::Rows, Layout::Lanes] {
                if layout == Layout::Lanes && cout % 16 != 0 {
                    continue;
                }
                let p = PackedWeights::with_layout(&w, cout, cin, layout);
                assert_eq!(p.unpacked(), w, "{cout}×{cin} {layout:?}");
                let other = if layout == Layout::Rows && cout % 16 == 0 {
                    Layout::Lanes
                } else {
                    Layout::Rows
                };
                assert_eq!(p.relayout(other).unpacked(), w, "{cout}×{cin} to {other:?}");
            }
        }
    }

    /// Any of input, skip connection and output channel-blocked gives the planar call's outputs
    /// bit for bit (compared in the planar layout), on Lite's and MobileNetV2's small-plane
    /// shapes and on planes that leave partial tiles.
    #[test]
    fn blocked_tensors_are_bit_identical_to_planar() {
        use crate::channel_blocks::{to_blocked, to_planar};
        if !available() {
            return;
        }
        for &(cout, cin, hw) in &[
            (16, 16, 1),
            (48, 32, 5),
            (80, 48, 13),
            (192, 1152, 49),
            (1152, 192, 49),
            (320, 960, 49),
            (64, 16, 64),
        ] {
            let w: Vec<f32> = (0..cout * cin).map(|i| ((i as f32) * 0.37).sin()).collect();
            let x: Vec<f32> = (0..cin * hw)
                .map(|i| ((i as f32) * 0.11).cos() * 3.0)
                .collect();
            let bias: Vec<f32> = (0..cout).map(|i| i as f32 * 0.1 - 0.5).collect();
            let res: Vec<f32> = (0..cout * hw).map(|i| ((i as f32) * 0.05).sin()).collect();
            let lanes = PackedWeights::for_plane(&w, cout, cin, hw);
            let (xb, rb) = (to_blocked(&x, cin, hw), to_blocked(&res, cout, hw));
            for (residual, clamp) in [(None, Some((0.0, 6.0))), (Some(&res[..]), None)] {
                let mut want = vec![f32::NAN; cout * hw];
                pointwise(&lanes, &bias, &x, hw, residual, clamp, &mut want);
                for bits in 1..8u8 {
                    let blocked = Blocked {
                        input: bits & 1 != 0,
                        residual: bits & 2 != 0,
                        output: bits & 4 != 0,
                    };
                    if blocked.residual && residual.is_none() {
                        continue;
                    }
                    let xi = if blocked.input { &xb } else { &x };
                    let ri = residual.map(|r| if blocked.residual { &rb[..] } else { r });
                    let mut y = vec![f32::NAN; cout * hw];
                    pointwise_blocked(&lanes, &bias, xi, hw, ri, clamp, &mut y, blocked);
                    if blocked.output {
                        y = to_planar(&y, cout, hw);
                    }
                    for (i, (u, v)) in want.iter().zip(&y).enumerate() {
                        assert_eq!(
                            u.to_bits(),
                            v.to_bits(),
                            "{cout}×{cin} on {hw} points, {blocked:?}, output {i}"
                        );
                    }
                }
            }
        }
    }

    /// The lanes layout gives the rows layout's outputs bit for bit, on every tile shape it
    /// has: planes of 1 to 64 points (not multiples of [`LANE_POINTS`]), 1 to 5 vectors of
    /// output channels, with and without skip connection and clamp; and `for_plane` picks it
    /// for Lite's 7×7 layers only.
    #[test]
    fn lanes_layout_is_bit_identical_to_rows() {
        if !available() {
            return;
        }
        for &(cout, cin, hw) in &[
            (16, 1, 1),
            (32, 3, 5),
            (48, 7, 49),
            (80, 40, 13),
            (192, 1152, 49),
            (1152, 192, 49),
            (1280, 320, 49),
            (64, 17, 64),
        ] {
            let w: Vec<f32> = (0..cout * cin).map(|i| ((i as f32) * 0.37).sin()).collect();
            let x: Vec<f32> = (0..cin * hw)
                .map(|i| ((i as f32) * 0.11).cos() * 3.0)
                .collect();
            let bias: Vec<f32> = (0..cout).map(|i| i as f32 * 0.1 - 0.5).collect();
            let res: Vec<f32> = (0..cout * hw).map(|i| ((i as f32) * 0.05).sin()).collect();
            let rows = PackedWeights::new(&w, cout, cin);
            let lanes = PackedWeights::for_plane(&w, cout, cin, hw);
            assert_eq!(lanes.layout, Layout::Lanes, "{cout}×{cin} on {hw} points");
            for (residual, clamp) in [
                (None, None),
                (Some(&res[..]), None),
                (None, Some((0.0, 6.0))),
            ] {
                let mut a = vec![f32::NAN; cout * hw];
                let mut b = vec![f32::NAN; cout * hw];
                pointwise(&rows, &bias, &x, hw, residual, clamp, &mut a);
                pointwise(&lanes, &bias, &x, hw, residual, clamp, &mut b);
                for (i, (u, v)) in a.iter().zip(&b).enumerate() {
                    assert_eq!(
                        u.to_bits(),
                        v.to_bits(),
                        "{cout}×{cin} on {hw} points, output {i}"
                    );
                }
            }
        }
        let w = vec![0.5f32; 24 * 8];
        assert_eq!(PackedWeights::for_plane(&w, 24, 8, 49).layout, Layout::Rows);
        let w = vec![0.5f32; 32 * 8];
        assert_eq!(
            PackedWeights::for_plane(&w, 32, 8, 196).layout,
            Layout::Rows
        );
    }
}
