//! The ceiling a 1×1 convolution can reach on this core: multiply-adds per second of AVX-512
//! fused multiply-adds with nothing else in the loop (12 independent accumulator chains, enough
//! to hide the instruction's latency), best of 5 runs. `bench/RESULTS.md` compares each layer's
//! GMAC/s with it.
//!
//! cargo run --release -p tlearn-ops --example fma_peak
use std::time::Instant;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn chains(n: usize, seed: f32) -> f32 {
    use std::arch::x86_64::*;
    let (b, c) = (_mm512_set1_ps(0.999), _mm512_set1_ps(0.001));
    let mut a: [__m512; 12] = std::array::from_fn(|i| _mm512_set1_ps(seed + i as f32));
    for _ in 0..n {
        for a in a.iter_mut() {
            *a = _mm512_fmadd_ps(*a, b, c);
        }
    }
    a.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        let n = 50_000_000;
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let t = Instant::now();
            // SAFETY: the CPU has AVX-512F (checked above).
            let s = unsafe { chains(n, std::hint::black_box(1.0)) };
            std::hint::black_box(s);
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "AVX-512 FMA peak: {:.1} GMAC/s on one core",
            (n * 12 * 16) as f64 / best / 1e9
        );
        return;
    }
    eprintln!("no AVX-512F on this CPU");
}
