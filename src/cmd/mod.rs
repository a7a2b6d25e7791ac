pub mod encoder;
pub mod eval;
pub mod extract;
pub mod layers;
pub mod predict;
pub mod train;
