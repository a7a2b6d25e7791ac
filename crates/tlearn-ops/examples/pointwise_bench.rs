//! Time the `gemm` crate alone on the 32 1×1 convolutions of EfficientNet-Lite0 (hw, cin, cout),
//! as tlearn's pointwise operator calls it. Compare with `profile_ops` (tract's OptMatMul + Pack).
use std::time::Instant;
fn main() {
    // (hw, cin, cout) of lite0 pointwise convs, grouped
    let shapes = [
        (12544, 32, 16),
        (12544, 16, 96),
        (3136, 96, 24),
        (3136, 24, 144),
        (3136, 144, 24),
        (3136, 24, 144),
        (784, 144, 40),
        (784, 40, 240),
        (784, 240, 40),
        (784, 40, 240),
        (196, 240, 80),
        (196, 80, 480),
        (196, 480, 80),
        (196, 80, 480),
        (196, 480, 80),
        (196, 80, 480),
        (196, 480, 112),
        (196, 112, 672),
        (196, 672, 112),
        (196, 112, 672),
        (196, 672, 112),
        (196, 112, 672),
        (49, 672, 192),
        (49, 192, 1152),
        (49, 1152, 192),
        (49, 192, 1152),
        (49, 1152, 192),
        (49, 192, 1152),
        (49, 1152, 192),
        (49, 192, 1152),
        (49, 1152, 320),
        (49, 320, 1280),
    ];
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
