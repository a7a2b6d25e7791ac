//! The saved fine-tuned head: `head.json` (format `tlearn-head`, `params.kind = "finetune"`)
//! and a numpy-readable sidecar `<head>.finetune.npz` beside it with the weights.
//!
//! `head.json` fields: `format`, `version`, `tlearn_version`, `created`, `classes`,
//! `extractor` (the spatial cache's fingerprint: backbone, sha256, cut layer, `pool: flatten`),
//! `dim` (C·H·W of a cached row), `params` (`{kind: "finetune", ...FinetuneParams}`), `block`
//! (`{backbone, sha256, cut, input: [C,H,W], features, ops: [{name, op, inputs, weight?,
//! group?, pads?, stride?}]}`: the layers after the cut, their weight shapes in ONNX layout;
//! `stride` only where it is not 1), `sidecar`
//! (`{file, sha256}`), `fit` (`{best_epoch, train_rows, val_rows, history}`), `cv` and `split`
//! as in every head.
//!
//! The sidecar (`np.load(...)`) holds `<op>.weight` (ONNX `[Cout, Cin/group, K, K]`) and
//! `<op>.bias` for every conv of `block.ops`, `classifier.weight` `[classes, features]` and
//! `classifier.bias` `[classes]`, float32. Loading checks the sidecar's sha256, every array's
//! presence, shape and finiteness against `block` and `classes`, and refuses a mismatch naming
//! the file and the field. [`FinetuneHead::check_backbone`] then compares `block` with the
//! layers the backbone's ONNX file has after the cut (another backbone or cut is refused).

use std::collections::HashMap;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use ndarray::{Array1, Array2, Array4, ArrayD, Ix1, Ix2, Ix4};
use ndarray_npy::{NpzReader, NpzWriter};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tlearn_cache::Fingerprint;
use tlearn_heads::model_file::{CvSummary, SplitRecord, FORMAT, VERSION};

use crate::block::{Op, OpKind, TopBlock};
use crate::train::{Epoch, FinetuneParams};

/// `params.kind` of a fine-tuned head.
pub const KIND: &str = "finetune";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub kind: String,
    #[serde(flatten)]
    pub finetune: FinetuneParams,
}

/// One layer of `block.ops` as recorded in head.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpRecord {
    pub name: String,
    /// `conv`, `relu6`, `relu` or `add`.
    pub op: String,
    pub inputs: Vec<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<[usize; 4]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pads: Option<[usize; 4]>,
    /// A conv's stride both ways; absent: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockRecord {
    pub backbone: String,
    pub sha256: String,
    pub cut: String,
    pub input: [usize; 3],
    pub features: usize,
    pub ops: Vec<OpRecord>,
}

