//! Plain data describing a backbone: where it comes from, what input it takes, where it can be
//! cut. Parsed from `models/registry.toml` (see `registry.rs`) or built for a user's own ONNX file.
//! Everything downstream (preprocessing, cache metadata, saved heads) keys off these values; the
//! value types are part of the cache format and defined in `tlearn-cache`.

pub use tlearn_cache::{ChannelOrder, Layout, Pooling, Preprocess};
