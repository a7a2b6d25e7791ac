//! Time the dense head's training loop: `cargo run --release -p tlearn-heads --example
//! mlp_epochs -- FEATURES.npy ROWS EPOCHS` trains Dense(256, ReLU) → Dense(10) by Adam in
//! mini-batches of 200 for EPOCHS epochs (no early stopping, no inner validation split) on the
//! first ROWS rows, labels `i % 10`: the figure set beside candle-nn's (bench/candle-mlp) in
//! bench/RESULTS.md ("Dense head").

use linfa::traits::Fit;
use linfa::{DatasetBase, ParamGuard};
use ndarray::{Array1, Array2};
use tlearn_heads::families::mlp::MlpParams;

const USAGE: &str = "usage: mlp_epochs FEATURES.npy ROWS EPOCHS";

fn run() -> Result<(), String> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 4 {
        return Err(USAGE.into());
    }
    let rows: usize = a[2]
        .parse()
        .map_err(|e| format!("ROWS {:?}: {e}\n{USAGE}", a[2]))?;
    let epochs: usize = a[3]
        .parse()
        .map_err(|e| format!("EPOCHS {:?}: {e}\n{USAGE}", a[3]))?;
    let x: Array2<f32> = ndarray_npy::read_npy(&a[1]).map_err(|e| format!("{}: {e}", a[1]))?;
    if rows == 0 || rows > x.nrows() {
        return Err(format!("{}: ROWS {rows} not in 1..={}", a[1], x.nrows()));
    }
    if epochs == 0 {
        return Err(format!("EPOCHS must be at least 1\n{USAGE}"));
    }
    let x = x.slice(ndarray::s![..rows, ..]).to_owned();
    let y = Array1::from_iter((0..rows).map(|i| i % 10));
    let p = MlpParams::new()
        .hidden(256)
        .weight_decay(0.0)
        .batch_size(200)
        .max_epochs(epochs)
        .patience(epochs + 1)
        .validation_fraction(0.0)
        .check()
        .map_err(|e| e.to_string())?;
    let t0 = std::time::Instant::now();
    let m = p
        .fit(&DatasetBase::new(x.view(), y.view()))
        .map_err(|e| e.to_string())?;
    let s = t0.elapsed().as_secs_f64();
    let e = m.convergence.iterations;
    println!(
        "tlearn ndarray: {rows} rows x {} dims, H=256, {e} Adam epochs: {s:.3} s ({:.2} ms/epoch)",
        x.ncols(),
        1e3 * s / e.max(1) as f64
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("mlp_epochs: {e}");
        std::process::exit(2);
    }
}
