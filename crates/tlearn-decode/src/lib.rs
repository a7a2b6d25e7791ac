//! tlearn-decode: image file bytes → upright 8-bit RGB, the first step of extraction.
//!
//! - [`decode`]: every format (content-sniffed), EXIF orientation, alpha, decompression bombs,
//!   the per-image limits;
//! - [`jpeg`]: the JPEG policy, in one place (reduced-size decoding and the decoder each size
//!   takes, truncation, a progressive file's memory), using
//! - [`jpeg_eighth`]: baseline JPEGs at 1/8 scale, byte-identical to libjpeg-turbo and faster,
//! - [`jpeg_structure`]: the marker walk that tells a truncated JPEG on zune-jpeg's path;
//! - [`budget`]: the memory budget for decoded pixels shared by a run's threads;
//! - [`pixels`]: the raw-pixels baseline "backbone" (a small resized image, flattened).
//!
//! The value types it shares with the cache format (`DecodeMode`, `Preprocess`) are
//! `tlearn-cache`'s.

pub mod budget;
pub mod decode;
pub mod jpeg;
pub mod jpeg_eighth;
pub mod jpeg_structure;
pub mod pixels;
