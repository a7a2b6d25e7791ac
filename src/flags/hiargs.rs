//! High-level arguments: each command's flags checked together and turned into the library's
//! types, before anything is opened or read. What a flag alone cannot say (`--keep-views`
//! needs `--augment`; `--layer a,b,a` repeats a cut; `--mean` needs three numbers) is refused
//! here, with the flag named.

use std::path::PathBuf;

use anyhow::{bail, Result};
use tlearn_cache::LayerSpec;
use tlearn_extract::augment::Augment;
use tlearn_extract::backbone::BackboneOptions;
use tlearn_extract::open::{decode_mode_for, OwnModel};
use tlearn_extract::registry;
use tlearn_extract::spec::Layout;
use tlearn_extract::{CacheOptions, ExtractorOptions};
use tlearn_heads::train::{CutConfig, TrainConfig};
use tlearn_model::fit::{FitBackbone, FitOptions};
use tlearn_model::ModelOptions;

use super::custom_model::{backbone_options, decode_memory};
use super::{export, extract, fit, layers, predict, show, Command};

/// One command, checked.
pub enum HiArgs {
    Layers(Layers),
    Extract(Extract),
    Fit(Fit),
    Predict(Predict),
    Export(Export),
    Show(Show),
    Train(crate::flags::train::TrainArgs),
    ExportCodes(crate::flags::codes::ExportCodesArgs),
    ImportCodes(crate::flags::codes::ImportCodesArgs),
    Eval(crate::flags::eval::EvalArgs),
    Models(Models),
}

/// `tlearn models`: the models directory found (and how), and the registry.
pub struct Models {
    pub found: registry::ModelsDir,
    /// Backbones to fetch into it (`tlearn models fetch`), none to list.
    pub fetch: Vec<String>,
}

impl HiArgs {
    pub fn from_low_args(low: Command) -> Result<HiArgs> {
        Ok(match low {
            Command::Layers(a) => HiArgs::Layers(Layers::from_low_args(a)),
            Command::Extract(a) => HiArgs::Extract(Extract::from_low_args(a)?),
            Command::Fit(a) => HiArgs::Fit(Fit::from_low_args(a)?),
            Command::Predict(a) => HiArgs::Predict(Predict::from_low_args(a)?),
            Command::Export(a) => HiArgs::Export(Export::from_low_args(a)),
            Command::Show(a) => HiArgs::Show(Show::from_low_args(a)?),
            Command::Train(a) => HiArgs::Train(a),
            Command::ExportCodes(a) => HiArgs::ExportCodes(a),
            Command::ImportCodes(a) => HiArgs::ImportCodes(a),
            Command::Eval(a) => HiArgs::Eval(a),
            Command::Models(a) => HiArgs::Models(Models {
                found: registry::find_models_dir(a.models_dir.as_deref()),
                fetch: match a.action {
                    Some(super::models::ModelsAction::Fetch { names }) => names,
                    None => Vec::new(),
                },
            }),
        })
    }
}

/// `tlearn extract`: which extractor, and where its cache goes.
pub struct Extract {
    pub dataset: PathBuf,
    pub out: PathBuf,
    pub model: String,
    pub layer: LayerSpec,
    pub options: ExtractorOptions,
    pub cache: CacheOptions,
    pub report: Option<PathBuf>,
    /// `--model2`: a second backbone in the same pass.
    pub second: Option<SecondBackbone>,
}

/// `extract --model2 M --layer2 L --out2 DIR`.
pub struct SecondBackbone {
    pub model: String,
    pub layer: LayerSpec,
    pub out: PathBuf,
    /// Its JPEG decoding (the mode of the cache in DIR when it has one, as for --out).
    pub decode: tlearn_extract::spec::DecodeMode,
}

impl Extract {
    fn from_low_args(a: extract::ExtractArgs) -> Result<Extract> {
        if a.keep_views && a.augment == Augment::None {
            bail!("--keep-views keeps the views of --augment flip|crops5|crops10; none asked");
        }
        let second = match (a.model2, a.out2) {
            (Some(model), Some(out)) => Some(SecondBackbone {
                model,
                layer: LayerSpec::parse(a.layer2.as_deref())?,
                decode: decode_mode_for(&out, a.decode),
                out,
            }),
            _ => None,
        };
        Ok(Extract {
            second,
            layer: LayerSpec::parse(a.layer.as_deref())?,
            options: ExtractorOptions {
                models_dir: a.models_dir,
                pool: a.pool,
                augment: a.augment,
                // Updating or resuming a cache keeps its decoding without a flag.
                decode: decode_mode_for(&a.out, a.decode),
                threads: a.threads.map(threads_note),
                decode_memory: decode_memory(a.decode_memory)?,
                max_file_size: a.max_file_size.as_u64(),
                own: a.custom.own_model()?,
                backbone: backbone_options()?,
            },
            cache: CacheOptions {
                overwrite: a.overwrite,
                progress: !a.quiet,
                keep_views: a.keep_views,
            },
            dataset: a.dir,
            out: a.out,
            model: a.model,
            report: a.report,
        })
    }
}

/// `--threads N`, capped at what the machine can use ([`tlearn_extract::workers::worker_threads`]),
/// with a note when it is.
fn threads_note(asked: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (n, note) = tlearn_extract::workers::worker_threads(Some(asked), usize::MAX, cores);
    if let Some(note) = note {
        eprintln!("{note}");
    }
    n
}

