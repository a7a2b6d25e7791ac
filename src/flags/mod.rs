//! The command line, in three steps, as ripgrep's `flags` module does it:
//!
//! 1. definitions and low-level arguments: the clap structs, one module per command
//!    ([`extract`], [`predict`], ...): every flag with its help, parsed as typed and checked
//!    for syntax only;
//! 2. high-level arguments ([`hiargs`]): the flags checked together and turned into the
//!    library's types (a `LayerSpec`, `ExtractorOptions`, `ModelOptions`, ...);
//! 3. `crate::cmd`: hands those to the library's objects (`Extractor`, `Model`, ...) and prints.

use clap::{Parser, Subcommand};

pub mod codes;
pub mod custom_model;
pub mod eval;
pub mod export;
pub mod extract;
pub mod fit;
pub mod hiargs;
pub mod layers;
pub mod models;
pub mod predict;
pub mod show;
pub mod train;

#[derive(Parser)]
#[command(name = "tlearn", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// List a backbone's nodes and output shapes (candidate cut points).
    Layers(layers::LayersArgs),
    /// The whole job on a folder DIR/<class>/<image>: extract, train, eval, report.
    Fit(fit::FitArgs),
    /// Extract CNN codes for a folder DIR/<class>/<image> into a feature cache.
    Extract(extract::ExtractArgs),
    /// Split a feature cache, select a head (and, given a cut set, the cut) by cross-validation, fit it and save it.
    Train(train::TrainArgs),
    /// Evaluate a saved head on its held-out images and write the report.
    Eval(eval::EvalArgs),
    /// Classify images with a saved head, or with the full ImageNet model (--imagenet).
    Predict(predict::PredictArgs),
    /// Write a saved head and its backbone as one ONNX file (preprocessed image in,
    /// class probabilities out).
    Export(export::ExportArgs),
    /// Draw a layer's feature maps for one image as a PNG grid.
    Show(show::ShowArgs),
    /// Write a feature cache (or each cut of a set) as Parquet codes, the format Spark, Ray,
    /// pyarrow and DuckDB read.
    ExportCodes(codes::ExportCodesArgs),
    /// Write a directory of Parquet codes (tlearn's, Spark's or Ray's) as a feature cache.
    ImportCodes(codes::ImportCodesArgs),
    /// Where the models are looked for and found, and every backbone of the registry: installed
    /// or not, its licence, its default cut.
    Models(models::ModelsArgs),
}

/// Parse `args` (the program name first), `--mean R G B` / `--std R G B` joined first
/// ([`custom_model::join_spaced_triples`]); clap prints help or a usage error and exits.
pub fn parse(args: impl IntoIterator<Item = std::ffi::OsString>) -> Cli {
    Cli::parse_from(custom_model::join_spaced_triples(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_std(args: &[&str]) -> (Vec<f32>, Vec<f32>, std::path::PathBuf) {
        let args = custom_model::join_spaced_triples(args.iter().map(Into::into));
        match Cli::try_parse_from(args).unwrap().command {
            Command::Extract(a) => (a.custom.mean, a.custom.std, a.dir),
            _ => unreachable!(),
        }
    }

    #[test]
    fn mean_and_std_parse_as_three_words_or_one() {
        let base = ["tlearn", "extract", "--out", "c"];
        let spaced = [
            &base[..],
            &["--mean", "0.5", "0.5", "0.5", "--std", "1", "2", "3", "D"],
        ];
        let (m, s, d) = mean_std(&spaced.concat());
        assert_eq!(
            (m, s, d.to_str().unwrap()),
            (vec![0.5; 3], vec![1., 2., 3.], "D")
        );
        // The one-word form, with the data set right after it (it must stay the positional).
        let commas = [&base[..], &["--mean", "0.5,0.5,0.5", "--std", "1,2,3", "D"]];
        let (m, s, d) = mean_std(&commas.concat());
        assert_eq!(
            (m, s, d.to_str().unwrap()),
            (vec![0.5; 3], vec![1., 2., 3.], "D")
        );
        let negative = [&base[..], &["--mean", "-1", "-2", "-3", "D"]];
        assert_eq!(mean_std(&negative.concat()).0, vec![-1., -2., -3.]);
        let (m, s, _) = mean_std(&[&base[..], &["D"]].concat());
        assert_eq!(
            (m, s),
            (vec![0.485, 0.456, 0.406], vec![0.229, 0.224, 0.225])
        );
        // Two numbers then the folder: not joined, refused by the 3-value check.
        let short = [&base[..], &["--mean", "0.5", "0.5", "D"]];
        let joined = custom_model::join_spaced_triples(short.concat().iter().map(Into::into));
        assert_eq!(joined.len(), short.concat().len());
    }

    fn hi(args: &[&str]) -> anyhow::Result<hiargs::HiArgs> {
        let args = custom_model::join_spaced_triples(args.iter().map(Into::into));
        hiargs::HiArgs::from_low_args(Cli::try_parse_from(args).unwrap().command)
    }

    #[test]
    fn checked_arguments_refuse_what_flags_allow_alone() {
        let e = hi(&["tlearn", "extract", "D", "--out", "c", "--keep-views"])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("--keep-views"), "{e}");
        let e = hi(&["tlearn", "extract", "D", "--out", "c", "--layer", "a,b,a"])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("requested twice"), "{e}");
        let e = hi(&["tlearn", "extract", "D", "--out", "c", "--mean", "1,2"])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("--mean needs 3 values"), "{e}");
        let e = hi(&["tlearn", "show", "x.png", "--layer", "s@2x3"])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("same K on both sides"), "{e}");
        match hi(&["tlearn", "extract", "D", "--out", "c", "--layer", "all"]).unwrap() {
            hiargs::HiArgs::Extract(x) => assert_eq!(x.layer, tlearn_cache::LayerSpec::All),
            _ => unreachable!(),
        }
    }
}
