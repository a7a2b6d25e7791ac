//! tlearn-extract: pretrained CNN backbones run in tract, cut at any node, turning folders of
//! images into cached "CNN codes".
//!
//! Data flows one way: images → `decode`/`preprocess` → `backbone` → the feature cache
//! (format and I/O in `tlearn-cache`, re-exported as `cache`). [`Extractor`] is the face the
//! command line and the Python package use: images (paths or bytes) in, codes out.

pub use tlearn_cache as cache;

pub mod augment;
pub mod backbone;
pub mod budget;
pub mod classify;
pub mod decode;
pub mod encoder;
pub mod extract;
pub mod extractor;
pub mod feature_maps;
pub mod grid;
pub mod imagenet;
pub mod jpeg_eighth;
pub mod jpeg_structure;
pub mod listing;
pub mod open;
pub mod ops;
pub mod pixels;
pub mod preprocess;
pub mod registry;
pub mod spec;
pub mod summary;
pub mod thumbnail;
pub mod views;
pub mod workers;

pub use extractor::{CacheOptions, Codes, Extractor, ExtractorOptions, ItemError};
