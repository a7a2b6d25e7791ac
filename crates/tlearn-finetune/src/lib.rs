//! tlearn-finetune: the CS231n "large data" recipe on cached activations. The spatial map a cut
//! gives (`tlearn extract --layer stage6 --pool flatten`) is the input; the backbone's own layers
//! after the cut (read from its ONNX file, batch norm folded) and a new linear classifier are
//! trained on it, so no image is decoded twice and only the top of the network needs gradients.
//!
//! - `block`: the layers after a cut, with their pretrained weights, read from the ONNX graph;
//! - `net`, `depthwise`: the network's forward and backward passes, AdamW;
//! - `train`: linear probe, then joint fine-tuning with early stopping;
//! - `saved`: head.json + the numpy-readable weight sidecar, loaded with shape checks;
//! - `pipeline`: the shared split, training on a spatial cache, held-out evaluation;
//! - `contest`: fine-tuning as a candidate of `train --head auto`, on the frozen heads' folds.

pub mod block;
pub mod contest;
pub mod depthwise;
pub mod net;
pub mod pipeline;
pub mod saved;
pub mod train;

pub use block::TopBlock;
pub use saved::FinetuneHead;
pub use train::{fit, FinetuneParams, Fitted};
