//! The cut specification: what `--layer` (extraction) and `--cut` (training) say, parsed once.
//!
//! - A cut ([`CutName`]) is a registry cut name (`features`), an ONNX tensor or node name, or a
//!   structural form (`@classifier_input`, `@last:Conv:2`), optionally pooled on a grid:
//!   `NAME@KxK` (`stage6@2x2`; see `tlearn_extract::grid`). The grid is part of the name, hence
//!   of the fingerprint's `layer`.
//! - `--layer` ([`LayerSpec`]): absent (the model's default cut), `all` (every named cut of a
//!   registry model), or one or several cuts separated by [`CUT_SEPARATOR`]
//!   (`features,stage6@2x2`); several come from one forward pass and make a cut set.
//! - `--cut` ([`CutCombo`]): the cuts of a head's input joined by [`PAIR_MARK`]
//!   (`features+stage6`, `features+mobilenetv2/features`): a concatenation.
//!
//! Every spelling is defined here and nowhere else; the extractor, the cut-set writer, the
//! head's part names and the command line all go through these types.

use std::fmt;
use std::str::FromStr;

/// Separates the cuts of one extraction (`features,stage6,stage5`), and the cut names in a cut
/// set's joined `layer`.
pub const CUT_SEPARATOR: char = ',';
/// `--layer` spelling for every named cut of a registry model.
pub const ALL_CUTS: &str = "all";
/// Separates a cut name from its grid (`stage6@2x2`).
pub const GRID_MARK: char = '@';
/// Largest grid side accepted (a 7×7 map has no more than 7 distinct cells per axis anyway).
pub const MAX_GRID: usize = 8;
/// Joins the cuts of a concatenation (`features+stage6`).
pub const PAIR_MARK: char = '+';

/// A cut specification that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CutSpecError {
    #[error("--layer '{0}' names no cut")]
    Empty(String),
    #[error(
        "cut '{cut}': a grid is written {GRID_MARK}KxK with the same K on both sides, \
         1 <= K <= {MAX_GRID} (e.g. {base}{GRID_MARK}2x2)"
    )]
    BadGrid { cut: String, base: String },
    #[error("cut '{0}' is requested twice")]
    Repeated(String),
    #[error("--cut '{0}' names no cut (write CUT or CUT+CUT)")]
    EmptyCombo(String),
}

/// One cut: its name as written, and the grid it is pooled on (`NAME@KxK`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CutName {
    text: String,
    /// Length of the name before the grid mark (the whole text when there is no grid).
    base_len: usize,
    grid: Option<usize>,
}

impl CutName {
    /// `NAME@KxK` → a cut pooled on a K×K grid; any other name → the name alone. A name that
    /// ends in `@…x…` with numbers but not a valid square grid (`@2x3`, `@0x0`, `@9x9`) is
    /// refused, so a typo is not taken for an ONNX node name. A leading `@` (structural forms
    /// such as `@classifier_input`) is never a grid mark.
    pub fn parse(text: &str) -> Result<CutName, CutSpecError> {
        let plain = || CutName {
            text: text.to_owned(),
            base_len: text.len(),
            grid: None,
        };
        let Some(at) = text.rfind(GRID_MARK).filter(|&i| i > 0) else {
            return Ok(plain());
        };
        let (base, spec) = (&text[..at], &text[at + 1..]);
        let Some((a, b)) = spec.split_once('x') else {
            return Ok(plain());
        };
        let (Ok(k), Ok(k2)) = (a.parse::<usize>(), b.parse::<usize>()) else {
            return Ok(plain());
        };
        if k != k2 || k == 0 || k > MAX_GRID {
            return Err(CutSpecError::BadGrid {
                cut: text.to_owned(),
                base: base.to_owned(),
            });
        }
        Ok(CutName {
            text: text.to_owned(),
            base_len: at,
            grid: Some(k),
        })
    }

    /// The cut as written (`stage6@2x2`): what fingerprints and cut sets record.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The cut without its grid (`stage6`).
    pub fn base(&self) -> &str {
        &self.text[..self.base_len]
    }

    /// `Some(K)` for a cut pooled on a K×K grid.
    pub fn grid(&self) -> Option<usize> {
        self.grid
    }
}

impl AsRef<str> for CutName {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for CutName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for CutName {
    type Err = CutSpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CutName::parse(s)
    }
}

/// What `--layer` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LayerSpec {
    /// Not given: the model's default cut.
    #[default]
    Default,
    /// `all`: every named cut of a registry model, in registry order.
    All,
    /// One or several cuts, in the order written (no repeats).
    Cuts(Vec<CutName>),
}

impl LayerSpec {
    /// `None` → [`LayerSpec::Default`]; else [`LayerSpec::from_str`].
    pub fn parse(layer: Option<&str>) -> Result<LayerSpec, CutSpecError> {
        layer.map_or(Ok(LayerSpec::Default), str::parse)
    }

    /// One named cut.
    pub fn one(cut: &str) -> Result<LayerSpec, CutSpecError> {
        Ok(LayerSpec::Cuts(vec![CutName::parse(cut.trim())?]))
    }

    /// True when it may give more than one cut (`all`, or a list of several).
    pub fn is_several(&self) -> bool {
        match self {
            LayerSpec::Default => false,
            LayerSpec::All => true,
            LayerSpec::Cuts(c) => c.len() > 1,
        }
    }

