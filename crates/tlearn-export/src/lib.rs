//! tlearn-export: a saved head and its backbone as ONE ONNX graph, image tensor in, class
//! probabilities out.
//!
//! The backbone's own ONNX graph is cut at the head's layer (only the nodes the cut tensor
//! depends on are kept), then the pooling (`cut`), the feature transform and the head
//! (`head_nodes`) are appended as ordinary ONNX operators, and the class names and the
//! preprocessing are written into the model's metadata. Encoding uses tract's prost-generated
//! ONNX types, so no second protobuf definition is involved.
//!
//! The graph's input is the *preprocessed* tensor (decode, resize, centre crop, normalisation
//! and channel order happen outside, as the registry entry's `preprocess` says, recorded in the
//! metadata): [`INPUT`] `float32 [N, 3, S, S]` (NCHW backbones) or `[N, S, S, 3]` (NHWC). The
//! output is [`OUTPUT`] `float32 [N, classes]`.
//!
//! Every export is checked before it is returned: the written bytes are loaded in tract and run
//! on a real preprocessed image, and the probabilities must equal `SavedHead::predict_proba` on
//! the backbone's codes for that image (the rule `tlearn predict` uses) within [`TOLERANCE`].

pub mod cut;
pub mod finetune;
pub mod graph;
pub mod head_nodes;

use std::path::Path;

use image::{Rgb, RgbImage};
use prost::Message;
use tlearn_cache::{Fingerprint, FingerprintDiff};
use tlearn_extract::augment::Augment;
use tlearn_extract::backbone::{self, Backbone, BackboneOptions};
use tlearn_extract::open::{backbone_for_fingerprint, FingerprintOpenError};
use tlearn_extract::pixels::Pixels;
use tlearn_extract::preprocess;
use tlearn_extract::spec::Layout;
use tlearn_heads::SavedHead;
use tract_onnx::pb;
use tract_onnx::prelude::*;

use crate::graph::{value_info, Builder, Dim};
pub use finetune::export_finetune;

/// The tensor type [`run_in_tract`] takes (tract's).
pub use tract_onnx::prelude::Tensor;

/// Name of the exported graph's input (the preprocessed image tensor).
pub const INPUT: &str = "image";
/// Name of the exported graph's output (class probabilities, rows sum to one).
pub const OUTPUT: &str = "probabilities";
/// Largest |probability difference| accepted between the exported graph (run in tract) and
/// tlearn's own prediction when an export checks itself.
pub const TOLERANCE: f32 = 1e-4;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(
        "the head was trained on the raw-pixel baseline '{0}'; only CNN backbones can be exported"
    )]
    NotABackbone(String),
    #[error(
        "the head reads a concatenation of cuts ({0}); export writes one cut of one backbone \
             only: retrain on a single cut (`tlearn train SET/<cut>`, or --pair-top 0) to export"
    )]
    Concatenation(String),
    #[error("the head's codes average {0} augmented views per image, which one ONNX input cannot reproduce; retrain on a cache extracted with --augment none to export it")]
    Augmented(String),
    #[error("finding the backbone '{backbone}' the head was trained on: {source:#}")]
    Entry {
        backbone: String,
        source: anyhow::Error,
    },
    #[error("loading the head's backbone: {0:#}")]
    Backbone(anyhow::Error),
    #[error("the backbone file {path} does not match the head: {diff}")]
    Mismatch { path: String, diff: FingerprintDiff },
    #[error("cannot build the graph: {0}")]
    Graph(String),
    #[error("the exported graph does not reproduce tlearn's probabilities: {0}")]
    Verify(String),
    #[error("tract cannot run the exported graph: {0:#}")]
    Tract(anyhow::Error),
    #[error("creating the directory {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(#[from] tlearn_cache::CacheError),
}

/// A written model and what it was checked against.
pub struct Exported {
    /// The ONNX file's bytes.
    pub bytes: Vec<u8>,
    /// Input shape; `None` = the symbolic batch axis `N`.
    pub input_shape: Vec<Option<usize>>,
    pub classes: Vec<String>,
    /// Worst |probability difference| between tract running `bytes` and `predict_proba` on the
    /// self-check image.
    pub check_max_abs_diff: f32,
}

