//! The candle side of the dense head's timing (bench/RESULTS.md, "Dense head"): `candle-mlp
//! FEATURES.npy ROWS EPOCHS` trains Dense(256, ReLU) → Dense(10) with candle-nn's `Linear` and
//! `AdamW` (weight decay 0, so Adam) on candle's CPU backend for EPOCHS epochs over the first
//! ROWS rows in mini-batches of 200, labels `i % 10`, the loop tlearn's `mlp_epochs` example runs.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{linear, loss, AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};

const USAGE: &str = "usage: candle-mlp FEATURES.npy ROWS EPOCHS";

fn run() -> Result<(), String> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 4 {
        return Err(USAGE.into());
    }
    let rows: usize = a[2].parse().map_err(|e| format!("ROWS {:?}: {e}\n{USAGE}", a[2]))?;
    let epochs: usize = a[3].parse().map_err(|e| format!("EPOCHS {:?}: {e}\n{USAGE}", a[3]))?;
    let dev = Device::Cpu;
    let x = Tensor::read_npy(&a[1]).map_err(|e| format!("{}: {e}", a[1]))?;
    let (n, d) = x.dims2().map_err(|e| format!("{}: {e}", a[1]))?;
    if rows == 0 || rows > n {
        return Err(format!("{}: ROWS {rows} not in 1..={n}", a[1]));
    }
    let go = || -> candle_core::Result<(f64, usize)> {
        let x = x.to_dtype(DType::F32)?.narrow(0, 0, rows)?;
        let y = Tensor::from_iter((0..rows).map(|i| (i % 10) as u32), &dev)?;
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
        let l1 = linear(d, 256, vb.pp("l1"))?;
        let l2 = linear(256, 10, vb.pp("l2"))?;
        let p = ParamsAdamW { lr: 1e-3, weight_decay: 0.0, ..Default::default() };
        let mut opt = AdamW::new(vm.all_vars(), p)?;
        let t0 = std::time::Instant::now();
        for _ in 0..epochs {
            let mut s = 0;
            while s < rows {
                let b = 200.min(rows - s);
                let (xb, yb) = (x.narrow(0, s, b)?, y.narrow(0, s, b)?);
                let logits = l2.forward(&l1.forward(&xb)?.relu()?)?;
                let l = loss::cross_entropy(&logits, &yb)?;
                opt.backward_step(&l)?;
                s += b;
            }
        }
        Ok((t0.elapsed().as_secs_f64(), epochs))
    };
    let (s, e) = go().map_err(|e| e.to_string())?;
    println!(
        "candle-nn 0.11.1 cpu: {rows} rows x {d} dims, H=256, {e} Adam epochs: {s:.3} s ({:.2} ms/epoch)",
        1e3 * s / e as f64
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("candle-mlp: {e}");
        std::process::exit(2);
    }
}
