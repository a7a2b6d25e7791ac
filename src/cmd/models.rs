//! `tlearn models`: the models directory found and how, then every registry backbone with
//! whether its file is there, its default cut and its licence. `tlearn models fetch NAME...`
//! runs the checkout's converter into that directory (`registry::fetch_models`).

use anyhow::Result;
use tlearn_extract::registry::{self, Registry};

use crate::flags::hiargs::Models;

pub fn run(a: Models) -> Result<()> {
    let dir = &a.found.dir;
    if !a.fetch.is_empty() {
        let cwd = std::env::current_dir()?;
        println!("fetching {} into {}", a.fetch.join(", "), dir.display());
        return registry::fetch_models(&a.fetch, dir, &cwd);
    }
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
            "\nto fetch one: `tlearn models fetch NAME` run in a checkout (the converters are \
             Python, run in its venv; `make models MODELS=NAME` there does the same), or copy \
             the .onnx files (with manifest.json) into {}",
            dir.display()
        );
    }
    Ok(())
}
