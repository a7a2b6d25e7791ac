use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use tlearn_extract::registry::{self, Registry};
use tlearn_heads::cuts::{self, CutConfig, CutInput, CvFile, Event};
use tlearn_heads::transform::{BlockRule, TransformKind};
use tlearn_heads::view_rows::TrainViews;
use tlearn_heads::{report, report_cuts, Engine, FeatureCache, HeadKind, TrainConfig};

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
    /// Fine-tune the backbone's layers after the cut and a new classifier on a spatial cache
    /// (`extract --layer stage6 --pool flatten`); options --ft-*.
    Finetune,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum EngineChoice {
    /// tlearn's own solvers (L-BFGS, SMO on a shared kernel matrix): faster, see bench/RESULTS.md.
    Tlearn,
    /// linfa-logistic (multinomial) and linfa-svm (one-vs-rest) for logistic regression and the
    /// RBF SVM; the linear SVM always uses tlearn's dual coordinate descent.
    Linfa,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TransformChoice {
    /// Cross-validate standard, sqrt-standard, l2 and standard-l2 with every head; keep the one
    /// CV picks (pca-whiten is too slow to be a default candidate: pass it explicitly).
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

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BlockNormChoice {
    /// Signed square root, then divide the block by its L2 norm.
    SqrtL2,
    /// Divide the block by its L2 norm.
    L2,
    /// Join the blocks as they are.
    None,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TrainViewsChoice {
    /// With a cache that keeps views (`extract --keep-views`): cross-validate with and without
    /// view rows on the same folds and keep what CV picks; without views: averaged rows.
    Auto,
    /// Every kept view of each training image is a training row (the cache must keep views).
    On,
    /// One averaged row per training image.
    Off,
}

#[derive(Args)]
#[command(after_help = "\
Given a cut set (several cuts of one backbone, `tlearn extract --layer all`), train chooses the
cut itself by cross-validation on the training part: it screens every cut with a cheap grid
(--screen-c-grid, logistic regression), screens concatenations of pairs of the --pair-top best
cuts, runs the full head grid on the --finalists best, and keeps the best. A second PATH (another
backbone's cache or set of the SAME images; `make demo` gives mobilenetv2 `features`) adds its
cuts and a cross-backbone concatenation. Each block of a concatenation is normalised on its own
before the join (--block-norm, default signed square root then L2), at CV, final fit, eval and
predict alike. Split and folds are the same for every candidate. cv.json and cv-cuts.png show CV accuracy by
cut, the chosen one and the CS231n scenario it points to. A single cache trains as it is.")]
pub struct TrainArgs {
    /// Feature cache or cut set (made by `tlearn extract`); optionally a second one: another
    /// backbone's codes of the same images, for cross-backbone candidates.
    #[arg(required = true, num_args = 1..=2, value_name = "PATH")]
    pub caches: Vec<PathBuf>,
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
    /// Training rows from augmentation views kept by `extract --augment flip|crops5|crops10
    /// --keep-views`: `on` makes each training image one row per view (CV and final fit),
    /// `auto` cross-validates both on the same folds and keeps the better; validation and
    /// held-out images are always scored on their averaged views, and a view never crosses the
    /// split from its image. A cut set's screen uses averaged rows, its finalists both.
    #[arg(long, value_enum, default_value = "auto")]
    pub train_views: TrainViewsChoice,
    /// Stopping tolerance of the linear SVM solver.
    #[arg(long, default_value_t = 0.01)]
    pub linear_tol: f64,
    /// Train on these cut(s) of the PATHs instead of selecting: `stage6`, or `features+stage6`
    /// for a concatenation (a second backbone's cuts are named `BACKBONE/cut`).
    #[arg(long, value_name = "CUT[+CUT]")]
    pub cut: Option<String>,
    /// Selection over cuts: values of C the screen tries (logistic regression) on every cut.
    #[arg(long, value_delimiter = ',', default_value = "0.1,1")]
    pub screen_c_grid: Vec<f64>,
    /// Selection over cuts: concatenate every pair of this many best screened cuts (0: none).
    #[arg(long, default_value_t = 3)]
    pub pair_top: usize,
    /// Selection over cuts: how many best screened cuts (or pairs) get the full head grid.
    #[arg(long, default_value_t = 2)]
    pub finalists: usize,
    /// How each block of a concatenation (two cuts, or two backbones' codes) is normalised
    /// before the blocks are joined: `sqrt-l2` (signed square root, then divide by the block's
    /// L2 norm), `l2` (the L2 division alone) or `none` (joined raw). Saved in the head, applied
    /// again by eval and predict.
    #[arg(long, value_enum, default_value = "sqrt-l2")]
    pub block_norm: BlockNormChoice,
    /// Models directory, to know each backbone's bottleneck cut (default: $TLEARN_MODELS, else
    /// <repo>/models).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// Output directory: head.json (the model), cv.json (CV curve, split and folds, the
    /// selection over cuts) and cv-cuts.png.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub finetune: super::finetune::FinetuneArgs,
}

/// The caches PATHs name, loaded, with the names reports use and which cut is a backbone's
/// bottleneck (its registry default cut).
fn load_inputs(paths: &[PathBuf], models_dir: Option<&Path>) -> Result<Vec<CutInput>> {
    let reg = Registry::load(&registry::models_dir(models_dir)).ok();
    let mut inputs = Vec::new();
    for (b, path) in paths.iter().enumerate() {
        let is_set = !path.join(tlearn_cache::META_FILE).is_file();
        for named in tlearn_cache::resolve(path)? {
            let cache = FeatureCache::load(&named.dir)?;
            let fp = &cache.meta.extractor;
            let cut = if is_set {
                named.name.clone()
            } else {
                fp.layer.clone()
            };
            let bottleneck = reg
                .as_ref()
                .and_then(|r| r.get(&fp.backbone).ok())
                .is_some_and(|m| m.default_cut == fp.layer);
            inputs.push(CutInput {
                name: if b == 0 {
                    cut
                } else {
                    format!("{}/{cut}", fp.backbone)
                },
                backbone: b,
                bottleneck,
                cache,
            });
        }
    }
    Ok(inputs)
}

pub fn run(args: TrainArgs) -> Result<()> {
    if let HeadChoice::Finetune = args.head {
        let [cache] = args.caches.as_slice() else {
            bail!("--head finetune trains on one spatial cache");
        };
        let dir = args.models_dir.as_deref();
        return super::finetune::train(
            cache,
            args.seed,
            args.test_size,
            &args.finetune,
            dir,
            &args.out,
        );
    }
    let heads = match args.head {
        HeadChoice::Auto => HeadKind::ALL.to_vec(),
        HeadChoice::Logistic => vec![HeadKind::Logistic],
        HeadChoice::LinearSvm => vec![HeadKind::LinearSvm],
        HeadChoice::RbfSvm => vec![HeadKind::RbfSvm],
        HeadChoice::Finetune => unreachable!("handled above"),
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
    // Fail now, not after the cross-validation, when the results cannot be saved.
    tlearn_cache::check_writable(&args.out)
        .with_context(|| format!("--out {} is not writable", args.out.display()))?;
    let inputs = load_inputs(&args.caches, args.models_dir.as_deref())?;
    let first = &inputs[0].cache;
    let mut heads = heads;
    if matches!(args.head, HeadChoice::Auto) {
        let n_train = ((1.0 - args.test_size) * first.rows() as f64) as usize;
        let (auto, note) = tlearn_heads::select::auto_heads(n_train);
        heads = auto;
        if let Some(note) = note {
            eprintln!("note: {note}");
        }
    }
    let train = TrainConfig {
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
        train_views: match args.train_views {
            TrainViewsChoice::Auto => TrainViews::Auto,
            TrainViewsChoice::On => TrainViews::On,
            TrainViewsChoice::Off => TrainViews::Off,
        },
    };
    let cfg = CutConfig {
        screen_c_grid: args.screen_c_grid,
        pair_top: args.pair_top,
        finalists: args.finalists,
        fixed: args.cut.map(|c| c.split('+').map(str::to_string).collect()),
        block_norm: match args.block_norm {
            BlockNormChoice::SqrtL2 => Some(BlockRule::SqrtL2),
            BlockNormChoice::L2 => Some(BlockRule::L2),
            BlockNormChoice::None => None,
        },
        ..CutConfig::new(train)
    };
    for i in &inputs {
        println!(
            "cache {}: {} rows, dim {}, {} classes{}{}",
            i.cache.dir.display(),
            i.cache.rows(),
            i.cache.meta.dim,
            i.cache.classes().len(),
            if inputs.len() > 1 {
                format!(" (cut {})", i.name)
            } else {
                String::new()
            },
            if i.cache.meta.views.is_empty() {
                String::new()
            } else {
                format!(", {} kept views", i.cache.meta.views.len())
            }
        );
    }
    if inputs.len() > 1 && cfg.fixed.is_none() {
        println!("selection over cuts: {}", cfg.rule());
    }
    let out = cuts::select(&inputs, &cfg, |ev| match ev {
        Event::Stage(s) => eprintln!("{s}"),
        Event::Skipped { set, why } => eprintln!("  {set}: not screened ({why})"),
        Event::Cv { set, result: r } => eprintln!(
            "  cv {set} {} [{}{}]: {} ({:.2} s)",
            r.params,
            r.transform,
            if r.view_rows { ", view rows" } else { "" },
            match &r.error {
                None if r.skipped => "skipped (C path stopped)".into(),
                None => format!("{:.4}", r.mean_accuracy),
                Some(e) => format!("failed: {e}"),
            },
            r.seconds
        ),
    })?;
    println!(
        "split: {} training rows ({} folds), {} held out",
        out.cv.split.train_rows.len(),
        args.folds,
        out.cv.split.test_rows.len()
    );
    print!("{}", report::cv_table(&out.cv));
    let cuts_json = serde_json::to_value(&out.cuts)?;
    print!("{}", report_cuts::text(&cuts_json));
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let head_path = args.out.join("head.json");
    out.saved.save(&head_path)?;
    let cv_path = args.out.join("cv.json");
    let file = CvFile {
        cv: &out.cv,
        cuts: &out.cuts,
    };
    tlearn_cache::write_atomic_bytes(&cv_path, serde_json::to_string_pretty(&file)?.as_bytes())?;
    let png = args.out.join("cv-cuts.png");
    if report_cuts::png(&cuts_json, &png)? {
        println!(
            "wrote {}, {} and {}",
            head_path.display(),
            cv_path.display(),
            png.display()
        );
    } else {
        println!("wrote {} and {}", head_path.display(), cv_path.display());
    }
    Ok(())
}
