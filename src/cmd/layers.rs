//! `tlearn layers MODEL`: every node of a backbone with its op and output shape, registry cut
//! points marked, so users can pick `--layer`; the weights' licence first (loudly when it forbids
//! commercial use).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use tlearn_extract::backbone::list_layers;
use tlearn_extract::open::{entry_for, OwnModel};
use tlearn_extract::registry;
use tlearn_extract::spec::Layout;

#[derive(Args)]
pub struct LayersArgs {
    /// Registry model name, or a path to any .onnx file (bring your own; see --crop/--nhwc).
    pub model: String,
    /// Models directory (default: $TLEARN_MODELS, else <repo>/models).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// Input side for a bring-your-own .onnx file.
    #[arg(long, default_value_t = 224)]
    pub crop: u32,
    /// The bring-your-own .onnx file takes NHWC input.
    #[arg(long)]
    pub nhwc: bool,
    /// Only the registry cut points.
    #[arg(long)]
    pub cuts: bool,
}

pub fn run(args: LayersArgs) -> Result<()> {
    let dir = registry::models_dir(args.models_dir.as_deref());
    let own = OwnModel {
        crop: args.crop,
        layout: if args.nhwc {
            Layout::Nhwc
        } else {
            Layout::Nchw
        },
        ..OwnModel::default()
    };
    let entry = entry_for(&args.model, &dir, None, &own)?;
    let rows = list_layers(&entry, &dir)?;
    let shape = |s: &Option<Vec<usize>>| match s {
        Some(s) => format!("{s:?}"),
        None => "?".into(),
    };
    let w_name = rows
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(4)
        .clamp(4, 48);
    let w_op = rows.iter().map(|r| r.op.len()).max().unwrap_or(2).max(2);
    println!(
        "{} ({}), input {:?} {}x{}",
        entry.name,
        entry.description,
        entry.preprocess.layout,
        entry.preprocess.crop,
        entry.preprocess.crop
    );
    if !entry.license.is_empty() {
        println!("licence: {}", entry.license);
    }
    if let Some(warning) = entry.licence_warning() {
        let bar = "!".repeat(warning.len().min(100));
        println!("{bar}\n{warning}\n{bar}");
    }
    println!(
        "{:<w_name$}  {:<w_op$}  {:<20}  cut",
        "node", "op", "output shape"
    );
    let mut shown = 0;
    for r in &rows {
        if args.cuts && r.cuts.is_empty() {
            continue;
        }
        let mark = if r.cuts.is_empty() {
            String::new()
        } else {
            let mut m = format!("<- {}", r.cuts.join(", "));
            if r.cuts.contains(&entry.default_cut) {
                m.push_str(" (default)");
            }
            m
        };
        println!(
            "{:<w_name$}  {:<w_op$}  {:<20}  {mark}",
            r.name,
            r.op,
            shape(&r.shape)
        );
        shown += 1;
    }
    let unresolved: Vec<&str> = entry
        .cuts
        .iter()
        .filter(|c| !rows.iter().any(|r| r.cuts.contains(&c.name)))
        .map(|c| c.name.as_str())
        .collect();
    println!(
        "{shown} of {} tensors shown; pass a node name or cut name as --layer (spatial outputs are \
         reduced by --pool avg|max|flatten)",
        rows.len()
    );
    if !unresolved.is_empty() {
        println!(
            "registry cuts not found in this graph: {}",
            unresolved.join(", ")
        );
    }
    Ok(())
}
