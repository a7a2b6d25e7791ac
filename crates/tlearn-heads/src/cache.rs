//! The feature cache the heads read: `tlearn-cache`'s reader (format, shapes, labels and
//! finiteness checked there).

pub use tlearn_cache::FeatureCache;
