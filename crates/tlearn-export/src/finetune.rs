//! Export of a fine-tuned head: the backbone's graph cut at the head's cut tensor, then the
//! fine-tuned layers (ONNX `Conv` with the sidecar's weights, `Clip`/`Relu`/`Add` as read),
//! `GlobalAveragePool`, `Flatten`, the classifier (`Gemm`) and `Softmax`. Checked like every
//! export: tract runs the written bytes on a test image and must reproduce
//! `FinetuneHead::predict_proba` on the backbone's cut map of that image within [`TOLERANCE`].

use std::path::Path;

use prost::Message;
use tlearn_cache::Pooling;
use tlearn_extract::augment::Augment;
use tlearn_extract::backbone::Backbone;
use tlearn_extract::encoder::fingerprint;
use tlearn_extract::open::{entry_for, OwnModel};
use tlearn_extract::preprocess;
use tlearn_finetune::block::OpKind;
use tlearn_finetune::{FinetuneHead, TopBlock};
use tract_onnx::pb;

use crate::graph::{attr_int, attr_ints, value_info, Builder};
use crate::{
    check_image, cut_backbone_graph, dims, run_in_tract, ExportError, Exported, INPUT, OUTPUT,
    TOLERANCE,
};

/// Export `head` with its backbone (see the module doc); `model` as for [`crate::export`].
pub fn export_finetune(
    head: &FinetuneHead,
    model: Option<&str>,
    models_dir: &Path,
) -> Result<Exported, ExportError> {
    let fp = &head.file.extractor;
    if fp.augment != Augment::None {
        return Err(ExportError::Augmented(
            serde_json::to_string(&fp.augment).unwrap_or_default(),
        ));
    }
    let mut entry = entry_for(
        model.unwrap_or(&fp.backbone),
        models_dir,
        Some(&fp.layer),
        &OwnModel::default(),
    )
    .map_err(|source| ExportError::Entry {
        backbone: fp.backbone.clone(),
        source,
    })?;
    entry.preprocess = fp.preprocess.clone();
    let bb = Backbone::load(&entry, models_dir, Some(&fp.layer), Pooling::Flatten)
        .map_err(ExportError::Backbone)?;
    let actual = fingerprint(&bb, fp.augment);
    if let Some(diff) = fp.compare(&actual, "head", "backbone on disk") {
        return Err(ExportError::Mismatch {
            path: entry.path(models_dir).display().to_string(),
            diff,
        });
    }
    let actual_block = TopBlock::read(&entry, models_dir, &fp.layer, head.file.dim)
        .map_err(ExportError::Backbone)?;
    head.check_backbone(&actual_block, Path::new("head.json"))
        .map_err(ExportError::Backbone)?;
    let (mut proto, mut graph, node, input_shape) =
        cut_backbone_graph(&entry, models_dir, &fp.layer, &bb)?;
    {
        let mut b = Builder::new(&mut graph, "tlearn/");
        let lo = b.constant("relu6_min", &[], vec![0.0]);
        let hi = b.constant("relu6_max", &[], vec![6.0]);
        let mut values = vec![node.clone()];
        for op in &head.block.ops {
            let x = values[op.inputs[0]].clone();
            let out = match &op.kind {
                OpKind::Conv {
                    w,
                    b: bias,
                    group,
                    pads,
                    stride,
                } => {
                    let s = w.shape().to_vec();
                    let wc = b.constant("w", &s, w.iter().copied().collect());
                    let bc = b.constant("b", &[bias.len()], bias.to_vec());
                    let p = pads.map(|v| v as i64);
                    b.node(
                        "Conv",
                        &[&x, &wc, &bc],
                        vec![
                            attr_ints("kernel_shape", &[s[2] as i64, s[3] as i64]),
                            attr_ints("strides", &[*stride as i64; 2]),
                            attr_ints("pads", &[p[0], p[1], p[2], p[3]]),
                            attr_int("group", *group as i64),
                        ],
                    )
                }
                OpKind::Relu6 => b.node("Clip", &[&x, &lo, &hi], vec![]),
                OpKind::Relu => b.node("Relu", &[&x], vec![]),
                OpKind::Add => {
                    let y = values[op.inputs[1]].clone();
                    b.node("Add", &[&x, &y], vec![])
                }
            };
            values.push(out);
        }
        let last = values.last().cloned().unwrap_or_default();
        let pooled = b.node("GlobalAveragePool", &[&last], vec![]);
        let flat = b.node("Flatten", &[&pooled], vec![attr_int("axis", 1)]);
        let (k, f) = head.cls_w.dim();
        let wc = b.constant(
            "classifier_w",
            &[k, f],
            head.cls_w.iter().copied().collect(),
        );
        let bc = b.constant("classifier_b", &[k], head.cls_b.to_vec());
        let logits = b.node("Gemm", &[&flat, &wc, &bc], vec![attr_int("transB", 1)]);
        b.node_named("Softmax", &[&logits], vec![attr_int("axis", 1)], OUTPUT);
    }
    graph.output = vec![value_info(
        OUTPUT,
        &dims(&[input_shape[0], Some(head.file.classes.len())]),
    )];
    graph.name = format!("tlearn finetune on {}", fp.backbone);
    proto.graph = Some(graph);
    proto.producer_name = "tlearn".into();
    proto.producer_version = env!("CARGO_PKG_VERSION").into();
    proto.doc_string = format!(
        "{}'s layers after cut {} fine-tuned, with a new classifier. Input '{INPUT}': the preprocessed \
         image tensor (see metadata 'preprocess'). Output '{OUTPUT}': class probabilities (metadata 'classes').",
        fp.backbone, fp.layer
    );
    proto.metadata_props = [
        (
            "classes",
            serde_json::to_string(&head.file.classes).unwrap_or_default(),
        ),
        (
            "preprocess",
            serde_json::to_string(&fp.preprocess).unwrap_or_default(),
        ),
        ("extractor", serde_json::to_string(fp).unwrap_or_default()),
        (
            "head",
            serde_json::to_string(&head.file.params).unwrap_or_default(),
        ),
        (
            "output",
            format!("{OUTPUT}: float32 [N, {}]", head.file.classes.len()),
        ),
    ]
    .into_iter()
    .map(|(k, v)| pb::StringStringEntryProto {
        key: k.into(),
        value: v,
    })
    .collect();
    let bytes = proto.encode_to_vec();
    let check_max_abs_diff = self_check(head, &bb, &bytes)?;
    Ok(Exported {
        bytes,
        input_shape,
        classes: head.file.classes.clone(),
        check_max_abs_diff,
    })
}

fn self_check(head: &FinetuneHead, bb: &Backbone, bytes: &[u8]) -> Result<f32, ExportError> {
    let p = bb.preprocess();
    let view = preprocess::view_image(
        &check_image(),
        p,
        tlearn_extract::augment::views(Augment::None)[0],
    )
    .map_err(ExportError::Backbone)?;
    let input = preprocess::to_tensor(&[view], p).map_err(ExportError::Backbone)?;
    let map = bb.encode(input.clone()).map_err(ExportError::Backbone)?;
    let want = head
        .predict_proba(&[map.as_slice()])
        .map_err(ExportError::Backbone)?;
    let got = run_in_tract(bytes, input)?;
    if got.len() != want.len() {
        return Err(ExportError::Verify(format!(
            "{} outputs, expected {}",
            got.len(),
            want.len()
        )));
    }
    let worst = got
        .iter()
        .zip(want.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    if got.iter().any(|v| !v.is_finite()) || worst > TOLERANCE {
        return Err(ExportError::Verify(format!(
            "worst |difference| {worst:e} > {TOLERANCE:e} (tract {got:?} vs tlearn {:?})",
            want.as_slice()
        )));
    }
    Ok(worst)
}