    /// The cuts named (empty for [`LayerSpec::Default`] and [`LayerSpec::All`], which the
    /// model's entry resolves).
    pub fn cuts(&self) -> &[CutName] {
        match self {
            LayerSpec::Cuts(c) => c,
            _ => &[],
        }
    }
}

impl FromStr for LayerSpec {
    type Err = CutSpecError;
    /// `all`, or cuts separated by [`CUT_SEPARATOR`] (blanks around each ignored).
    fn from_str(layer: &str) -> Result<Self, Self::Err> {
        if layer.trim() == ALL_CUTS {
            return Ok(LayerSpec::All);
        }
        let mut cuts: Vec<CutName> = Vec::new();
        for c in layer.split(CUT_SEPARATOR).map(str::trim) {
            if c.is_empty() {
                continue;
            }
            let cut = CutName::parse(c)?;
            if cuts.contains(&cut) {
                return Err(CutSpecError::Repeated(c.to_owned()));
            }
            cuts.push(cut);
        }
        if cuts.is_empty() {
            return Err(CutSpecError::Empty(layer.to_owned()));
        }
        Ok(LayerSpec::Cuts(cuts))
    }
}

impl fmt::Display for LayerSpec {
    /// The spelling that parses back to it (`Default` shows as nothing).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerSpec::Default => Ok(()),
            LayerSpec::All => f.write_str(ALL_CUTS),
            LayerSpec::Cuts(c) => f.write_str(&join_cuts(c)),
        }
    }
}

/// The cut names joined by [`CUT_SEPARATOR`]: the `layer` of an extraction of several cuts.
pub fn join_cuts<S: AsRef<str>>(cuts: &[S]) -> String {
    cuts.iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(&CUT_SEPARATOR.to_string())
}

/// The cuts whose codes a head reads side by side (`features+stage6`): one, or a
/// concatenation. A second backbone's cut is named `BACKBONE/cut`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutCombo(Vec<String>);

impl CutCombo {
    pub fn new<S: Into<String>>(parts: impl IntoIterator<Item = S>) -> CutCombo {
        CutCombo(parts.into_iter().map(Into::into).collect())
    }

    pub fn parts(&self) -> &[String] {
        &self.0
    }

    pub fn into_parts(self) -> Vec<String> {
        self.0
    }
}

impl FromStr for CutCombo {
    type Err = CutSpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<String> = s
            .split(PAIR_MARK)
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        if parts.is_empty() {
            return Err(CutSpecError::EmptyCombo(s.to_owned()));
        }
        for (i, p) in parts.iter().enumerate() {
            if parts[..i].contains(p) {
                return Err(CutSpecError::Repeated(p.clone()));
            }
        }
        Ok(CutCombo(parts))
    }
}

impl fmt::Display for CutCombo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(&PAIR_MARK.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_are_split_off_cut_names() {
        let c = CutName::parse("stage6@2x2").unwrap();
        assert_eq!(
            (c.base(), c.grid(), c.as_str()),
            ("stage6", Some(2), "stage6@2x2")
        );
        let c = CutName::parse("stage6").unwrap();
        assert_eq!((c.base(), c.grid()), ("stage6", None));
        assert_eq!(CutName::parse("@classifier_input").unwrap().grid(), None);
        let c = CutName::parse("@last:Conv@3x3").unwrap();
        assert_eq!((c.base(), c.grid()), ("@last:Conv", Some(3)));
        assert_eq!(CutName::parse("node@home").unwrap().base(), "node@home");
        for bad in ["s@2x3", "s@0x0", "s@9x9"] {
            let e = CutName::parse(bad).unwrap_err().to_string();
            assert!(e.contains("same K on both sides"), "{e}");
        }
    }

    #[test]
    fn layer_specs_parse_lists_all_and_refuse_empty_or_repeated() {
        assert_eq!(LayerSpec::parse(None).unwrap(), LayerSpec::Default);
        assert_eq!(" all ".parse::<LayerSpec>().unwrap(), LayerSpec::All);
        let s: LayerSpec = "features, stage6@2x2,".parse().unwrap();
        let names: Vec<&str> = s.cuts().iter().map(CutName::as_str).collect();
        assert_eq!(names, ["features", "stage6@2x2"]);
        assert!(s.is_several());
        assert_eq!(s.to_string(), "features,stage6@2x2");
        assert!(!LayerSpec::one("features").unwrap().is_several());
        assert_eq!(
            ",".parse::<LayerSpec>().unwrap_err(),
            CutSpecError::Empty(",".into())
        );
        assert_eq!(
            "a,b,a".parse::<LayerSpec>().unwrap_err(),
            CutSpecError::Repeated("a".into())
        );
        assert!("a,b@2x3".parse::<LayerSpec>().is_err());
    }

    #[test]
    fn combos_split_on_plus_and_print_back() {
        let c: CutCombo = "features+mobilenetv2/features".parse().unwrap();
        assert_eq!(c.parts(), ["features", "mobilenetv2/features"]);
        assert_eq!(c.to_string(), "features+mobilenetv2/features");
        assert!("+".parse::<CutCombo>().is_err());
        assert!("a+a".parse::<CutCombo>().is_err());
    }
}
