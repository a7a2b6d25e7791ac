//! Time the `gemm` crate alone on the 32 1×1 convolutions of EfficientNet-Lite0 (hw, cin, cout),
//! as tlearn's pointwise operator calls it. Compare with `profile_ops` (tract's OptMatMul + Pack).
use std::time::Instant;

#[path = "common/lite0.rs"]
mod lite0;

fn main() {
    let shapes = lite0::POINTWISE;
    let mut total = 0.0;
    let mut macs_t = 0.0;
    for &(hw, cin, cout) in &shapes {
        let w: Vec<f32> = (0..cout * cin).map(|i| (i as f32 * 0.1).sin()).collect();
        let x: Vec<f32> = (0..cin * hw).map(|i| (i as f32 * 0.3).cos()).collect();
        let mut y = vec![0f32; cout * hw];
        let runs = 30;
        let t = Instant::now();
        for _ in 0..runs {
            unsafe {
                gemm::gemm(
                    cout,
                    hw,
                    cin,
                    y.as_mut_ptr(),
                    1,
                    hw as isize,
                    false,
                    w.as_ptr(),
                    1,
                    cin as isize,
                    x.as_ptr(),
                    1,
                    hw as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        }
        let ms = t.elapsed().as_secs_f64() * 1e3 / runs as f64;
        let macs = (hw * cin * cout) as f64;
        total += ms;
        macs_t += macs;
        println!(
            "{hw:6} {cin:5} {cout:5}: {ms:.3} ms {:.1} GMAC/s",
            macs / ms / 1e6
        );
    }
    println!("total {total:.3} ms, {:.1} GMAC/s", macs_t / total / 1e6);
}