impl BlockRecord {
    pub fn of(b: &TopBlock) -> BlockRecord {
        BlockRecord {
            backbone: b.backbone.clone(),
            sha256: b.sha256.clone(),
            cut: b.cut.clone(),
            input: b.input,
            features: b.features(),
            ops: b
                .ops
                .iter()
                .map(|o| {
                    let (op, weight, group, pads, stride) = match &o.kind {
                        OpKind::Conv {
                            w,
                            group,
                            pads,
                            stride,
                            ..
                        } => {
                            let s = w.shape();
                            (
                                "conv",
                                Some([s[0], s[1], s[2], s[3]]),
                                Some(*group),
                                Some(*pads),
                                (*stride != 1).then_some(*stride),
                            )
                        }
                        OpKind::Relu6 => ("relu6", None, None, None, None),
                        OpKind::Relu => ("relu", None, None, None, None),
                        OpKind::Add => ("add", None, None, None, None),
                    };
                    OpRecord {
                        name: o.name.clone(),
                        op: op.into(),
                        inputs: o.inputs.clone(),
                        weight,
                        group,
                        pads,
                        stride,
                    }
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SidecarRecord {
    pub file: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitRecord {
    pub best_epoch: usize,
    pub train_rows: usize,
    pub val_rows: usize,
    pub seconds: f64,
    pub history: Vec<Epoch>,
}

/// head.json of a fine-tuned head (the weights live in the sidecar).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadFile {
    pub format: String,
    pub version: u32,
    pub tlearn_version: String,
    pub created: u64,
    pub classes: Vec<String>,
    pub extractor: Fingerprint,
    pub dim: usize,
    pub params: Params,
    pub block: BlockRecord,
    pub sidecar: SidecarRecord,
    pub fit: FitRecord,
    pub cv: CvSummary,
    pub split: SplitRecord,
}

/// A loaded fine-tuned head: the file and its weights.
#[derive(Debug, Clone)]
pub struct FinetuneHead {
    pub file: HeadFile,
    pub block: TopBlock,
    pub cls_w: Array2<f32>,
    pub cls_b: Array1<f32>,
}

/// True when the head.json at `path` is a fine-tuned head (`params.kind == "finetune"`).
pub fn is_finetune(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v.pointer("/params/kind").and_then(|k| k.as_str()) == Some(KIND))
}

/// The sidecar's path for a head.json path.
pub fn sidecar_path(head: &Path) -> PathBuf {
    let name = head
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "head".into());
    head.with_file_name(format!("{name}.finetune.npz"))
}

fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

impl FinetuneHead {
    /// Write the sidecar (atomically), then head.json (atomically, last).
    pub fn save(&mut self, path: &Path) -> Result<()> {
        let side = sidecar_path(path);
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut npz = NpzWriter::new(&mut buf);
            for op in &self.block.ops {
                if let OpKind::Conv { w, b, .. } = &op.kind {
                    npz.add_array(format!("{}.weight", op.name), w)?;
                    npz.add_array(format!("{}.bias", op.name), b)?;
                }
            }
            npz.add_array("classifier.weight", &self.cls_w)?;
            npz.add_array("classifier.bias", &self.cls_b)?;
            npz.finish()?;
        }
        let bytes = buf.into_inner();
        tlearn_cache::write_atomic_bytes(&side, &bytes)?;
        self.file.sidecar = SidecarRecord {
            file: side.file_name().unwrap().to_string_lossy().into_owned(),
            sha256: hex::encode(Sha256::digest(&bytes)),
        };
        self.file.block = BlockRecord::of(&self.block);
        let text = serde_json::to_string_pretty(&self.file)?;
        tlearn_cache::write_atomic_bytes(path, text.as_bytes())?;
        Ok(())
    }

    /// Read head.json and its sidecar, checking every shape (errors name the file and field).
    pub fn load(path: &Path) -> Result<FinetuneHead> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading saved head {}", path.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not valid JSON (truncated or corrupted model file?)",
                path.display()
            )
        })?;
        if v.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            bail!(
                "{} is not a tlearn head (format {:?})",
                path.display(),
                v.get("format")
            );
        }
        let file: HeadFile = serde_path_to_error::deserialize(v).map_err(|e| {
            anyhow!(
                "{}: malformed fine-tuned head: field `{}`: {}",
                path.display(),
                e.path(),
                e.inner()
            )
        })?;
        if file.version != VERSION {
            bail!(
                "{}: field `version`: {} (this tlearn reads fine-tuned heads of version {VERSION})",
                path.display(),
                file.version
            );
        }
        if file.params.kind != KIND {
            bail!(
                "{}: field `params.kind`: {:?}, expected {KIND:?}",
                path.display(),
                file.params.kind
            );
        }
        file.params
            .finetune
            .check()
            .map_err(|e| anyhow!("{}: field `params`: {e}", path.display()))?;
        let k = file.classes.len();
        if k < 2 {
            bail!(
                "{}: field `classes`: {k} classes recorded; need at least 2",
                path.display()
            );
        }
        let [c, h, w] = file.block.input;
        if c * h * w != file.dim {
            bail!(
                "{}: field `block.input`: {:?} holds {} values but `dim` is {}",
                path.display(),
                file.block.input,
                c * h * w,
                file.dim
            );
        }
        let side = path.with_file_name(&file.sidecar.file);
        if file.sidecar.file.contains(['/', '\\']) {
            bail!(
                "{}: field `sidecar.file`: {:?} must be a file name beside head.json",
                path.display(),
                file.sidecar.file
            );
        }
        let sha = sha256_file(&side)
            .with_context(|| format!("{}: field `sidecar.file`", path.display()))?;
        if sha != file.sidecar.sha256 {
            bail!(
                "{}: sha256 {sha} differs from head.json's `sidecar.sha256` {} (the weights were replaced or \
                 corrupted; retrain, or restore the sidecar written with this head.json)",
                side.display(),
                file.sidecar.sha256
            );
        }
        let mut npz = NpzReader::new(
            std::fs::File::open(&side).with_context(|| format!("opening {}", side.display()))?,
        )
        .map_err(|e| anyhow!("{}: not a numpy .npz archive: {e}", side.display()))?;
        let ops = read_ops(&mut npz, &file.block, &side)?;
        let block = TopBlock {
            backbone: file.block.backbone.clone(),
            sha256: file.block.sha256.clone(),
            cut: file.block.cut.clone(),
            input: file.block.input,
            ops,
        };
        let shapes = block
            .shapes()
            .map_err(|e| anyhow!("{}: field `block.ops`: {e}", path.display()))?;
        let f = shapes.last().map(|s| s[0]).unwrap_or(0);
        if f != file.block.features {
            bail!(
                "{}: field `block.features`: {} but the ops give {f}",
                path.display(),
                file.block.features
            );
        }
        let cls_w: Array2<f32> = array(&mut npz, "classifier.weight", &[k, f], &side)?;
        let cls_b: Array1<f32> = array(&mut npz, "classifier.bias", &[k], &side)?;
        Ok(FinetuneHead {
            file,
            block,
            cls_w,
            cls_b,
        })
    }

    /// Refuse a head whose block is not the layers `actual` (read from the backbone's ONNX file
    /// after the head's cut) in backbone, file, cut and every layer's shape.
    pub fn check_backbone(&self, actual: &TopBlock, head_path: &Path) -> Result<()> {
        let want = BlockRecord::of(actual);
        let have = &self.file.block;
        let diff = |field: &str, a: String, b: String| -> Result<()> {
            if a != b {
                bail!(
                    "{}: field `block.{field}` is {a} but the backbone's layers after cut '{}' give {b}: \
                     this head's block belongs to another backbone or cut",
                    head_path.display(),
                    actual.cut
                );
            }
            Ok(())
        };
        diff("backbone", have.backbone.clone(), want.backbone.clone())?;
        diff("sha256", have.sha256.clone(), want.sha256.clone())?;
        diff("cut", have.cut.clone(), want.cut.clone())?;
        diff(
            "input",
            format!("{:?}", have.input),
            format!("{:?}", want.input),
        )?;
        diff(
            "ops",
            format!("{} layers", have.ops.len()),
            format!("{} layers", want.ops.len()),
        )?;
        for (i, (a, b)) in have.ops.iter().zip(&want.ops).enumerate() {
            diff(&format!("ops[{i}]"), format!("{a:?}"), format!("{b:?}"))?;
        }
        Ok(())
    }

    /// Logits `[N, K]` for cached cut maps.
    pub fn decision(&self, rows: &[&[f32]]) -> Result<Array2<f32>> {
        crate::train::decision(&self.block, &self.cls_w, &self.cls_b, rows)
    }

    /// Class probabilities (softmax of the logits; rows sum to one).
    pub fn predict_proba(&self, rows: &[&[f32]]) -> Result<Array2<f32>> {
        for (i, r) in rows.iter().enumerate() {
            if r.len() != self.file.dim {
                bail!(
                    "cut map {i} has {} values; this head expects {}",
                    r.len(),
                    self.file.dim
                );
            }
            if r.iter().any(|v| !v.is_finite()) {
                bail!("cut map {i} contains NaN or infinite values");
            }
        }
        let mut s = self.decision(rows)?;
        for mut row in s.rows_mut() {
            let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            row.mapv_inplace(|v| (v - m).exp());
            let z: f32 = row.sum();
            row.mapv_inplace(|v| v / z);
        }
        Ok(s)
    }
}

