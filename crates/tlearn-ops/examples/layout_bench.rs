//! Which layout of the AVX-512 1×1 kernel (`pointwise_kernel`) suits which plane: EfficientNet-
//! Lite0's 1×1 convolutions of one stage, in network order with each layer's own weights, run
//! with `Layout::Rows` and with `Layout::Lanes`, the two alternating; ms per pass over the
//! stage, min of `ROUNDS` rounds of 20 passes, and the per-round ratio lanes / rows.
//!
//! cargo run --release -p tlearn-ops --example layout_bench [-- rounds]
use std::time::Instant;
use tlearn_ops::pointwise_kernel::{pointwise, Layout, PackedWeights};

#[path = "common/lite0.rs"]
mod lite0;

/// The plane sizes of Lite0's stages whose output channels are multiples of 16 (the lanes
/// layout needs them).
const STAGES: [usize; 2] = [196, 49];

fn pass(layers: &[(PackedWeights, Vec<f32>)], hw: usize, bufs: &mut [Vec<f32>; 2]) -> f64 {
    let t = Instant::now();
    for _ in 0..20 {
        for (l, (w, bias)) in layers.iter().enumerate() {
            let [a, b] = bufs;
            let (x, y) = if l % 2 == 0 { (a, b) } else { (b, a) };
            pointwise(
                w,
                bias,
                &x[..w.cin * hw],
                hw,
                None,
                Some((0.0, 6.0)),
                &mut y[..w.cout * hw],
            );
        }
    }
    t.elapsed().as_secs_f64() * 1e3 / 20.0
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(9);
    for hw in STAGES {
        let shapes: Vec<(usize, usize)> = lite0::POINTWISE
            .iter()
            .filter(|s| s.0 == hw)
            .map(|&(_, cin, cout)| (cin, cout))
            .collect();
        let packed = |layout: Layout| -> Vec<(PackedWeights, Vec<f32>)> {
            shapes
                .iter()
                .enumerate()
                .map(|(l, &(cin, cout))| {
                    let w: Vec<f32> = (0..cout * cin)
                        .map(|i| ((i + l) as f32 * 0.1).sin() * 0.05)
                        .collect();
                    (
                        PackedWeights::with_layout(&w, cout, cin, layout),
                        vec![0.01; cout],
                    )
                })
                .collect()
        };
        let (rows, lanes) = (packed(Layout::Rows), packed(Layout::Lanes));
        let widest = shapes.iter().map(|&(i, o)| i.max(o)).max().unwrap_or(0);
        let mut bufs = [vec![0.5f32; widest * hw], vec![0.5f32; widest * hw]];
        let (mut best_rows, mut best_lanes) = (f64::INFINITY, f64::INFINITY);
        let mut ratios = Vec::new();
        for _ in 0..rounds {
            let r = pass(&rows, hw, &mut bufs);
            let l = pass(&lanes, hw, &mut bufs);
            best_rows = best_rows.min(r);
            best_lanes = best_lanes.min(l);
            ratios.push(l / r);
        }
        ratios.sort_by(f64::total_cmp);
        println!(
            "{hw:5} points, {:2} layers: rows {best_rows:.3} ms, lanes {best_lanes:.3} ms, \
             median ratio lanes/rows {:.3}",
            shapes.len(),
            ratios[ratios.len() / 2]
        );
    }
}