/// Export `saved` with the backbone it was trained on: the registry entry its fingerprint
/// names in `models_dir`, or the ONNX file at `model` (a path, for a head trained on an own
/// file). The entry's preprocessing is replaced by the one the head records; the backbone
/// file's sha256, cut and pooling must give the head's fingerprint (compared by value), else
/// [`ExportError::Mismatch`] naming the fields that differ.
pub fn export(
    saved: &SavedHead,
    model: Option<&str>,
    models_dir: &Path,
) -> Result<Exported, ExportError> {
    let fp: &Fingerprint = saved.extractor();
    if saved.is_concatenation() {
        let names: Vec<String> = saved.parts().into_iter().map(|p| p.name).collect();
        return Err(ExportError::Concatenation(names.join(" + ")));
    }
    if Pixels::parse(&fp.backbone).is_some() {
        return Err(ExportError::NotABackbone(fp.backbone.clone()));
    }
    if fp.augment != Augment::None {
        return Err(ExportError::Augmented(
            serde_json::to_string(&fp.augment).unwrap_or_default(),
        ));
    }
    let (entry, bb) = backbone_for_fingerprint(
        fp,
        model,
        models_dir,
        "the head",
        &BackboneOptions::default(),
    )
    .map_err(|e| match e {
        FingerprintOpenError::Entry {
            backbone, source, ..
        } => ExportError::Entry { backbone, source },
        FingerprintOpenError::Load { source, .. } => ExportError::Backbone(source),
        FingerprintOpenError::Mismatch { path, diff, .. } => ExportError::Mismatch { path, diff },
    })?;

    let (mut proto, mut graph, node, input_shape) =
        cut_backbone_graph(&entry, models_dir, &fp.layer, &bb)?;
    {
        let mut b = Builder::new(&mut graph, "tlearn/");
        let codes = cut::pool_nodes(
            &mut b,
            &node,
            bb.output_shape(),
            fp.preprocess.layout,
            fp.pool,
            bb.cuts()[0].grid,
        )?;
        head_nodes::head_to_nodes(saved, &mut b, &codes, OUTPUT)?;
    }
    graph.output = vec![value_info(
        OUTPUT,
        &dims(&[input_shape[0], Some(saved.classes().len())]),
    )];
    graph.name = format!("tlearn {} on {}", saved.params.kind(), fp.backbone);
    proto.graph = Some(graph);
    proto.producer_name = "tlearn".into();
    proto.producer_version = env!("CARGO_PKG_VERSION").into();
    proto.doc_string = format!(
        "{} head on {} cut at {} ({} pooling). Input '{INPUT}': the preprocessed image tensor \
         (see metadata 'preprocess'). Output '{OUTPUT}': class probabilities (metadata 'classes').",
        saved.params.kind(),
        fp.backbone,
        fp.layer,
        fp.pool
    );
    proto.metadata_props = metadata(saved, fp, &input_shape);
    let bytes = proto.encode_to_vec();

    let check_max_abs_diff = self_check(saved, &bb, &bytes)?;
    Ok(Exported {
        bytes,
        input_shape,
        classes: saved.classes().to_vec(),
        check_max_abs_diff,
    })
}

impl Exported {
    /// Write the ONNX file atomically (temp file, fsync, rename: a reader never sees half a
    /// model), creating its directory.
    pub fn write(&self, path: &Path) -> Result<(), ExportError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| ExportError::CreateDir {
                path: parent.display().to_string(),
                source,
            })?;
        }
        Ok(tlearn_cache::write_atomic_bytes(path, &self.bytes)?)
    }
}

/// The backbone's ONNX graph cut at `layer` (`node`, its output), with the preprocessed image
/// as its input `INPUT`, typed `[batch, ...]` (the batch dimension as the file has it, else
/// symbolic); the model proto it came from keeps its other fields (opsets, metadata).
#[allow(clippy::type_complexity)]
pub(crate) fn cut_backbone_graph(
    entry: &tlearn_extract::registry::ModelEntry,
    models_dir: &Path,
    layer: &str,
    bb: &Backbone,
) -> Result<(pb::ModelProto, pb::GraphProto, String, Vec<Option<usize>>), ExportError> {
    let (mut proto, node) =
        backbone::proto_and_cut(entry, models_dir, layer).map_err(ExportError::Backbone)?;
    let mut graph = proto
        .graph
        .take()
        .ok_or_else(|| ExportError::Graph("the backbone has no graph".into()))?;
    let batch = graph
        .input
        .iter()
        .find(|i| !graph.initializer.iter().any(|t| t.name == i.name))
        .and_then(first_dim);
    cut::cut_graph(&mut graph, &node, INPUT)?;
    let input_shape: Vec<Option<usize>> = std::iter::once(batch)
        .chain(bb.input_shape()[1..].iter().map(|&d| Some(d)))
        .collect();
    for v in graph.input.iter_mut().filter(|v| v.name == INPUT) {
        *v = value_info(INPUT, &dims(&input_shape));
    }
    Ok((proto, graph, node, input_shape))
}

