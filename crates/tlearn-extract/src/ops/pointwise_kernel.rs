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
//! masked, so any plane size works. Each output starts from its bias and accumulates `Σ w·x`
//! over `k` in order with fused multiply-adds; the skip connection is added and the clamp
//! applied as the tile is stored. The sums are tract's up to float rounding (the order and the
//! FMA differ), as with `gemm`.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Output channels per tile.
pub const MR: usize = 8;

/// `W` (`cout × cin`, row major) packed for the kernel: blocks of [`MR`] output channels (the
/// last may be shorter), each `cin × rows` with the rows of one input channel adjacent.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedWeights {
    pub cout: usize,
    pub cin: usize,
    data: Vec<f32>,
}

impl PackedWeights {
    pub fn new(weights: &[f32], cout: usize, cin: usize) -> PackedWeights {
        assert_eq!(weights.len(), cout * cin, "weights are cout × cin");
        let mut data = Vec::with_capacity(cout * cin);
        for o0 in (0..cout).step_by(MR) {
            let rows = MR.min(cout - o0);
            for k in 0..cin {
                for r in 0..rows {
                    data.push(weights[(o0 + r) * cin + k]);
                }
            }
        }
        PackedWeights { cout, cin, data }
    }
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

/// `y = clamp(W · x + bias [+ residual])` for one image. Panics if a slice has the wrong length
/// or [`available`] is false.
pub fn pointwise(
    w: &PackedWeights,
    bias: &[f32],
    x: &[f32],
    hw: usize,
    residual: Option<&[f32]>,
    clamp: Option<(f32, f32)>,
    y: &mut [f32],
) {
    assert!(available(), "pointwise kernel needs AVX-512F");
    assert_eq!(bias.len(), w.cout);
    assert_eq!(x.len(), w.cin * hw);
    assert_eq!(y.len(), w.cout * hw);
    if let Some(r) = residual {
        assert_eq!(r.len(), y.len());
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F is present (asserted); every pointer below stays inside the slices whose
    // lengths were checked above (the masked lanes of a plane's last vector are neither read
    // nor written).
    unsafe {
        run(w, bias, x, hw, residual, clamp, y)
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
        let mut acc = [[_mm512_setzero_ps(); NV]; R];
        for (r, row) in acc.iter_mut().enumerate() {
            let b = _mm512_set1_ps(*self.bias.add(r));
            for a in row.iter_mut() {
                *a = b;
            }
        }
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
            for (v, &a) in row.iter().enumerate() {
                let at = r * self.hw + 16 * v;
                let m = if v + 1 == NV { self.mask } else { 0xffff };
                let mut s = a;
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
}
