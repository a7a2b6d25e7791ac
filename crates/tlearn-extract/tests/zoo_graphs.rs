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
