//! `tlearn fit`'s flags, as typed.

use std::path::PathBuf;

use clap::Args;
use tlearn_heads::train::HeadChoice;

#[derive(Args)]
#[command(after_help = "\
fit runs extract, train and eval with the defaults of `make demo`: every named cut of --model
(`--layer all`) and --model2's default cut, each cached under OUT/cache/ (a repeated or
interrupted run resumes there), the selection over cuts, backbones and heads by cross-validation
on the training part, and the held-out evaluation. OUT receives head.json, cv.json, cv-cuts.png,
report.json, confusion.png and report.html. The separate commands give every other control.")]
pub struct FitArgs {
    /// Dataset folder laid out as DIR/<class>/<image>.
    pub dir: PathBuf,
    /// Output directory: the caches, the head, the CV results and the report.
    #[arg(long)]
    pub out: PathBuf,
    /// First backbone (registry name or ONNX path; an ONNX file needs --layer).
    #[arg(long, default_value = "efficientnet-lite0")]
    pub model: String,
    /// Cut(s) of the first backbone, as `extract --layer` takes them.
    #[arg(long, default_value = "all")]
    pub layer: String,
    /// Second backbone, whose codes compete alone and joined to the first's; `none` for the
    /// first alone.
    #[arg(long, default_value = "mobilenetv2")]
    pub model2: String,
    /// Cut(s) of the second backbone [default: its default cut].
    #[arg(long)]
    pub layer2: Option<String>,
    /// Head to train.
    #[arg(long, default_value = "auto", value_parser = crate::flags::train::head_parser())]
    pub head: HeadChoice,
    /// Seed for the split, the folds and the solvers.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Fraction of each class held out for the final evaluation.
    #[arg(long, default_value_t = 0.2)]
    pub test_size: f64,
    /// Number of cross-validation folds on the training part.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Worker threads of the extraction (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Models directory (default: as `tlearn models --help` says).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print every CV candidate and the whole grid (default: the best few and the chosen one).
    #[arg(short, long)]
    pub verbose: bool,
}
