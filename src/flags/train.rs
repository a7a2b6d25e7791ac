//! `tlearn train`'s flags, as typed, and the library's configuration they give.

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use tlearn_finetune::FinetuneParams;
use tlearn_heads::train::{CutConfig, HeadChoice, SelectRule, TrainConfig};
use tlearn_heads::transform::{BlockRule, TransformKind};
use tlearn_heads::view_rows::TrainViews;
use tlearn_heads::{Engine, HeadGrids, HeadKind};

/// `--head` as typed: the heads the cross-validation chooses among, or fine-tuning the layers
/// after the cut (trained on its own, on a spatial cache).
#[derive(Clone, Debug)]
pub enum HeadFlag {
    Heads(HeadChoice),
    Finetune,
}

/// `--head`: `auto` or one registered head family, each value with its one-line help.
pub fn head_parser() -> impl TypedValueParser<Value = HeadChoice> {
    PossibleValuesParser::new(head_values()).map(|s| match s.parse::<HeadKind>() {
        Ok(k) => HeadChoice::Only(vec![k]),
        Err(_) => HeadChoice::Auto,
    })
}

/// `train --head`: [`head_parser`]'s values and `finetune`.
pub fn train_head_parser() -> impl TypedValueParser<Value = HeadFlag> {
    let finetune = PossibleValue::new("finetune").help(
        "Fine-tune the backbone's layers after the cut and a new classifier on a spatial cache \
         (`extract --layer stage6 --pool flatten`); options --ft-*",
    );
    let values = head_values().chain(std::iter::once(finetune));
    PossibleValuesParser::new(values).map(|s| match s.parse::<HeadKind>() {
        Ok(k) => HeadFlag::Heads(HeadChoice::Only(vec![k])),
        Err(_) if s == "finetune" => HeadFlag::Finetune,
        Err(_) => HeadFlag::Heads(HeadChoice::Auto),
    })
}

fn head_values() -> impl Iterator<Item = PossibleValue> {
    std::iter::once(
        PossibleValue::new("auto")
            .help("Cross-validate all heads and keep the best (ties go to the simpler model)"),
    )
    .chain(
        HeadKind::ALL
            .iter()
            .map(|k| PossibleValue::new(k.name()).help(k.about())),
    )
}

/// Options of `--head finetune` and of fine-tuning as a candidate of `--head auto` (the
/// defaults are `FinetuneParams::default()`).
#[derive(Args, Debug, Clone)]
pub struct FinetuneArgs {
    /// --head auto: the spatial map of a cut of the SAME images (`tlearn extract --layer stage6
    /// --pool flatten`): fine-tuning the layers after that cut is cross-validated on the frozen
    /// heads' folds and kept when it beats the chosen frozen head by more than one standard
    /// error of the paired per-fold difference (head.json is then the fine-tuned network).
    #[arg(long, value_name = "MAPS")]
    pub finetune_on: Option<PathBuf>,
    /// --finetune-on: fewest training images (before the folds) for fine-tuning to compete.
    #[arg(long, default_value_t = tlearn_finetune::contest::MIN_TRAINING_IMAGES, value_name = "N")]
    pub finetune_min_images: usize,
    /// --head finetune: AdamW learning rate of the pretrained layers after the cut.
    #[arg(long, default_value_t = FinetuneParams::default().lr_block, value_name = "LR")]
    pub ft_lr_block: f64,
    /// --head finetune: AdamW learning rate of the new classifier.
    #[arg(long, default_value_t = FinetuneParams::default().lr_head, value_name = "LR")]
    pub ft_lr_head: f64,
    /// --head finetune: decoupled weight decay.
    #[arg(long, default_value_t = FinetuneParams::default().weight_decay, value_name = "WD")]
    pub ft_weight_decay: f64,
    /// --head finetune: mini-batch size.
    #[arg(long, default_value_t = FinetuneParams::default().batch, value_name = "N")]
    pub ft_batch: usize,
    /// --head finetune: epochs of the linear probe (block frozen) before the joint epochs.
    #[arg(long, default_value_t = FinetuneParams::default().probe_epochs, value_name = "N")]
    pub ft_probe_epochs: usize,
    /// --head finetune: most joint epochs (early stopping on an inner validation split).
    #[arg(long, default_value_t = FinetuneParams::default().max_epochs, value_name = "N")]
    pub ft_epochs: usize,
    /// --head finetune: joint epochs without a better validation score before stopping.
    #[arg(long, default_value_t = FinetuneParams::default().patience, value_name = "N")]
    pub ft_patience: usize,
    /// --head finetune: dropout rate on the pooled features.
    #[arg(long, default_value_t = FinetuneParams::default().dropout, value_name = "P")]
    pub ft_dropout: f64,
    /// --head finetune: mixup of the cached maps (and of the probe's pooled features), the
    /// mixing weight drawn from Beta(ALPHA, ALPHA) per batch; 0 = off.
    #[arg(long, default_value_t = FinetuneParams::default().mixup, value_name = "ALPHA")]
    pub ft_mixup: f64,
}

