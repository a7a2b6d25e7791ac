//! Where tract spends its time on a backbone: per-operator wall time over N runs at batch 1,
//! plus `plan.run` (new state per call, what `Backbone::encode` does) vs a reused `SimpleState`.
//!
//! cargo run --release -p tlearn-extract --example profile_ops -- [model] [runs]
//!
//! Environment: `TENSOR=name` runs the network up to that tensor (default `features`);
//! `TLEARN_OPS=tract|depthwise` keeps tract's own operators (all / the 1×1 ones); `TRANSFORMS=a,b`
//! applies tract model transforms (e.g. `conv_nhwc`) after declutter; `DUMP=1` prints the
//! optimised nodes with their kernels and every node's time, slowest first; `DUMP_DECL=1` the decluttered graph.

use std::collections::HashMap;
use std::time::Instant;

use tlearn_extract::registry::{models_dir, Registry};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::SimpleState;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("efficientnet-lite0", String::as_str);
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(30);
    let dir = models_dir(None);
    let reg = Registry::load(&dir)?;
    let entry = reg.get(name)?;
    let s = entry.preprocess.crop as usize;
    let mut model = tract_onnx::onnx().model_for_path(entry.path(&dir))?;
    let tensor = std::env::var("TENSOR").unwrap_or_else(|_| "features".into());
    model.select_outputs_by_name([tensor.as_str()])?;
    model.set_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), [1, 3, s, s]))?;
    let mut typed = model.into_typed()?.into_decluttered()?;
    if let Ok(list) = std::env::var("TRANSFORMS") {
        for name in list.split(',').filter(|s| !s.is_empty()) {
            let t = tract_onnx::tract_core::transform::get_transform(name)?
                .ok_or_else(|| anyhow::anyhow!("no tract transform {name}"))?;
            typed.transform(&*t)?;
        }
    }
    let ops: tlearn_ops::Ops = match std::env::var("TLEARN_OPS") {
        Ok(v) => v
            .parse()
            .map_err(|e| anyhow::anyhow!("TLEARN_OPS={v:?}: {e}"))?,
        Err(_) => Default::default(),
    };
    let n = tlearn_ops::apply(&mut typed, ops)?;
    println!("tlearn operators ({ops:?}): {n:?}");
    if std::env::var("DUMP_DECL").is_ok() {
        for node in &typed.nodes {
            println!(
                "{} {} {:?} {:?} {:?}",
                node.id,
                node.name,
                node.op(),
                node.inputs,
                node.outputs[0].fact
            );
        }
    }
    let typed = typed.into_optimized()?;
    if std::env::var("DUMP").is_ok() {
        for node in &typed.nodes {
            println!("{} {} {:?}", node.name, node.op().name(), node.op().info()?);
        }
    }
    let plan = typed.into_runnable()?;
    let input: Tensor =
        tract_ndarray::Array4::<f32>::from_shape_fn((1, 3, s, s), |(_, c, y, x)| {
            ((c * 31 + y * 7 + x * 3) % 255) as f32 / 128.0 - 1.0
        })
        .into();
    for _ in 0..3 {
        plan.run(tvec!(input.clone().into()))?;
    }
    let t = Instant::now();
    for _ in 0..runs {
        plan.run(tvec!(input.clone().into()))?;
    }
    let per_run = t.elapsed().as_secs_f64() * 1e3 / runs as f64;
    let mut state = SimpleState::new(&plan)?;
    let t = Instant::now();
    for _ in 0..runs {
        state.run(tvec!(input.clone().into()))?;
    }
    let per_state = t.elapsed().as_secs_f64() * 1e3 / runs as f64;
    println!("{name}: plan.run {per_run:.2} ms/image, reused state {per_state:.2} ms/image");

    let mut times: HashMap<String, (f64, usize)> = HashMap::new();
    let mut per_node: HashMap<String, f64> = HashMap::new();
    for _ in 0..runs {
        state.run_plan_with_eval(tvec!(input.clone().into()), |ctx, st, node, inp| {
            let t = Instant::now();
            let r = tract_onnx::tract_core::plan::eval(ctx, st, node, inp);
            let dt = t.elapsed().as_secs_f64() * 1e3;
            let e = times.entry(node.op().name().to_string()).or_default();
            e.0 += dt;
            e.1 += 1;
            *per_node.entry(node.name.clone()).or_default() += dt;
            r
        })?;
    }
    let total: f64 = times.values().map(|v| v.0).sum();
    let mut v: Vec<_> = times.into_iter().collect();
    v.sort_by(|a, b| b.1 .0.partial_cmp(&a.1 .0).unwrap());
    println!("{:28} {:>9} {:>6} {:>6}", "op", "ms/image", "%", "nodes");
    for (op, (ms, n)) in v.iter().take(12) {
        println!(
            "{op:28} {:9.3} {:6.1} {:6}",
            ms / runs as f64,
            100.0 * ms / total,
            n / runs
        );
    }
    if std::env::var("DUMP").is_ok() {
        let mut v: Vec<_> = per_node.into_iter().collect();
        v.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap());
        for (n, ms) in &v {
            println!("{n:40} {:8.3}", ms / runs as f64);
        }
    }
    Ok(())
}
