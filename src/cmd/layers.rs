//! `tlearn layers MODEL`: every node of a backbone with its op and output shape, registry cut
//! points marked, so users can pick `--layer`; the weights' licence first (loudly when it forbids
//! commercial use).

use anyhow::Result;
use tlearn_extract::backbone::list_layers;
use tlearn_extract::open::entry_for;

use crate::flags::hiargs::Layers;

pub fn run(args: Layers) -> Result<()> {
    let entry = entry_for(&args.model, &args.models_dir, None, &args.own)?;
    let rows = list_layers(&entry, &args.models_dir)?;
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
        if args.cuts_only && r.cuts.is_empty() {
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