impl FinetuneArgs {
    /// The fine-tuning parameters, seeded by `train --seed`.
    pub fn params(&self, seed: u64) -> FinetuneParams {
        FinetuneParams {
            lr_block: self.ft_lr_block,
            lr_head: self.ft_lr_head,
            weight_decay: self.ft_weight_decay,
            batch: self.ft_batch,
            probe_epochs: self.ft_probe_epochs,
            max_epochs: self.ft_epochs,
            patience: self.ft_patience,
            dropout: self.ft_dropout,
            mixup: self.ft_mixup,
            seed,
            ..FinetuneParams::default()
        }
    }
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
pub enum SelectChoice {
    /// The best mean CV accuracy.
    Best,
    /// The simplest finalist within one standard error of the best (paired folds).
    OneSe,
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
    #[arg(long, default_value = "auto", value_parser = train_head_parser())]
    pub head: HeadFlag,
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
    /// Comma-separated hidden widths H for the dense network (`--head mlp`) [default: 64,256].
    #[arg(long, value_delimiter = ',', value_name = "H")]
    pub hidden_grid: Option<Vec<usize>>,
    /// Comma-separated weight decays (L2 penalty, scikit-learn's alpha) for the dense network
    /// [default: 0.0001,0.01,1].
    #[arg(long, value_delimiter = ',')]
    pub weight_decay_grid: Option<Vec<f64>>,
    /// Fraction of the dense network's hidden units dropped at each training step [default: 0].
    #[arg(long)]
    pub dropout: Option<f64>,
    /// At most this many epochs of the dense network; early stopping on an inner validation
    /// split usually ends it sooner [default: 200].
    #[arg(long, value_name = "N")]
    pub max_epochs: Option<usize>,
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
    /// Selection over cuts: how the winner among the finalists is picked: `best` (the best mean
    /// CV accuracy) or `one-se` (the simplest finalist within one standard error of the best,
    /// paired over the folds: a single cut, the bottleneck, fewer dimensions, a linear head).
    #[arg(long, value_enum, default_value = "best")]
    pub select: SelectChoice,
    /// How each block of a concatenation (two cuts, or two backbones' codes) is normalised
    /// before the blocks are joined: `sqrt-l2` (signed square root, then divide by the block's
    /// L2 norm), `l2` (the L2 division alone) or `none` (joined raw). Saved in the head, applied
    /// again by eval and predict.
    #[arg(long, value_enum, default_value = "sqrt-l2")]
    pub block_norm: BlockNormChoice,
    /// Refuse, before it starts, a search whose logistic regression fits are estimated to take
    /// longer than this on this machine (many classes make each fit slow); a search estimated
    /// over a minute is announced with its estimate.
    #[arg(long, default_value_t = 60.0, value_name = "MINUTES")]
    pub max_minutes: f64,
    /// Models directory, to know each backbone's bottleneck cut (default: as `tlearn models
    /// --help` says).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// Output directory: head.json (the model), cv.json (CV curve, split and folds, the
    /// selection over cuts) and cv-cuts.png.
    #[arg(long)]
    pub out: PathBuf,
    /// Print every CV candidate as it finishes and the whole grid at the end (default: the
    /// best few and the chosen one; the whole grid is always in cv.json and report.html).
    #[arg(short, long)]
    pub verbose: bool,
    #[command(flatten)]
    pub finetune: FinetuneArgs,
}

impl TrainArgs {
    /// The library's configuration from the flags.
    pub fn config(&self) -> CutConfig {
        let transforms = match self.transform {
            TransformChoice::Auto => TransformKind::AUTO.to_vec(),
            TransformChoice::Standard => vec![TransformKind::Standard],
            TransformChoice::SqrtStandard => vec![TransformKind::SqrtStandard],
            TransformChoice::StandardL2 => vec![TransformKind::StandardL2],
            TransformChoice::PcaWhiten => vec![TransformKind::PcaWhiten],
            TransformChoice::L2 => vec![TransformKind::L2],
            TransformChoice::None => vec![TransformKind::None],
        };
        let mut grids = HeadGrids::default();
        grids.rbf_svm.gamma = self.gamma_grid.clone();
        grids.linear_svm.tol = self.linear_tol;
        if let Some(h) = &self.hidden_grid {
            grids.mlp.hidden = h.clone();
        }
        if let Some(w) = &self.weight_decay_grid {
            grids.mlp.weight_decay = w.clone();
        }
        if let Some(p) = self.dropout {
            grids.mlp.dropout = p;
        }
        if let Some(n) = self.max_epochs {
            grids.mlp.max_epochs = n;
        }
        let train = TrainConfig {
            heads: match &self.head {
                HeadFlag::Heads(h) => h.clone(),
                // `train` hands `--head finetune` to the fine-tuning path before this.
                HeadFlag::Finetune => HeadChoice::Auto,
            },
            seed: self.seed,
            test_size: self.test_size,
            folds: self.folds,
            c_grid: self.c_grid.clone(),
            engine: match self.engine {
                EngineChoice::Tlearn => Engine::Tlearn,
                EngineChoice::Linfa => Engine::Linfa,
            },
            grids,
            transforms,
            pca: self.pca,
            grid_extension: self.grid_extension,
            c_patience: self.c_patience,
            train_views: match self.train_views {
                TrainViewsChoice::Auto => TrainViews::Auto,
                TrainViewsChoice::On => TrainViews::On,
                TrainViewsChoice::Off => TrainViews::Off,
            },
        };
        CutConfig {
            screen_c_grid: self.screen_c_grid.clone(),
            pair_top: self.pair_top,
            finalists: self.finalists,
            fixed: self
                .cut
                .as_ref()
                .map(|c| c.split('+').map(str::to_string).collect()),
            block_norm: match self.block_norm {
                BlockNormChoice::SqrtL2 => Some(BlockRule::SqrtL2),
                BlockNormChoice::L2 => Some(BlockRule::L2),
                BlockNormChoice::None => None,
            },
            max_minutes: Some(self.max_minutes),
            select: match self.select {
                SelectChoice::Best => SelectRule::Best,
                SelectChoice::OneSe => SelectRule::OneSe,
            },
            ..CutConfig::new(train)
        }
    }
}
