//! Depthwise convolution (any kernel, stride and padding) on channels-last maps: forward,
//! and the gradients with respect to the input and to the weights. Images are independent, so
//! every pass runs in parallel over them (rayon); the weight gradient adds per-chunk partial
//! sums in a fixed order, so results do not depend on the number of threads.
//!
//! Written here rather than composed from a tensor library's ops: candle's `conv2d` with
//! `groups = C` runs one convolution per channel (1,152 in Lite0's last block), and composing
//! the layer from `K·K` shifted slices made a whole fine-tuning step 1.7x slower than this
//! loop (2.6 against 1.5 CPU-seconds per 64-image step of Lite0's top; bench/RESULTS.md).

use rayon::prelude::*;

/// Depthwise convolution: `x [N, H, W, C]` (contiguous), `w [K*K, C]` → `[N, Ho, Wo, C]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Depthwise {
    pub k: usize,
    /// The same in both directions (EfficientNet's and MobileNetV2's down-sampling layers: 2).
    pub stride: usize,
    /// (top, left, bottom, right).
    pub pads: [usize; 4],
}

/// Images per partial sum of the weight gradient (fixed, so the sum order is too).
const CHUNK: usize = 8;

impl Depthwise {
    pub fn out_hw(&self, h: usize, w: usize) -> (usize, usize) {
        (
            (h + self.pads[0] + self.pads[2] - self.k) / self.stride + 1,
            (w + self.pads[1] + self.pads[3] - self.k) / self.stride + 1,
        )
    }

    /// Calls `f(input position, output position, tap)` for every kernel tap that lands inside
    /// the input, for an `h x w` input.
    #[inline]
    fn taps(&self, h: usize, w: usize, mut f: impl FnMut(usize, usize, usize)) {
        let (ho, wo) = self.out_hw(h, w);
        for oy in 0..ho {
            for ox in 0..wo {
                for ky in 0..self.k {
                    let iy = (oy * self.stride + ky).wrapping_sub(self.pads[0]);
                    if iy >= h {
                        continue;
                    }
                    for kx in 0..self.k {
                        let ix = (ox * self.stride + kx).wrapping_sub(self.pads[1]);
                        if ix >= w {
                            continue;
                        }
                        f(iy * w + ix, oy * wo + ox, ky * self.k + kx);
                    }
                }
            }
        }
    }

    pub fn forward(&self, x: &[f32], w: &[f32], [n, h, wd, c]: [usize; 4]) -> Vec<f32> {
        let (ho, wo) = self.out_hw(h, wd);
        let mut out = vec![0f32; n * ho * wo * c];
        if c == 0 {
            return out;
        }
        out.par_chunks_mut(ho * wo * c)
            .zip(x.par_chunks(h * wd * c))
            .for_each(|(o, xi)| {
                self.taps(h, wd, |i, p, t| {
                    let d = &mut o[p * c..(p + 1) * c];
                    let s = &xi[i * c..(i + 1) * c];
                    let q = &w[t * c..(t + 1) * c];
                    for ((d, s), q) in d.iter_mut().zip(s).zip(q) {
                        *d += s * q;
                    }
                })
            });
        out
    }

    /// dL/dx from dL/dy (`g [N, Ho, Wo, C]`).
    pub fn grad_x(&self, g: &[f32], w: &[f32], [n, h, wd, c]: [usize; 4]) -> Vec<f32> {
        let (ho, wo) = self.out_hw(h, wd);
        let mut out = vec![0f32; n * h * wd * c];
        if c == 0 {
            return out;
        }
        out.par_chunks_mut(h * wd * c)
            .zip(g.par_chunks(ho * wo * c))
            .for_each(|(o, gi)| {
                self.taps(h, wd, |i, p, t| {
                    let d = &mut o[i * c..(i + 1) * c];
                    let s = &gi[p * c..(p + 1) * c];
                    let q = &w[t * c..(t + 1) * c];
                    for ((d, s), q) in d.iter_mut().zip(s).zip(q) {
                        *d += s * q;
                    }
                })
            });
        out
    }

