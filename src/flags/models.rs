//! `tlearn models`'s flags, as typed.

use std::path::PathBuf;

use clap::Args;

#[derive(Args)]
#[command(after_help = "\
Models are looked for in --models-dir, else $TLEARN_MODELS, else models/ in the working
directory or the nearest directory above it that has one (a checkout, where `make models` puts
them), else the user cache directory ($XDG_CACHE_HOME/tlearn/models, else
~/.cache/tlearn/models). The registry of backbones is built into the binary; a registry.toml in
the models directory replaces it.")]
pub struct ModelsArgs {
    /// Models directory (default: looked for as below).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
}
