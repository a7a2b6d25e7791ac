//! `tlearn show IMG --model M --layer L`: the layer's feature maps for one image as a PNG grid.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use tlearn_extract::backbone::Backbone;
use tlearn_extract::feature_maps::{feature_maps, rank_channels, write_grid_png};
use tlearn_extract::open::entry_for;
use tlearn_extract::pixels::Pixels;
use tlearn_extract::registry;
use tlearn_extract::spec::Pooling;

use super::encoder::CustomModelArgs;

#[derive(Args)]
#[command(after_help = "\
The picture shows the network's input view (after resize and centre crop) on the left, then the
strongest channels of the layer (highest mean activation first), each scaled to its own range
(viridis: dark = the channel's minimum, yellow = its maximum). The layer must be a spatial map
[1,C,H,W]; `tlearn layers MODEL` lists every node's shape.")]
pub struct ShowArgs {
    /// The image.
    pub image: PathBuf,
    /// Backbone: registry name or a path to an ONNX file.
    #[arg(long, default_value = "efficientnet-lite0")]
    pub model: String,
    /// Layer: a registry cut name or any ONNX node/tensor name with a spatial output.
    #[arg(long)]
    pub layer: String,
    /// How many channels to draw.
    #[arg(long, default_value_t = 64)]
    pub channels: usize,
    /// Output PNG (default: runs/show/<image>--<model>--<layer>.png).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Models directory (default: $TLEARN_MODELS, else <repo>/models).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    #[command(flatten)]
    pub custom: CustomModelArgs,
}

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

pub fn run(args: ShowArgs) -> Result<()> {
    if Pixels::parse(&args.model).is_some() {
        bail!(
            "{} is the raw-pixel baseline: it has no layers to show",
            args.model
        );
    }
    if let (base, Some(k)) = tlearn_extract::grid::split_grid(&args.layer)? {
        bail!(
            "--layer {}: show draws a layer's own maps; the grid (@{k}x{k}) pools them into \
             cells, so show the layer itself: --layer {base}",
            args.layer
        );
    }
    let bytes = tlearn_extract::listing::read_image_file(
        &args.image,
        tlearn_extract::listing::MAX_FILE_BYTES,
    )
    .with_context(|| format!("cannot read {}", args.image.display()))?;
    let dir = registry::models_dir(args.models_dir.as_deref());
    let entry = entry_for(
        &args.model,
        &dir,
        Some(&args.layer),
        &args.custom.own_model()?,
    )?;
    let bb = Backbone::load(&entry, &dir, Some(&args.layer), Pooling::Flatten)?;
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
            slug(&args.layer)
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
