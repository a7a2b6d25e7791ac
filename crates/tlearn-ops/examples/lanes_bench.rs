//! Time the AVX-512 1×1 kernel (`pointwise_kernel`) on EfficientNet-Lite0's 7×7 stage, the
//! layers that take its `Lanes` layout, in network order with each layer's own weights (so the
//! caches hold what they hold in the network): ms per pass, min of `ROUNDS` rounds.
//!
//! cargo run --release -p tlearn-ops --example lanes_bench [-- rounds]
use std::time::Instant;
use tlearn_ops::pointwise_kernel::{pointwise, PackedWeights};

#[path = "common/lite0.rs"]
mod lite0;

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let hw = 49;
    // (cin, cout) in Lite0's order, from the stride-2 block's projection to the head.
    let shapes: Vec<(usize, usize)> = lite0::POINTWISE
        .iter()
        .filter(|s| s.0 == hw)
        .map(|&(_, cin, cout)| (cin, cout))
        .collect();
    let weights: Vec<Vec<f32>> = shapes
        .iter()
        .enumerate()
        .map(|(l, &(cin, cout))| {
            (0..cout * cin)
                .map(|i| ((i + l) as f32 * 0.1).sin() * 0.05)
                .collect()
        })
        .collect();
    // Packing the weights (model load): min of `rounds`.
    let mut pack = f64::INFINITY;
    for _ in 0..rounds {
        let t = Instant::now();
        for (w, &(cin, cout)) in weights.iter().zip(&shapes) {
            std::hint::black_box(PackedWeights::for_plane(w, cout, cin, hw));
        }
        pack = pack.min(t.elapsed().as_secs_f64() * 1e3);
    }
    println!("packing the stage's weights: {pack:.3} ms");
    let layers: Vec<(PackedWeights, Vec<f32>)> = shapes
        .iter()
        .enumerate()
        .map(|(l, &(cin, cout))| {
            let w: Vec<f32> = (0..cout * cin)
                .map(|i| ((i + l) as f32 * 0.1).sin() * 0.05)
                .collect();
            let bias = vec![0.01; cout];
            (PackedWeights::for_plane(&w, cout, cin, hw), bias)
        })
        .collect();
    let mut bufs: Vec<Vec<f32>> = (0..2).map(|_| vec![0.5f32; 1280 * hw]).collect();
    let mut best = vec![f64::INFINITY; shapes.len()];
    let mut best_pass = f64::INFINITY;
    for _ in 0..rounds {
        let pass = Instant::now();
        for _ in 0..20 {
            for (l, ((w, bias), &(cin, cout))) in layers.iter().zip(&shapes).enumerate() {
                let (a, b) = bufs.split_at_mut(1);
                let (x, y) = if l % 2 == 0 {
                    (&a[0], &mut b[0])
                } else {
                    (&b[0], &mut a[0])
                };
                let t = Instant::now();
                pointwise(
                    w,
                    bias,
                    &x[..cin * hw],
                    hw,
                    None,
                    Some((0.0, 6.0)),
                    &mut y[..cout * hw],
                );
                best[l] = best[l].min(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        best_pass = best_pass.min(pass.elapsed().as_secs_f64() * 1e3 / 20.0);
    }
    for (&(cin, cout), ms) in shapes.iter().zip(&best) {
        let gmacs = (hw * cin * cout) as f64 / ms / 1e6;
        println!("{cin:5} -> {cout:5}: {ms:.4} ms {gmacs:5.1} GMAC/s");
    }
    println!("pass (min of {rounds}): {best_pass:.3} ms");
}
