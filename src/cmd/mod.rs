//! What each command does with its checked arguments (`crate::flags::hiargs`): open the
//! library's objects, run them, print.

pub mod codes;
pub mod eval;
pub mod export;
pub mod extract;
pub mod finetune;
pub mod fit;
pub mod layers;
pub mod models;
pub mod predict;
pub mod show;
pub mod train;
