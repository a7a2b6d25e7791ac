//! The ONNX model-zoo architectures of the registry load in tract and cut at their registry cut
//! points with the registered feature dimension. Offline: the `onnx` wheel ships the zoo graphs
//! with placeholder weights (onnx/backend/test/data/light/light_*.onnx, in the repo's .venv).

use std::path::{Path, PathBuf};

use tlearn_extract::backbone::Backbone;
use tlearn_extract::registry::{ModelEntry, Registry};
use tlearn_extract::spec::Pooling;
use tract_onnx::prelude::Tensor;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn light_dir() -> Option<PathBuf> {
    let lib = repo().join(".venv/lib");
    std::fs::read_dir(&lib).ok()?.flatten().find_map(|d| {
        let p = d.path().join("site-packages/onnx/backend/test/data/light");
        p.is_dir().then_some(p)
    })
}

fn light_entry(entry: &ModelEntry, dir: &Path, light: &str) -> ModelEntry {
    let mut e = entry.clone();
    e.name = light.to_string();
    e.file = dir
        .join(format!("{light}.onnx"))
        .to_string_lossy()
        .into_owned();
    e.sha256 = String::new();
    e
}

#[test]
#[ignore = "needs make models/data; run by make test"]
fn zoo_graphs_cut_at_registry_points() {
    let dir = light_dir().expect("no onnx/backend/test/data/light in .venv (make venv)");
    let reg = Registry::load(&repo().join("models")).unwrap();
    let mut failures = vec![];
    let mut checked = 0;
    for entry in reg.models.iter().filter(|m| m.light.is_some()) {
        let light = entry.light.as_deref().unwrap();
        let e = light_entry(entry, &dir, light);
        for cut in &entry.cuts {
            checked += 1;
            match Backbone::load(&e, &dir, Some(&cut.name), Pooling::Avg) {
                Ok(bb) => {
                    let s = bb.input_shape().to_vec();
                    let n: usize = s.iter().product();
                    let x = Tensor::from_shape(&s, &vec![0.5f32; n]).unwrap();
                    let v = bb.encode(x).map(|v| v.len());
                    println!(
                        "{:14} {light:20} {:14} -> {:22} {:?} {:?} dim {} (registry {}) encode {:?} load {:.2}s",
                        entry.name,
                        cut.name,
                        bb.node(),
                        bb.output_shape(),
                        bb.pool(),
                        bb.dim(),
                        cut.dim,
                        v,
                        bb.load_time().as_secs_f64()
                    );
                    if bb.dim() != cut.dim || v.as_ref().ok() != Some(&cut.dim) {
                        failures.push(format!(
                            "{light} {}: dim {} / encode {v:?}, registry says {}",
                            cut.name,
                            bb.dim(),
                            cut.dim
                        ));
                    }
                }
                Err(err) => {
                    println!(
                        "{:14} {light:20} {:14} FAILED: {err:#}",
                        entry.name, cut.name
                    );
                    failures.push(format!("{light} {}: {err:#}", cut.name));
                }
            }
        }
    }
    // Zoo graphs without a registry entry: report what tract makes of their classifier input.
    for light in ["light_bvlc_alexnet", "light_zfnet512", "light_shufflenet"] {
        let mut e = ModelEntry::custom(
            &dir.join(format!("{light}.onnx")),
            224,
            1.0,
            [0.0; 3],
            [1.0; 3],
            tlearn_extract::spec::ChannelOrder::Bgr,
            tlearn_extract::spec::Layout::Nchw,
            "@classifier_input",
        );
        e.name = light.into();
        match Backbone::load(&e, &dir, None, Pooling::Avg) {
            Ok(bb) => println!(
                "(no entry)     {light:20} @classifier_input -> {} {:?} dim {}",
                bb.node(),
                bb.output_shape(),
                bb.dim()
            ),
            Err(err) => println!("(no entry)     {light:20} FAILED: {err:#}"),
        }
    }
    assert!(checked >= 10, "only {checked} registry cuts checked");
    assert!(
        failures.is_empty(),
        "zoo graph failures:\n{}",
        failures.join("\n")
    );
}

/// tlearn's operators (crate::rewrite) on every zoo architecture, whole graph at batch 1: what
/// they replace computes what tract's own plan computes, up to float rounding. The zoo has 1×1
/// convolutions (ResNet, SqueezeNet, Inception, DenseNet) and grouped ones (ShuffleNet) in shapes
/// EfficientNet does not.
#[test]
#[ignore = "needs make venv; run by make test"]
fn tlearn_operators_match_tract_on_zoo_graphs() {
    use tlearn_ops::{apply, Ops};
    use tract_onnx::prelude::*;
    let dir = light_dir().expect("no onnx/backend/test/data/light in .venv (make venv)");
    let mut lights: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|d| d.path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    lights.sort();
    let mut replaced_total = 0;
    for path in lights {
        let Ok(mut model) = tract_onnx::onnx().model_for_path(&path) else {
            continue;
        };
        // Compare at the classifier input: the softmax of these placeholder-weight graphs is
        // flat, and would hide a difference.
        let proto = tract_onnx::onnx().proto_model_for_path(&path).unwrap();
        if let Ok(node) = tlearn_extract::backbone::resolve_node(
            proto.graph.as_ref().unwrap(),
            "@classifier_input",
        ) {
            model.select_outputs_by_name([node.as_str()]).unwrap();
        }
        // Every zoo graph here takes 224 × 224 RGB.
        let shape = vec![1, 3, 224, 224];
        model.set_input_fact(0, f32::fact(&shape).into()).unwrap();
        let Ok(decluttered) = model.into_typed().and_then(|m| m.into_decluttered()) else {
            continue;
        };
        let mut ours = decluttered.clone();
        let n = apply(&mut ours, Ops::All).unwrap();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if n.depthwise + n.pointwise == 0 {
            println!("{name:28} nothing replaced");
            continue;
        }
        replaced_total += n.depthwise + n.pointwise;
        let volume: usize = shape.iter().product();
        let x: Vec<f32> = (0..volume)
            .map(|i| ((i * 7919) % 255) as f32 / 128.0 - 1.0)
            .collect();
        let x = Tensor::from_shape(&shape, &x).unwrap();
        let run = |m: TypedModel| -> Vec<f32> {
            let out = m
                .into_optimized()
                .unwrap()
                .into_runnable()
                .unwrap()
                .run(tvec!(x.clone().into()))
                .unwrap();
            out[0]
                .to_plain_array_view::<f32>()
                .unwrap()
                .iter()
                .copied()
                .collect()
        };
        let (want, got) = (run(decluttered), run(ours));
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = want
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        println!("{name:28} {n:?}: max |diff| {d:.2e} (max |out| {scale:.2e})");
        assert!(
            d <= 1e-4 * scale.max(1e-6),
            "{name}: outputs differ by {d} (scale {scale})"
        );
    }
    assert!(
        replaced_total > 0,
        "no zoo graph exercised tlearn's operators"
    );
}