/// ONNX dimensions of a shape: a known size, or the symbol `N`.
pub(crate) fn dims(shape: &[Option<usize>]) -> Vec<Dim> {
    shape
        .iter()
        .map(|d| d.map(Dim::Fixed).unwrap_or_else(|| Dim::Symbol("N".into())))
        .collect()
}

pub(crate) fn first_dim(v: &pb::ValueInfoProto) -> Option<usize> {
    use pb::tensor_shape_proto::dimension::Value;
    let Some(pb::type_proto::Value::TensorType(t)) = v.r#type.as_ref()?.value.as_ref() else {
        return None;
    };
    match t.shape.as_ref()?.dim.first()?.value {
        Some(Value::DimValue(d)) if d > 0 => Some(d as usize),
        _ => None,
    }
}

fn metadata(
    saved: &SavedHead,
    fp: &Fingerprint,
    input_shape: &[Option<usize>],
) -> Vec<pb::StringStringEntryProto> {
    let shape: Vec<String> = input_shape
        .iter()
        .map(|d| d.map(|d| d.to_string()).unwrap_or_else(|| "N".into()))
        .collect();
    let layout = match fp.preprocess.layout {
        Layout::Nchw => "NCHW",
        Layout::Nhwc => "NHWC",
    };
    let entries = [
        (
            "classes",
            serde_json::to_string(saved.classes()).unwrap_or_default(),
        ),
        (
            "input",
            format!(
                "{INPUT}: float32 [{}] {layout}, preprocessed as 'preprocess' says: decode to RGB, \
                 resize the short side to round(crop*resize_ratio), centre-crop crop x crop, \
                 (v*value_scale - mean[c]) / std[c], channel order",
                shape.join(",")
            ),
        ),
        (
            "preprocess",
            serde_json::to_string(&fp.preprocess).unwrap_or_default(),
        ),
        (
            "output",
            format!("{OUTPUT}: float32 [N, {}]", saved.classes().len()),
        ),
        (
            "extractor",
            serde_json::to_string(saved.extractor()).unwrap_or_default(),
        ),
        (
            "head",
            serde_json::to_string(&saved.params).unwrap_or_default(),
        ),
    ];
    entries
        .into_iter()
        .map(|(k, v)| pb::StringStringEntryProto {
            key: k.into(),
            value: v,
        })
        .collect()
}

/// Run an exported model in tract on one input tensor `[1, ...]`: the probabilities row.
pub fn run_in_tract(bytes: &[u8], input: Tensor) -> Result<Vec<f32>, ExportError> {
    let run = || -> TractResult<Vec<f32>> {
        let model = onnx()
            .model_for_read(&mut &bytes[..])?
            .with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), input.shape()))?
            .into_optimized()?
            .into_runnable()?;
        let out = model.run(tvec!(input.into()))?;
        Ok(out[0]
            .to_plain_array_view::<f32>()?
            .iter()
            .copied()
            .collect())
    };
    run().map_err(ExportError::Tract)
}

/// A deterministic, textured test picture (gradients and stripes), not one flat colour, so
/// every channel of the backbone sees something.
pub(crate) fn check_image() -> RgbImage {
    RgbImage::from_fn(320, 256, |x, y| {
        Rgb([
            (x * 255 / 319) as u8,
            (y * 255 / 255) as u8,
            if (x / 16 + y / 16) % 2 == 0 { 200 } else { 40 },
        ])
    })
}

/// tract on the written bytes vs the backbone + `SavedHead::predict_proba` on one image.
fn self_check(saved: &SavedHead, bb: &Backbone, bytes: &[u8]) -> Result<f32, ExportError> {
    let p = bb.preprocess();
    let view = preprocess::view_image(
        &check_image(),
        p,
        tlearn_extract::augment::views(Augment::None)[0],
    )
    .map_err(ExportError::Backbone)?;
    let input = preprocess::to_tensor(&[view], p).map_err(ExportError::Backbone)?;
    let codes = bb.encode(input.clone()).map_err(ExportError::Backbone)?;
    let x = ndarray::Array2::from_shape_vec((1, codes.len()), codes)
        .map_err(|e| ExportError::Graph(e.to_string()))?;
    let want = saved
        .predict_proba(x.view())
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
