//! tlearn-extract: pretrained CNN backbones run in tract, cut at any node, turning folders of
//! images into cached "CNN codes".
//!
//! Data flows one way: images → `decode`/`preprocess` → `backbone` → `cache`.

pub mod augment;
pub mod backbone;
pub mod cache;
pub mod decode;
pub mod depthwise_kernel;
pub mod depthwise_op;
pub mod extract;
pub mod feature_maps;
pub mod imagenet;
pub mod pixels;
pub mod pointwise_op;
pub mod preprocess;
pub mod registry;
pub mod rewrite;
pub mod spec;
pub mod thumbnail;