fn array<D: ndarray::Dimension, R: Read + Seek>(
    npz: &mut NpzReader<R>,
    name: &str,
    shape: &[usize],
    side: &Path,
) -> Result<ndarray::Array<f32, D>> {
    let a: ArrayD<f32> = npz
        .by_name(name)
        .or_else(|_| npz.by_name(&format!("{name}.npy")))
        .map_err(|e| anyhow!("{}: array `{name}`: {e}", side.display()))?;
    if a.shape() != shape {
        bail!(
            "{}: array `{name}` has shape {:?}, head.json's block expects {shape:?}",
            side.display(),
            a.shape()
        );
    }
    if a.iter().any(|v| !v.is_finite()) {
        bail!(
            "{}: array `{name}` holds NaN or infinite values",
            side.display()
        );
    }
    a.into_dimensionality::<D>()
        .map_err(|e| anyhow!("{}: array `{name}`: {e}", side.display()))
}

fn read_ops<R: Read + Seek>(
    npz: &mut NpzReader<R>,
    rec: &BlockRecord,
    side: &Path,
) -> Result<Vec<Op>> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut ops = Vec::with_capacity(rec.ops.len());
    for (i, o) in rec.ops.iter().enumerate() {
        if seen.insert(&o.name, i).is_some() {
            bail!(
                "head.json field `block.ops[{i}].name`: {:?} appears twice",
                o.name
            );
        }
        if o.inputs.is_empty() || o.inputs.iter().any(|&v| v > i) {
            bail!(
                "head.json field `block.ops[{i}].inputs`: {:?} (values 0..={i} exist)",
                o.inputs
            );
        }
        let kind = match o.op.as_str() {
            "conv" => {
                let (Some(ws), Some(group), Some(pads)) = (o.weight, o.group, o.pads) else {
                    bail!("head.json field `block.ops[{i}]`: a conv needs `weight`, `group` and `pads`");
                };
                let w: Array4<f32> =
                    array::<Ix4, _>(npz, &format!("{}.weight", o.name), &ws, side)?;
                let b: Array1<f32> =
                    array::<Ix1, _>(npz, &format!("{}.bias", o.name), &[ws[0]], side)?;
                OpKind::Conv {
                    w,
                    b,
                    group,
                    pads,
                    stride: o.stride.unwrap_or(1),
                }
            }
            "relu6" => OpKind::Relu6,
            "relu" => OpKind::Relu,
            "add" if o.inputs.len() == 2 => OpKind::Add,
            other => {
                bail!("head.json field `block.ops[{i}].op`: {other:?} (conv, relu6, relu, add)")
            }
        };
        ops.push(Op {
            name: o.name.clone(),
            kind,
            inputs: o.inputs.clone(),
        });
    }
    let _ = Ix2;
    Ok(ops)
}