/// `tlearn fit`: the folder, the run directory and the pipeline's options.
pub struct Fit {
    pub dataset: PathBuf,
    pub out: PathBuf,
    pub options: FitOptions,
    pub verbose: bool,
}

impl Fit {
    fn from_low_args(a: fit::FitArgs) -> Result<Fit> {
        if !(a.test_size > 0.0 && a.test_size < 1.0) {
            bail!("--test-size must lie between 0 and 1, not {}", a.test_size);
        }
        if a.folds < 2 {
            bail!("--folds must be at least 2, not {}", a.folds);
        }
        let mut backbones = vec![FitBackbone {
            model: a.model,
            layer: LayerSpec::parse(Some(&a.layer))?,
        }];
        if a.model2 != "none" {
            backbones.push(FitBackbone {
                model: a.model2,
                layer: LayerSpec::parse(a.layer2.as_deref())?,
            });
        } else if a.layer2.is_some() {
            bail!("--layer2 names a cut of --model2, which is `none`");
        }
        let train = TrainConfig {
            heads: a.head,
            seed: a.seed,
            test_size: a.test_size,
            folds: a.folds,
            ..TrainConfig::default()
        };
        Ok(Fit {
            options: FitOptions {
                backbones,
                extractor: ExtractorOptions {
                    models_dir: a.models_dir,
                    threads: a.threads.map(threads_note),
                    decode_memory: decode_memory(None)?,
                    backbone: backbone_options()?,
                    ..ExtractorOptions::default()
                },
                cache: CacheOptions {
                    progress: !a.quiet,
                    ..CacheOptions::default()
                },
                train: CutConfig::new(train),
            },
            dataset: a.dir,
            out: a.out,
            verbose: a.verbose,
        })
    }
}

/// `tlearn predict`: a saved head, or the full ImageNet model.
pub struct Predict {
    pub images: Vec<PathBuf>,
    pub with: Classifier,
    pub top: usize,
    pub json: bool,
}

/// What classifies the images.
pub enum Classifier {
    Head {
        path: PathBuf,
        options: ModelOptions,
    },
    Imagenet {
        model: String,
        models_dir: Option<PathBuf>,
        backbone: BackboneOptions,
        decode_memory: Option<u64>,
    },
}

impl Predict {
    fn from_low_args(a: predict::PredictArgs) -> Result<Predict> {
        let with = match a.head {
            Some(path) => Classifier::Head {
                path,
                options: ModelOptions {
                    models_dir: a.models_dir,
                    model: a.model,
                    decode_memory: decode_memory(None)?,
                    backbone: backbone_options()?,
                    ..ModelOptions::default()
                },
            },
            None => Classifier::Imagenet {
                model: a.model.unwrap_or_else(|| "efficientnet-lite0".into()),
                models_dir: a.models_dir,
                backbone: backbone_options()?,
                decode_memory: decode_memory(None)?,
            },
        };
        Ok(Predict {
            images: a.images,
            with,
            top: a.top,
            json: a.json,
        })
    }
}

/// `tlearn export`.
pub struct Export {
    pub head: PathBuf,
    pub out: PathBuf,
    pub model: Option<String>,
    pub models_dir: PathBuf,
}

impl Export {
    fn from_low_args(a: export::ExportArgs) -> Export {
        Export {
            models_dir: registry::models_dir(a.models_dir.as_deref()),
            head: a.head,
            out: a.out,
            model: a.model,
        }
    }
}

/// `tlearn show`: one image, one cut.
pub struct Show {
    pub image: PathBuf,
    pub model: String,
    pub layer: LayerSpec,
    pub channels: usize,
    pub out: Option<PathBuf>,
    pub models_dir: PathBuf,
    pub own: OwnModel,
    pub backbone: BackboneOptions,
}

impl Show {
    fn from_low_args(a: show::ShowArgs) -> Result<Show> {
        let cut = tlearn_cache::cut_spec::CutName::parse(&a.layer)?;
        if let Some(k) = cut.grid() {
            bail!(
                "--layer {}: show draws a layer's own maps; the grid (@{k}x{k}) pools them into \
                 cells, so show the layer itself: --layer {}",
                a.layer,
                cut.base()
            );
        }
        Ok(Show {
            layer: LayerSpec::one(&a.layer)?,
            own: a.custom.own_model()?,
            backbone: backbone_options()?,
            models_dir: registry::models_dir(a.models_dir.as_deref()),
            image: a.image,
            model: a.model,
            channels: a.channels,
            out: a.out,
        })
    }
}

/// `tlearn layers`.
pub struct Layers {
    pub model: String,
    pub models_dir: PathBuf,
    pub own: OwnModel,
    pub cuts_only: bool,
}

impl Layers {
    fn from_low_args(a: layers::LayersArgs) -> Layers {
        Layers {
            own: OwnModel {
                crop: a.crop,
                layout: if a.nhwc { Layout::Nhwc } else { Layout::Nchw },
                ..OwnModel::default()
            },
            models_dir: registry::models_dir(a.models_dir.as_deref()),
            model: a.model,
            cuts_only: a.cuts,
        }
    }
}
