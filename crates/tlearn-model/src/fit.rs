//! The whole pipeline in one call: a folder of labelled images (`DIR/<class>/<image>`) to
//! cached codes, a head chosen by cross-validation, its held-out evaluation and the report.
//!
//! It runs the steps the separate commands run, with the same defaults (`tlearn fit` and `make
//! demo` call it; `tlearn extract`, `train` and `eval` remain for control): every named cut of
//! EfficientNet-Lite0 (`--layer all`) and MobileNetV2's `features`, each into its own cache under
//! `OUT/cache/` (resumed when the run is repeated or was interrupted; one pass over the images
//! feeds each decoded image to both networks), the selection over cuts and
//! heads of `tlearn train` on both, then `tlearn eval` on the held-out images. Every file lands
//! in `OUT`: `head.json`, `cv.json`, `cv-cuts.png`, `report.json`, `confusion.png`,
//! `report.html`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tlearn_cache::cut_spec::LayerSpec;
use tlearn_extract::registry::{self, Registry};
use tlearn_extract::summary::Summary;
use tlearn_extract::{CacheOptions, Extractor, ExtractorOptions};
use tlearn_heads::train::{CutConfig, Event, TrainOutcome, Training};
use tlearn_heads::Evaluation;
use tlearn_report::eval_files::EvalOutputs;
use tlearn_report::train_files::TrainOutputs;

/// The backbones and cuts a run extracts by default: every named cut of the first (so CV can
/// choose the cut), the bottleneck of the second (so CV can weigh a second network's codes, alone
/// and joined). The same pair `make demo` has always used.
pub const DEFAULT_BACKBONES: [(&str, &str); 2] =
    [("efficientnet-lite0", "all"), ("mobilenetv2", "features")];

/// One backbone of a run and the cut(s) taken from it.
#[derive(Debug, Clone)]
pub struct FitBackbone {
    pub model: String,
    pub layer: LayerSpec,
}

impl FitBackbone {
    /// The defaults, [`DEFAULT_BACKBONES`].
    pub fn defaults() -> Vec<FitBackbone> {
        DEFAULT_BACKBONES
            .iter()
            .map(|(m, l)| FitBackbone {
                model: (*m).to_string(),
                layer: l.parse().expect("the default cuts parse"),
            })
            .collect()
    }

    /// The cache directory of this backbone's codes of a run.
    fn cache_dir(&self, out: &Path) -> PathBuf {
        let layer = match &self.layer {
            LayerSpec::Default => "default".to_string(),
            l => l.to_string().replace(['/', ','], "_"),
        };
        out.join("cache").join(format!("{}--{layer}", self.model))
    }
}

/// What a run extracts and how it trains.
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// One or two backbones (the second one's codes compete alone and joined to the first's).
    pub backbones: Vec<FitBackbone>,
    pub extractor: ExtractorOptions,
    pub cache: CacheOptions,
    pub train: CutConfig,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            backbones: FitBackbone::defaults(),
            extractor: ExtractorOptions::default(),
            cache: CacheOptions {
                progress: true,
                ..CacheOptions::default()
            },
            train: CutConfig::default(),
        }
    }
}

/// What a run reports while it works.
pub enum FitEvent<'a> {
    /// A backbone's codes are being extracted into a cache.
    Extracting { model: &'a str, cache: &'a Path },
    /// A cache is complete.
    Extracted(&'a Summary),
    /// Something the training noticed before it started (a note to show).
    Note(&'a str),
    /// The training's progress.
    Train(Event<'a>),
}

/// Everything a run made, and where it wrote it.
pub struct FitOutcome {
    pub caches: Vec<PathBuf>,
    pub extracted: Vec<Summary>,
    pub trained: TrainOutcome,
    pub train_files: TrainOutputs,
    pub evaluation: Evaluation,
    pub eval_files: EvalOutputs,
}

/// Run the pipeline on `dataset` into `out` (see the module doc).
pub fn fit(
    dataset: &Path,
    out: &Path,
    opts: &FitOptions,
    mut events: impl FnMut(FitEvent),
) -> Result<FitOutcome> {
    anyhow::ensure!(
        !opts.backbones.is_empty() && opts.backbones.len() <= 2,
        "a run takes one or two backbones, not {}",
        opts.backbones.len()
    );
    // Fail now, not after the extraction and the cross-validation.
    tlearn_cache::check_writable(out)
        .with_context(|| format!("{} is not writable", out.display()))?;
    let caches: Vec<PathBuf> = opts.backbones.iter().map(|b| b.cache_dir(out)).collect();
    for (b, cache) in opts.backbones.iter().zip(&caches) {
        events(FitEvent::Extracting {
            model: &b.model,
            cache,
        });
    }
    // The backbones load side by side, then one pass feeds every decoded image to all of them.
    let extractors = std::thread::scope(|s| {
        let opening: Vec<_> = opts
            .backbones
            .iter()
            .map(|b| s.spawn(|| Extractor::open(&b.model, &b.layer, &opts.extractor)))
            .collect();
        opening
            .into_iter()
            .map(|h| h.join().expect("opening a backbone does not panic"))
            .collect::<Result<Vec<_>>>()
    })?;
    let parts: Vec<(&Extractor, &Path)> = extractors
        .iter()
        .zip(&caches)
        .map(|(e, c)| (e, c.as_path()))
        .collect();
    let extracted = Extractor::extract_dir_together(&parts, dataset, &opts.cache)?;
    for summary in &extracted {
        events(FitEvent::Extracted(summary));
    }
    // Each backbone's bottleneck (its registry default cut), for the CS231n scenario.
    let reg = Registry::load(&registry::models_dir(opts.extractor.models_dir.as_deref())).ok();
    let bottleneck = |backbone: &str| {
        reg.as_ref()
            .and_then(|r| r.get(backbone).ok())
            .map(|m| m.default_cut.clone())
    };
    let training = Training::open(&caches, &bottleneck, opts.train.clone())?;
    for n in training.notes() {
        events(FitEvent::Note(n));
    }
    let trained = training.run(|e| events(FitEvent::Train(e)))?;
    let train_files = tlearn_report::train_files::write(&trained, out)?;
    let evaluation = Evaluation::run(&train_files.files.head, &caches, false)?;
    let eval_files = tlearn_report::eval_files::write(
        &evaluation,
        out,
        &tlearn_extract::thumbnail::thumbnail_jpeg,
    )?;
    Ok(FitOutcome {
        caches,
        extracted,
        trained,
        train_files,
        evaluation,
        eval_files,
    })
}
