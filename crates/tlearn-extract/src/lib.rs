//! tlearn-extract: pretrained CNN backbones run in tract, cut at any node, turning folders of
//! images into cached "CNN codes".
//!
//! Data flows one way: images → `decode`/`preprocess` → `backbone` → `cache`.

pub mod spec;
