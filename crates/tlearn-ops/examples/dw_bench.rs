//! Time the depthwise kernels alone on EfficientNet-Lite0's layer shapes (each layer once, at
//! its channel count; then, outside the Lite0 total, some of Lite1's, Lite2's and Xception's
//! shapes): the per-channel kernel (`depthwise_kernel`) and, on AVX-512 or AVX2 CPUs,
//! the 16-channels-per-block one (`depthwise_blocked`) on planar maps and, with AVX-512, on
//! channel-blocked maps (no transposes: what it costs between two operators that keep the
//! blocked layout), alternating, minimum of `ROUNDS` rounds.
//!
//! cargo run --release -p tlearn-ops --example dw_bench [-- rounds]
use std::time::Instant;
use tlearn_ops::channel_blocks::Blocked;
use tlearn_ops::depthwise_blocked as blocked;
use tlearn_ops::depthwise_kernel::{Geometry, Plan};

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let has_blocked = blocked::available();
    let has_maps = tlearn_ops::pointwise_kernel::available();
    let maps = Blocked {
        input: true,
        output: true,
        residual: false,
    };
    // (channels, size, kernel, stride, pad_before, pad_after, repeats in Lite0)
    let layers = [
        (32, 112, 3, 1, 1, 1, 1),
        (96, 112, 3, 2, 0, 1, 1),
        (144, 56, 3, 1, 1, 1, 1),
        (144, 56, 5, 2, 1, 2, 1),
        (240, 28, 5, 1, 2, 2, 1),
        (240, 28, 3, 2, 0, 1, 1),
        (480, 14, 3, 1, 1, 1, 2),
        (480, 14, 5, 1, 2, 2, 1),
        (672, 14, 5, 1, 2, 2, 2),
        (672, 14, 5, 2, 1, 2, 1),
        (1152, 7, 5, 1, 2, 2, 3),
        (1152, 7, 3, 1, 1, 1, 1),
        // Other backbones' shapes (repeats 0: not in the Lite0 total): Xception's 19- and
        // 10-wide, Lite1's 15- and 8-wide, Lite2's 17- and 9-wide, a stride-2 3×3 into 17.
        (728, 19, 3, 1, 1, 1, 0),
        (1024, 10, 3, 1, 1, 1, 0),
        (672, 15, 5, 1, 2, 2, 0),
        (672, 15, 5, 2, 1, 2, 0),
        (1152, 8, 5, 1, 2, 2, 0),
        (1152, 8, 3, 1, 1, 1, 0),
        (816, 17, 5, 1, 2, 2, 0),
        (480, 17, 3, 1, 1, 1, 0),
        (816, 17, 5, 2, 1, 2, 0),
        (288, 34, 3, 2, 0, 1, 0),
        (1392, 9, 5, 1, 2, 2, 0),
        (1392, 9, 3, 1, 1, 1, 0),
        (256, 37, 3, 1, 1, 1, 0),
    ];
    let (mut total, mut total_b, mut total_best, mut total_m) = (0.0, 0.0, 0.0, 0.0);
    println!(
        "layer                  per-channel    blocked    blocked maps  (ms, min of {rounds}; GMAC/s)"
    );
    for (c, s, k, st, pb, pa, reps) in layers {
        let g = Geometry::new([s, s], [k, k], [st, st], [pb, pb], [pa, pa]).unwrap();
        let plan = Plan::new(g);
        let (in_plane, out_plane, k_plane) = (s * s, g.output[0] * g.output[1], k * k);
        let x: Vec<f32> = (0..c * in_plane).map(|i| (i as f32 * 0.1).sin()).collect();
        let taps: Vec<f32> = (0..c * k_plane).map(|i| (i as f32 * 0.3).cos()).collect();
        let taps16 = blocked::block_taps(&taps, c, k_plane);
        let bias = [0.1f32; blocked::LANES];
        let mut y = vec![0f32; c * out_plane];
        let mut scratch = Vec::new();
        let runs = 20;
        let (mut best, mut best_b, mut best_m) = (f64::INFINITY, f64::INFINITY, f64::INFINITY);
        for _ in 0..rounds {
            let t = Instant::now();
            for _ in 0..runs {
                for ch in 0..c {
                    plan.conv_channel(
                        &x[ch * in_plane..][..in_plane],
                        Some((0.0, 6.0)),
                        &taps[ch * k_plane..][..k_plane],
                        0.1,
                        Some((0.0, 6.0)),
                        &mut y[ch * out_plane..][..out_plane],
                        &mut scratch,
                    );
                }
            }
            best = best.min(t.elapsed().as_secs_f64() * 1e3 / runs as f64);
            // ms per pass of the blocked path over every block, with `io` maps.
            let mut time_blocked = |io: Blocked, y: &mut [f32]| {
                let t = Instant::now();
                for _ in 0..runs {
                    for b in 0..c / blocked::LANES {
                        let n = blocked::LANES;
                        blocked::conv_block_blocked(
                            &g,
                            &x[b * n * in_plane..][..n * in_plane],
                            Some((0.0, 6.0)),
                            &taps16[b * k_plane * n..][..k_plane * n],
                            &bias,
                            Some((0.0, 6.0)),
                            &mut y[b * n * out_plane..][..n * out_plane],
                            &mut scratch,
                            io,
                        );
                    }
                }
                t.elapsed().as_secs_f64() * 1e3 / runs as f64
            };
            if has_blocked {
                best_b = best_b.min(time_blocked(Blocked::PLANAR, &mut y));
            }
            if has_maps {
                best_m = best_m.min(time_blocked(maps, &mut y));
            }
        }
        let macs = (c * out_plane * k_plane) as f64 / 1e6;
        let reps_f = reps as f64;
        total += best * reps_f;
        total_b += best_b * reps_f;
        total_best += best.min(best_b) * reps_f;
        total_m += best_m * reps_f;
        let reps = if reps == 0 {
            "  ".to_string()
        } else {
            format!("×{reps}")
        };
        println!(
            "{c:5} {s:4} k{k} s{st} {reps}: {best:7.3} {:5.1}  {best_b:7.3} {:5.1}  {best_m:7.3} {:5.1}",
            macs / best,
            macs / best_b,
            macs / best_m,
        );
    }
    println!(
        "Lite0 total (×repeats): per-channel {total:.3} ms, blocked {total_b:.3} ms, best of each {total_best:.3} ms, blocked maps {total_m:.3} ms"
    );
}
