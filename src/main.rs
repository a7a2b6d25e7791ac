//! `tlearn`: transfer learning for image classification, the CS231n "small data set" way.
//! A pretrained CNN cut before its classifier turns images into CNN codes; a classical head
//! (linear SVM, RBF SVM, logistic regression) is trained on them and judged on held-out images.

use clap::{Parser, Subcommand};

mod cmd;

/// mimalloc instead of glibc's malloc. Extraction threads allocate and free megabytes of
/// activations per image while the vectors kept for the cache stay: glibc's main heap then
/// fragmented in some runs, growing without bound (`malloc_stats`: 1.1 GB held, 28 MB in use,
/// after 3,100 of 10,000 MNIST images on 4 threads; one CI run reached 24 GB and was killed by
/// the kernel). Which runs did was down to thread timing: 2 of 10 runs here.
/// mimalloc's v2 line without transparent huge pages (`features = ["v2", "no_thp"]`): peak RSS
/// of `extract` on the 216 Tux Paint PNGs, 2 threads, was 152 MiB with the crate's default
/// (v3, huge pages), 134 with v3 without them, 112 with v2 without them; glibc 95.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(unix)]
mod fatal_signal;

#[derive(Parser)]
#[command(name = "tlearn", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List a backbone's nodes and output shapes (candidate cut points).
    Layers(cmd::layers::LayersArgs),
    /// Extract CNN codes for a folder DIR/<class>/<image> into a feature cache.
    Extract(cmd::extract::ExtractArgs),
    /// Split a feature cache, select a head (and, given a cut set, the cut) by cross-validation, fit it and save it.
    Train(cmd::train::TrainArgs),
    /// Evaluate a saved head on its held-out images and write the report.
    Eval(cmd::eval::EvalArgs),
    /// Classify images with a saved head, or with the full ImageNet model (--imagenet).
    Predict(cmd::predict::PredictArgs),
    /// Write a saved head and its backbone as one ONNX file (preprocessed image in,
    /// class probabilities out).
    Export(cmd::export::ExportArgs),
    /// Draw a layer's feature maps for one image as a PNG grid.
    Show(cmd::show::ShowArgs),
}

fn main() {
    // Die quietly on a closed pipe (`tlearn eval ... | head`) like any Unix tool, instead of
    // panicking in println!.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    #[cfg(unix)]
    fatal_signal::install();
    let cli = Cli::parse_from(cmd::encoder::join_spaced_triples(std::env::args_os()));
    let result = match cli.command {
        Command::Layers(a) => cmd::layers::run(a),
        Command::Extract(a) => cmd::extract::run(a),
        Command::Train(a) => cmd::train::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Predict(a) => cmd::predict::run(a),
        Command::Export(a) => cmd::export::run(a),
        Command::Show(a) => cmd::show::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_std(args: &[&str]) -> (Vec<f32>, Vec<f32>, std::path::PathBuf) {
        let args = cmd::encoder::join_spaced_triples(args.iter().map(Into::into));
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
        let joined = cmd::encoder::join_spaced_triples(short.concat().iter().map(Into::into));
        assert_eq!(joined.len(), short.concat().len());
    }
}
