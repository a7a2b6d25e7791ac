//! The fine-tuned head's files without a backbone: a small MBConv-shaped block (expansion,
//! depthwise, projection with a residual, head conv) trained on two classes of maps, saved,
//! loaded back to the same decisions; then sidecars and head.json files that disagree, refused
//! naming the file and the field.

use ndarray::{Array1, Array4};
use rand::{Rng, SeedableRng};
use tlearn_cache::{Fingerprint, Pooling};
use tlearn_finetune::block::{Op, OpKind, TopBlock};
use tlearn_finetune::pipeline;
use tlearn_finetune::saved::{
    BlockRecord, FinetuneHead, FitRecord, HeadFile, Params, SidecarRecord, KIND,
};
use tlearn_finetune::{fit, FinetuneParams};
use tlearn_heads::model_file::{CvSummary, SplitRecord};

fn conv(
    name: &str,
    input: usize,
    co: usize,
    ci: usize,
    k: usize,
    group: usize,
    rng: &mut impl Rng,
) -> Op {
    let p = k / 2;
    Op {
        name: name.into(),
        kind: OpKind::Conv {
            w: Array4::from_shape_fn((co, ci, k, k), |_| rng.gen_range(-0.5..0.5)),
            b: Array1::from_shape_fn(co, |_| rng.gen_range(-0.1..0.1)),
            group,
            pads: [p; 4],
            stride: 1,
        },
        inputs: vec![input],
    }
}

/// cut map [4,3,3] → expand to 8 + ReLU6 → depthwise 3x3 + ReLU6 → project to 4, + cut map →
/// head conv to 6 + ReLU6.
fn block() -> TopBlock {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let ops = vec![
        conv("expand.conv", 0, 8, 4, 1, 1, &mut rng),
        Op {
            name: "expand".into(),
            kind: OpKind::Relu6,
            inputs: vec![1],
        },
        conv("dw.conv", 2, 8, 1, 3, 8, &mut rng),
        Op {
            name: "dw".into(),
            kind: OpKind::Relu6,
            inputs: vec![3],
        },
        conv("project", 4, 4, 8, 1, 1, &mut rng),
        Op {
            name: "block".into(),
            kind: OpKind::Add,
            inputs: vec![5, 0],
        },
        conv("head.conv", 6, 6, 4, 1, 1, &mut rng),
        Op {
            name: "head".into(),
            kind: OpKind::Relu6,
            inputs: vec![7],
        },
    ];
    TopBlock {
        backbone: "tiny".into(),
        sha256: "ab".repeat(32),
        cut: "cut".into(),
        input: [4, 3, 3],
        ops,
    }
}

fn fingerprint() -> Fingerprint {
    Fingerprint {
        layer: "cut".into(),
        pool: Pooling::Flatten,
        ..tlearn_cache::testing::fingerprint("tiny", &"ab".repeat(32))
    }
}

/// Two classes: maps whose channel 0 is bright (class 1) or dark (class 0), plus noise.
fn data(n: usize) -> (Vec<Vec<f32>>, Vec<usize>, Vec<String>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut rows = Vec::new();
    let mut y = Vec::new();
    for i in 0..n {
        let c = i % 2;
        let r: Vec<f32> = (0..36)
            .map(|j| rng.gen_range(-1.0..1.0) + if j < 9 { 2.0 * c as f32 - 1.0 } else { 0.0 })
            .collect();
        rows.push(r);
        y.push(c);
    }
    let groups = (0..n).map(|i| format!("{i:064}")).collect();
    (rows, y, groups)
}

