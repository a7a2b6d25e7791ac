//! tlearn-ops: tlearn's own tract operators for the convolutions EfficientNet-style networks
//! spend their time in, and the one graph transform that puts them in place: [`TlearnOps`], a
//! tract `ModelTransform` named `tlearn_ops` ([`apply`] when the counts are wanted), its
//! [`Ops`] chosen by the caller (`BackboneOptions` of tlearn-extract's backbone loader; the
//! CLI maps `TLEARN_OPS` to it). The crate knows tract's graphs and nothing of tlearn's
//! registry, images or caches.
//!
//! - [`channel_blocks`]: the channel-blocked layout (16 channels per pixel) the operators pass
//!   between themselves where producer and consumers all take it;
//! - [`depthwise_kernel`]: the arithmetic of a depthwise convolution (AVX-512 / AVX / portable);
//! - [`depthwise_blocked`]: the same arithmetic 16 channels per vector (AVX-512), for the
//!   narrow planes where one channel per vector leaves lanes empty;
//! - [`depthwise_op`]: the tract operator running them, bit-identical to tract's;
//! - [`pointwise_kernel`]: the arithmetic of a 1×1 convolution with AVX-512 (no packing);
//! - [`pointwise_op`]: 1×1 convolutions at batch 1, with that kernel or one `gemm` call each;
//! - [`stem_kernel`], [`stem_op`]: the stem (a full convolution over the colour planes), direct;
//! - [`rewrite`]: the graph transform; `graph`: graph queries the operators share (so the
//!   operators do not import the transform that uses them).

mod graph;

pub mod channel_blocks;
pub mod depthwise_blocked;
pub mod depthwise_kernel;
pub mod depthwise_op;
pub mod pointwise_kernel;
pub mod pointwise_op;
pub mod rewrite;
pub mod stem_kernel;
pub mod stem_op;

pub use rewrite::{apply, Ops, Replaced, TlearnOps, UnknownOps};
