//! Time the depthwise kernel alone on EfficientNet-Lite0's layer shapes.
use std::time::Instant;
use tlearn_extract::ops::depthwise_kernel::{Geometry, Plan};

fn main() {
    // (channels, size, kernel, stride, pad_before, pad_after)
    let layers = [
        (32, 112, 3, 1, 1, 1),
        (96, 112, 3, 2, 0, 1),
        (144, 56, 3, 1, 1, 1),
        (144, 56, 5, 2, 1, 2),
        (240, 28, 5, 1, 2, 2),
        (240, 28, 3, 2, 0, 1),
        (480, 14, 3, 1, 1, 1),
        (480, 14, 5, 1, 2, 2),
        (672, 14, 5, 1, 2, 2),
        (672, 14, 5, 2, 1, 2),
        (1152, 7, 5, 1, 2, 2),
        (1152, 7, 3, 1, 1, 1),
    ];
    let mut total = 0.0;
    for (c, s, k, st, pb, pa) in layers {
        let g = Geometry::new([s, s], [k, k], [st, st], [pb, pb], [pa, pa]).unwrap();
        let plan = Plan::new(g);
        let x: Vec<f32> = (0..c * s * s).map(|i| (i as f32 * 0.1).sin()).collect();
        let taps: Vec<f32> = (0..c * k * k).map(|i| (i as f32 * 0.3).cos()).collect();
        let mut y = vec![0f32; c * g.output[0] * g.output[1]];
        let mut scratch = Vec::new();
        let runs = 50;
        let t = Instant::now();
        for _ in 0..runs {
            for ch in 0..c {
                plan.conv_channel(
                    &x[ch * s * s..][..s * s],
                    None,
                    &taps[ch * k * k..][..k * k],
                    0.1,
                    Some((0.0, 6.0)),
                    &mut y[ch * g.output[0] * g.output[1]..][..g.output[0] * g.output[1]],
                    &mut scratch,
                );
            }
        }
        let ms = t.elapsed().as_secs_f64() * 1e3 / runs as f64;
        let macs = (c * g.output[0] * g.output[1] * k * k) as f64;
        total += ms;
        println!(
            "{c:5} {s:4} k{k} s{st}: {ms:7.3} ms  {:6.2} GMAC/s",
            macs / ms / 1e6
        );
    }
    println!("total {total:.3} ms");
}