    /// dL/dw from dL/dy and x.
    pub fn grad_w(&self, g: &[f32], x: &[f32], [n, h, wd, c]: [usize; 4]) -> Vec<f32> {
        let (ho, wo) = self.out_hw(h, wd);
        let kk = self.k * self.k;
        let parts: Vec<Vec<f32>> = (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .map(|ch| {
                let mut acc = vec![0f32; kk * c];
                for i in ch * CHUNK..((ch + 1) * CHUNK).min(n) {
                    let gi = &g[i * ho * wo * c..(i + 1) * ho * wo * c];
                    let xi = &x[i * h * wd * c..(i + 1) * h * wd * c];
                    self.taps(h, wd, |ii, p, t| {
                        let a = &mut acc[t * c..(t + 1) * c];
                        let gs = &gi[p * c..(p + 1) * c];
                        let xs = &xi[ii * c..(ii + 1) * c];
                        for ((a, gs), xs) in a.iter_mut().zip(gs).zip(xs) {
                            *a += gs * xs;
                        }
                    })
                }
                acc
            })
            .collect();
        let mut out = vec![0f32; kk * c];
        for p in parts {
            for (o, v) in out.iter_mut().zip(p) {
                *o += v;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gradients against central finite differences of sum(y * r), in float64 sums, at
    /// stride 1 and 2 (the stride-2 case on an odd width, so the last column has no output).
    #[test]
    fn gradients_match_finite_differences() {
        for (stride, pads) in [(1, [1, 0, 1, 2]), (2, [1, 1, 2, 1]), (2, [0; 4])] {
            check_gradients(Depthwise { k: 3, stride, pads });
        }
    }

    fn check_gradients(op: Depthwise) {
        let dims = [2, 4, 5, 3];
        let (ho, wo) = op.out_hw(4, 5);
        let noise = |n: usize, s: u32| -> Vec<f32> {
            (0..n)
                .map(|i| {
                    (((i as u32 * 2654435761).wrapping_add(s * 97)) % 1000) as f32 / 500.0 - 1.0
                })
                .collect()
        };
        let x = noise(2 * 4 * 5 * 3, 1);
        let w = noise(9 * 3, 2);
        let r = noise(2 * ho * wo * 3, 3);
        let loss = |x: &[f32], w: &[f32]| -> f64 {
            op.forward(x, w, dims)
                .iter()
                .zip(&r)
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum()
        };
        let gx = op.grad_x(&r, &w, dims);
        let gw = op.grad_w(&r, &x, dims);
        let eps = 1e-2f32;
        for i in 0..x.len() {
            let (mut p, mut m) = (x.clone(), x.clone());
            p[i] += eps;
            m[i] -= eps;
            let fd = (loss(&p, &w) - loss(&m, &w)) / (2.0 * eps as f64);
            assert!(
                (fd - gx[i] as f64).abs() < 1e-3 * (1.0 + fd.abs()),
                "{op:?} x {i}: {fd} vs {}",
                gx[i]
            );
        }
        for i in 0..w.len() {
            let (mut p, mut m) = (w.clone(), w.clone());
            p[i] += eps;
            m[i] -= eps;
            let fd = (loss(&x, &p) - loss(&x, &m)) / (2.0 * eps as f64);
            assert!(
                (fd - gw[i] as f64).abs() < 1e-3 * (1.0 + fd.abs()),
                "{op:?} w {i}: {fd} vs {}",
                gw[i]
            );
        }
    }

    /// A stride-2 output is the stride-1 output at every other row and column (same pads at
    /// the top and left), including the 5x5 "same" layer of EfficientNet's down-sampling block.
    #[test]
    fn stride_two_samples_the_stride_one_map() {
        let (n, h, w, c) = (2, 14, 13, 5);
        let x: Vec<f32> = (0..n * h * w * c)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
            .collect();
        for (k, pads) in [(5, [1, 1, 2, 2]), (3, [0, 0, 1, 1]), (3, [1; 4])] {
            let wt: Vec<f32> = (0..k * k * c)
                .map(|i| ((i * 13) % 29) as f32 / 14.0 - 1.0)
                .collect();
            let one = Depthwise { k, stride: 1, pads };
            let two = Depthwise { k, stride: 2, pads };
            let (h1, w1) = one.out_hw(h, w);
            let (h2, w2) = two.out_hw(h, w);
            assert_eq!(
                (h2, w2),
                (h1.div_ceil(2), w1.div_ceil(2)),
                "k {k} pads {pads:?}"
            );
            let y1 = one.forward(&x, &wt, [n, h, w, c]);
            let y2 = two.forward(&x, &wt, [n, h, w, c]);
            for i in 0..n {
                for oy in 0..h2 {
                    for ox in 0..w2 {
                        let a = &y2[((i * h2 + oy) * w2 + ox) * c..][..c];
                        let b = &y1[((i * h1 + 2 * oy) * w1 + 2 * ox) * c..][..c];
                        assert_eq!(a, b, "k {k} pads {pads:?} image {i} at ({oy}, {ox})");
                    }
                }
            }
        }
    }
}