fn trained() -> (FinetuneHead, Vec<Vec<f32>>) {
    let b = block();
    let (rows, y, groups) = data(120);
    let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
    let p = FinetuneParams {
        probe_epochs: 3,
        max_epochs: 3,
        batch: 16,
        lr_block: 1e-3,
        lr_head: 1e-2,
        ..Default::default()
    };
    let f = fit(&b, &refs, &y, &groups, 2, &p, &mut |_| {}).unwrap();
    let acc = {
        let d = tlearn_finetune::train::decision(&f.block, &f.cls_w, &f.cls_b, &refs).unwrap();
        d.rows()
            .into_iter()
            .zip(&y)
            .filter(|(r, &t)| (r[1] > r[0]) as usize == t)
            .count() as f64
            / y.len() as f64
    };
    assert!(acc > 0.9, "training accuracy {acc} on separable maps");
    let file = HeadFile {
        format: "tlearn-head".into(),
        version: 2,
        tlearn_version: "test".into(),
        created: 0,
        classes: vec!["dark".into(), "bright".into()],
        extractor: fingerprint(),
        dim: 36,
        params: Params {
            kind: KIND.into(),
            finetune: p,
        },
        block: BlockRecord::of(&f.block),
        sidecar: SidecarRecord {
            file: String::new(),
            sha256: String::new(),
        },
        fit: FitRecord {
            best_epoch: f.best_epoch,
            train_rows: f.train_rows,
            val_rows: f.val_rows,
            seconds: 0.0,
            history: f.history.clone(),
        },
        cv: CvSummary {
            mean_accuracy: 1.0,
            std_accuracy: 0.0,
            fold_accuracy: vec![1.0],
            grid_edge: vec![],
        },
        split: SplitRecord {
            cache: "c".into(),
            seed: 0,
            test_size: 0.3,
            folds: 0,
            train_rows: 120,
            held_out: vec![],
        },
    };
    (
        FinetuneHead {
            file,
            block: f.block,
            cls_w: f.cls_w,
            cls_b: f.cls_b,
        },
        rows,
    )
}

#[test]
fn saved_head_loads_back_to_the_same_decisions_and_refuses_bad_files() {
    let (mut head, rows) = trained();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("head.json");
    head.save(&path).unwrap();
    let back = FinetuneHead::load(&path).unwrap();
    let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
    assert_eq!(head.decision(&refs).unwrap(), back.decision(&refs).unwrap());
    let p = back.predict_proba(&refs[..3]).unwrap();
    for r in p.rows() {
        assert!((r.sum() - 1.0).abs() < 1e-5);
    }
    assert!(tlearn_finetune::saved::is_finetune(&path));
    // The backbone's block: same layers and shapes (the weights are the head's own).
    back.check_backbone(&block(), &path).unwrap();
    let mut other = block();
    other.cut = "another".into();
    let err = format!("{:#}", back.check_backbone(&other, &path).unwrap_err());
    assert!(
        err.contains("block.cut") && err.contains("another backbone or cut"),
        "{err}"
    );
    let mut other = block();
    other.input = [4, 4, 4];
    let err = format!("{:#}", back.check_backbone(&other, &path).unwrap_err());
    assert!(err.contains("block.input"), "{err}");

    // Determinism: the same seed gives the same weights.
    let (again, _) = trained();
    assert_eq!(again.cls_w, head.cls_w);

    // A sidecar whose array has another shape (head.json's sha256 updated to match).
    let side = dir.path().join("head.finetune.npz");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    {
        let mut w = ndarray_npy::NpzWriter::new(std::fs::File::create(&side).unwrap());
        w.add_array("expand.conv.weight", &Array4::<f32>::zeros((8, 5, 1, 1)))
            .unwrap();
        w.finish().unwrap();
    }
    use sha2::Digest;
    v["sidecar"]["sha256"] = serde_json::json!(hex::encode(sha2::Sha256::digest(
        std::fs::read(&side).unwrap()
    )));
    std::fs::write(&path, v.to_string()).unwrap();
    let err = format!("{:#}", FinetuneHead::load(&path).unwrap_err());
    assert!(
        err.contains("head.finetune.npz")
            && err.contains("expand.conv.weight")
            && err.contains("[8, 5, 1, 1]"),
        "{err}"
    );

    // head.json's block disagreeing with itself.
    v["block"]["input"] = serde_json::json!([4, 3, 4]);
    std::fs::write(&path, v.to_string()).unwrap();
    let err = format!("{:#}", FinetuneHead::load(&path).unwrap_err());
    assert!(err.contains("block.input"), "{err}");
    // An unknown field.
    v["block"]["input"] = serde_json::json!([4, 3, 3]);
    v["block"]["extra"] = serde_json::json!(1);
    std::fs::write(&path, v.to_string()).unwrap();
    let err = format!("{:#}", FinetuneHead::load(&path).unwrap_err());
    assert!(
        err.contains("malformed fine-tuned head") && err.contains("block"),
        "{err}"
    );
    assert_eq!(pipeline::bytes_per_image(192 * 49), 37_632);
}
