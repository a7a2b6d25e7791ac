//! `tlearn show IMG --model M --layer L`: the layer's feature maps for one image as a PNG grid.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use tlearn_extract::feature_maps::{feature_maps, rank_channels, write_grid_png};
use tlearn_extract::open::open_backbone;
use tlearn_extract::pixels::Pixels;
use tlearn_extract::spec::Pooling;

use crate::flags::hiargs::Show;

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub fn run(args: Show) -> Result<()> {
    if Pixels::parse(&args.model).is_some() {
        bail!(
            "{} is the raw-pixel baseline: it has no layers to show",
            args.model
        );
    }
    let bytes = tlearn_extract::listing::read_image_file(
        &args.image,
        tlearn_extract::listing::MAX_FILE_BYTES,
    )
    .with_context(|| format!("cannot read {}", args.image.display()))?;
    let bb = open_backbone(
        &args.model,
        &args.models_dir,
        &args.layer,
        Pooling::Flatten,
        &args.own,
        None,
        &args.backbone,
    )?;
    let fm = feature_maps(&bb, &bytes, &args.image.display().to_string())?;
    let out = args.out.clone().unwrap_or_else(|| {
        let stem = args
            .image
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        PathBuf::from("runs/show").join(format!(
            "{}--{}--{}.png",
            slug(&stem),
            slug(bb.name()),
            slug(&args.layer.to_string())
        ))
    });
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    write_grid_png(&fm, args.channels, &out)?;
    let shape = fm.maps.shape();
    println!(
        "{} cut at {} ({}): {} channels of {}x{}; strongest first:",
        bb.name(),
        args.layer,
        bb.node(),
        shape[0],
        shape[1],
        shape[2]
    );
    for s in rank_channels(&fm.maps).iter().take(args.channels.min(8)) {
        println!(
            "  channel {:>5}  mean {:>9.4}  range [{:.4}, {:.4}]",
            s.channel, s.mean, s.min, s.max
        );
    }
    println!("wrote {}", out.display());
    Ok(())
}
