//! `tlearn models`'s flags, as typed.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Args)]
#[command(after_help = "\
Models are looked for in --models-dir, else $TLEARN_MODELS, else models/ in the working
directory or the nearest directory above it that has one (a checkout, where `make models` puts
them), else the user cache directory ($XDG_CACHE_HOME/tlearn/models, else
~/.cache/tlearn/models). The registry of backbones is built into the binary; a registry.toml in
the models directory replaces it.

`tlearn models fetch NAME...` fetches and converts backbones into that directory with the
converter of the checkout it is run in (models/fetch.py in the project's .venv); elsewhere it
says what to run.")]
pub struct ModelsArgs {
    /// Models directory (default: looked for as below).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub action: Option<ModelsAction>,
}

#[derive(Subcommand)]
pub enum ModelsAction {
    /// Fetch and convert registry backbones into the models directory.
    Fetch {
        /// Registry names (as `tlearn models` lists them).
        #[arg(required = true)]
        names: Vec<String>,
    },
}
