pub mod encoder;
pub mod eval;
pub mod export;
pub mod extract;
pub mod layers;
pub mod predict;
pub mod show;
pub mod train;
