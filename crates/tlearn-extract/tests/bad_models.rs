//! Bad model files and bad cuts give clear errors naming the problem (never panics); ImageNet
//! label mapping. Uses tests/data/tiny.onnx (a small real CNN, see make_tiny.py).

use std::path::{Path, PathBuf};

use tlearn_extract::backbone::{list_layers, Backbone};
use tlearn_extract::imagenet::ImagenetLabels;
use tlearn_extract::registry::ModelEntry;
use tlearn_extract::spec::{ChannelOrder, Layout, Pooling};
use tract_onnx::prelude::Tensor;

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny.onnx")
}

fn entry(path: &Path, cut: &str) -> ModelEntry {
    ModelEntry::custom(
        path,
        32,
        1.0,
        [0.0; 3],
        [1.0; 3],
        ChannelOrder::Rgb,
        Layout::Nchw,
        cut,
    )
}

fn load_err(e: &ModelEntry, dir: &Path, layer: Option<&str>) -> String {
    match Backbone::load(e, dir, layer, Pooling::Avg) {
        Ok(_) => panic!("{} loaded but should not", e.file),
        Err(err) => format!("{err:#}"),
    }
}

#[test]
fn tiny_model_loads_cuts_and_pools() {
    let dir = tiny().parent().unwrap().to_path_buf();
    let e = entry(&tiny(), "relu1");
    let bb = Backbone::load(&e, &dir, None, Pooling::Avg).unwrap();
    assert_eq!((bb.dim(), bb.output_shape()), (8, &[1usize, 8, 16, 16][..]));
    let x = Tensor::from_shape(&[2, 3, 32, 32], &vec![1.0f32; 2 * 3 * 32 * 32]).unwrap();
    let v = bb.encode_batch(x).unwrap();
    assert_eq!((v.len(), v[0].len()), (2, 8));
    assert_eq!(v[0], v[1]);
    let flat = Backbone::load(&e, &dir, None, Pooling::Flatten).unwrap();
    assert_eq!(flat.dim(), 8 * 16 * 16);
    let max = Backbone::load(&e, &dir, None, Pooling::Max).unwrap();
    let one = Tensor::from_shape(&[1, 3, 32, 32], &vec![1.0f32; 3 * 32 * 32]).unwrap();
    let (a, m) = (bb.encode(one.clone()).unwrap(), max.encode(one).unwrap());
    assert!(
        a.iter().zip(&m).all(|(a, m)| m >= a),
        "max pooling below average"
    );
    // node name and structural forms resolve
    let cls = Backbone::load(&e, &dir, Some("@classifier_input"), Pooling::Avg).unwrap();
    assert_eq!((cls.node(), cls.dim()), ("flat", 8));
    let last = Backbone::load(&e, &dir, Some("@last:Conv"), Pooling::Avg).unwrap();
    assert_eq!(last.node(), "conv1");
    let layers = list_layers(&e, &dir).unwrap();
    let relu = layers.iter().find(|l| l.name == "relu1").unwrap();
    assert_eq!(
        (relu.op.as_str(), relu.shape.clone()),
        ("Relu", Some(vec![1, 8, 16, 16]))
    );
}

#[test]
fn bad_files_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let good = std::fs::read(tiny()).unwrap();

    let missing = dir.join("missing.onnx");
    let err = load_err(&entry(&missing, "relu1"), dir, None);
    assert!(
        err.contains("missing.onnx") && err.contains("cannot read"),
        "{err}"
    );

    let empty = dir.join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    let err = load_err(&entry(&empty, "relu1"), dir, None);
    assert!(err.contains("empty.onnx") && err.contains("empty"), "{err}");

    let trunc = dir.join("trunc.onnx");
    std::fs::write(&trunc, &good[..good.len() * 2 / 3]).unwrap();
    let err = load_err(&entry(&trunc, "relu1"), dir, None);
    assert!(
        err.contains("trunc.onnx") && err.contains("not a valid ONNX"),
        "{err}"
    );

    let garbage = dir.join("garbage.onnx");
    std::fs::write(
        &garbage,
        b"this is not a protobuf at all, just some text\n".repeat(40),
    )
    .unwrap();
    let err = load_err(&entry(&garbage, "relu1"), dir, None);
    assert!(err.contains("garbage.onnx"), "{err}");
    assert!(
        err.contains("not a valid ONNX") || err.contains("not an ONNX model"),
        "{err}"
    );

    let copy = dir.join("copy.onnx");
    std::fs::write(&copy, &good).unwrap();
    let mut pinned = entry(&copy, "relu1");
    pinned.sha256 = "0".repeat(64);
    let err = load_err(&pinned, dir, None);
    assert!(
        err.contains("sha256 mismatch") && err.contains("copy.onnx"),
        "{err}"
    );

    // manifest.json pins unpinned registry entries by name
    let mut named = entry(&copy, "relu1");
    named.name = "mymodel".into();
    std::fs::write(
        dir.join("manifest.json"),
        format!(r#"{{"mymodel": {{"sha256": "{}"}}}}"#, "f".repeat(64)),
    )
    .unwrap();
    let err = load_err(&named, dir, None);
    assert!(err.contains("sha256 mismatch"), "{err}");

    let err = load_err(&entry(&copy, "relu1"), dir, Some("block99"));
    assert!(
        err.contains("block99") && err.contains("relu1") && err.contains("tlearn layers"),
        "{err}"
    );
    let err = load_err(&entry(&copy, "relu1"), dir, Some("@last:MaxPool"));
    assert!(err.contains("0 MaxPool nodes"), "{err}");

    // input size the model cannot take (declared [1,3,32,32])
    let mut wrong = entry(&copy, "relu1");
    wrong.preprocess.crop = 224;
    let err = load_err(&wrong, dir, None);
    assert!(
        err.contains("cannot take input") && err.contains("1,3,32,32"),
        "{err}"
    );

    // wrong input tensor shape at encode time
    let bb = Backbone::load(&entry(&copy, "relu1"), dir, None, Pooling::Avg).unwrap();
    let x = Tensor::from_shape(&[1, 3, 16, 16], &vec![0f32; 3 * 16 * 16]).unwrap();
    let err = format!("{:#}", bb.encode(x).unwrap_err());
    assert!(
        err.contains("[1, 3, 16, 16]") && err.contains("[1, 3, 32, 32]"),
        "{err}"
    );
}

#[test]
#[ignore = "needs models/imagenet_classes.txt (make models); run by make test"]
fn imagenet_labels_map_indices() {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    assert!(
        ImagenetLabels::path(&models).exists(),
        "{} is missing: run `make models` (make test does)",
        ImagenetLabels::path(&models).display()
    );
    let labels = ImagenetLabels::load(&models).unwrap();
    assert_eq!(labels.len(), 1000);
    assert_eq!(labels.name(0), "tench");
    assert_eq!(labels.name(281), "tabby");
    assert_eq!(labels.name(967), "espresso");
}

#[test]
fn bad_labels_file_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("imagenet_classes.txt"), "tench\ngoldfish\n").unwrap();
    let err = format!("{:#}", ImagenetLabels::load(tmp.path()).unwrap_err());
    assert!(
        err.contains("expected 1000") && err.contains("imagenet_classes.txt"),
        "{err}"
    );
}
