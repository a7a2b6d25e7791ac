//! tlearn-extract: pretrained CNN backbones run in tract, cut at any node, turning folders of
//! images into cached "CNN codes".
//!
//! Data flows one way: images → `decode` (the `tlearn-decode` crate) → `preprocess` →
//! `backbone` (tract, with the operators and graph transform of the `tlearn-ops` crate) → the
//! feature cache (format and I/O in `tlearn-cache`, re-exported as `cache`).
//! [`Extractor`] is the face the command line and the Python package use: images (paths or
//! bytes) in, codes out.

pub use tlearn_cache as cache;
// Decoding is a crate of its own (`tlearn-decode`); the modules the pipeline's callers use stay
// reachable here under their former paths.
pub use tlearn_decode::{budget, decode, pixels};

pub mod augment;
pub mod backbone;
pub mod classify;
pub mod encoder;
pub mod extract;
pub mod extractor;
pub mod feature_maps;
pub mod grid;
pub mod imagenet;
pub mod listing;
pub mod open;
pub mod preprocess;
pub mod registry;
pub mod spec;
pub mod summary;
pub mod thumbnail;
pub mod views;
pub mod workers;

pub use extractor::{CacheOptions, Codes, Extractor, ExtractorOptions, ItemError};
