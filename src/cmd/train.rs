use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use tlearn_heads::transform::TransformKind;
use tlearn_heads::{report, Engine, FeatureCache, HeadKind, TrainConfig};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum HeadChoice {
    /// Cross-validate all heads and keep the best (ties go to the simpler model).
    Auto,
    /// Multinomial logistic regression (L-BFGS); softmax probabilities.
    Logistic,
    /// One-vs-rest linear SVM (dual coordinate descent, squared hinge); calibrated probabilities.
    LinearSvm,
    /// One-vs-rest RBF-kernel SVM (SMO on a dense kernel); for small sets (<= 12,000 rows).
    RbfSvm,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum EngineChoice {
    /// tlearn's own solvers (L-BFGS, SMO on a shared kernel matrix): faster, see the README.
    Tlearn,
    /// linfa-logistic (multinomial) and linfa-svm (one-vs-rest) for logistic regression and the
    /// RBF SVM; the linear SVM always uses tlearn's dual coordinate descent.
    Linfa,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TransformChoice {
    /// Cross-validate standard, sqrt-standard, standard-l2 and pca-whiten with every head; keep
    /// the one CV picks.
    Auto,
    /// Standardise each feature with training-set mean and standard deviation.
    Standard,
    /// Signed square root sign(x)·|x|^0.5 (power normalisation), then standardise.
    SqrtStandard,
    /// Standardise, then divide each vector by its L2 norm.
    StandardL2,
    /// Standardise, then PCA whitening (components keeping 99% of the variance, or --pca N).
    PcaWhiten,
    /// Divide each vector by its L2 norm.
    L2,
    /// Leave vectors as they are.
    None,
}

#[derive(Args)]
pub struct TrainArgs {
    /// Feature cache directory (made by `tlearn extract`).
    pub cache: PathBuf,
    /// Head to train.
    #[arg(long, value_enum, default_value = "auto")]
    pub head: HeadChoice,
    /// Solvers of logistic regression and the RBF SVM.
    #[arg(long, value_enum, default_value = "tlearn")]
    pub engine: EngineChoice,
    /// Seed for the split, the folds and the solvers.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Fraction of each class held out for the final evaluation.
    #[arg(long, default_value_t = 0.2)]
    pub test_size: f64,
    /// Number of cross-validation folds on the training part.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Comma-separated values of C (inverse regularisation) to try.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.001,0.01,0.1,1,10,100,1000"
    )]
    pub c_grid: Vec<f64>,
    /// Comma-separated values of gamma for the RBF SVM [default: 0.01,0.1,1,10 times
    /// scikit-learn's gamma="scale", 1/(d·variance) of each transform's output on the training
    /// part, i.e. about 1/d for standardised codes].
    #[arg(long, value_delimiter = ',')]
    pub gamma_grid: Option<Vec<f64>>,
    /// When CV picks a C (or gamma) at an edge of its grid, add the next log-step beyond it and
    /// cross-validate again, up to this many times (0: keep the grid as given).
    #[arg(long, default_value_t = 1, value_name = "STEPS")]
    pub grid_extension: usize,
    /// Early stopping along C: stop trying larger C for a transform/head/gamma after this many
    /// consecutive C values (ascending) scoring more than 0.005 below that path's best CV
    /// accuracy; 0 tries every C.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub c_patience: usize,
    /// Reduce to N principal components (fitted on training folds only); with pca-whiten, the
    /// number of whitened components.
    #[arg(long, value_name = "N")]
    pub pca: Option<usize>,
    /// Feature transform before the head (fitted on training folds only).
    #[arg(long, value_enum, default_value = "auto")]
    pub transform: TransformChoice,
    /// Stopping tolerance of the linear SVM solver.
    #[arg(long, default_value_t = 0.01)]
    pub linear_tol: f64,
    /// Output directory: head.json (the model) and cv.json (CV curve, split and folds).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let heads = match args.head {
        HeadChoice::Auto => HeadKind::ALL.to_vec(),
        HeadChoice::Logistic => vec![HeadKind::Logistic],
        HeadChoice::LinearSvm => vec![HeadKind::LinearSvm],
        HeadChoice::RbfSvm => vec![HeadKind::RbfSvm],
    };
    let transforms = match args.transform {
        TransformChoice::Auto => TransformKind::AUTO.to_vec(),
        TransformChoice::Standard => vec![TransformKind::Standard],
        TransformChoice::SqrtStandard => vec![TransformKind::SqrtStandard],
        TransformChoice::StandardL2 => vec![TransformKind::StandardL2],
        TransformChoice::PcaWhiten => vec![TransformKind::PcaWhiten],
        TransformChoice::L2 => vec![TransformKind::L2],
        TransformChoice::None => vec![TransformKind::None],
    };
    if !(args.test_size > 0.0 && args.test_size < 1.0) {
        bail!("--test-size must be strictly between 0 and 1");
    }
    let cache = FeatureCache::load(&args.cache)?;
    let mut heads = heads;
    if matches!(args.head, HeadChoice::Auto) {
        let n_train = ((1.0 - args.test_size) * cache.rows() as f64) as usize;
        let (auto, note) = tlearn_heads::select::auto_heads(n_train);
        heads = auto;
        if let Some(note) = note {
            eprintln!("note: {note}");
        }
    }
    let cfg = TrainConfig {
        heads,
        seed: args.seed,
        test_size: args.test_size,
        folds: args.folds,
        c_grid: args.c_grid,
        gamma_grid: args.gamma_grid,
        transforms,
        pca: args.pca,
        grid_extension: args.grid_extension,
        c_patience: args.c_patience,
        linear_tol: args.linear_tol,
        engine: match args.engine {
            EngineChoice::Tlearn => Engine::Tlearn,
            EngineChoice::Linfa => Engine::Linfa,
        },
    };
    println!(
        "cache {}: {} rows, dim {}, {} classes",
        args.cache.display(),
        cache.rows(),
        cache.meta.dim,
        cache.classes().len()
    );
    let out = tlearn_heads::train(&cache, &cfg, |r| {
        eprintln!(
            "  cv {} [{}]: {} ({:.2} s)",
            r.params,
            r.transform,
            match &r.error {
                None if r.skipped => "skipped (C path stopped)".into(),
                None => format!("{:.4}", r.mean_accuracy),
                Some(e) => format!("failed: {e}"),
            },
            r.seconds
        )
    })?;
    println!(
        "split: {} training rows ({} folds), {} held out",
        out.cv.split.train_rows.len(),
        args.folds,
        out.cv.split.test_rows.len()
    );
    print!("{}", report::cv_table(&out.cv));
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let head_path = args.out.join("head.json");
    out.saved.save(&head_path)?;
    let cv_path = args.out.join("cv.json");
    tlearn_cache::write_atomic_bytes(&cv_path, serde_json::to_string_pretty(&out.cv)?.as_bytes())?;
    println!("wrote {} and {}", head_path.display(), cv_path.display());
    Ok(())
}
