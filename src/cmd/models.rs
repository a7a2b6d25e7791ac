//! `tlearn models`: the models directory found and how, then every registry backbone with
//! whether its file is there, its default cut and its licence.

use anyhow::Result;
use tlearn_extract::registry::Registry;

use crate::flags::hiargs::Models;

pub fn run(a: Models) -> Result<()> {
    let dir = &a.found.dir;
    println!("models directory: {}", dir.display());
    println!("looked for in: {}", a.found.searched.join(", then "));
    let reg = Registry::load(dir)?;
    let w = reg
        .names()
        .iter()
        .map(|n| n.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "\n{:<w$}  {:<9}  {:<14}  {:>5}  licence",
        "name", "installed", "default cut", "dim"
    );
    let mut missing = Vec::new();
    for m in &reg.models {
        let there = m.path(dir).is_file();
        if !there {
            missing.push(m.name.as_str());
        }
        let dim = m.cut(&m.default_cut).map(|c| c.dim).unwrap_or(0);
        println!(
            "{:<w$}  {:<9}  {:<14}  {:>5}  {}",
            m.name,
            if there { "yes" } else { "no" },
            m.default_cut,
            dim,
            m.license
        );
    }
    if !missing.is_empty() {
        println!(
            "\nto fetch one: `make models MODELS=NAME` in a checkout (the converters are Python, \
             run in its venv), then use that checkout's models/ or copy the .onnx files (with \
             manifest.json) into {}",
            dir.display()
        );
    }
    Ok(())
}
