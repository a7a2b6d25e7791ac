//! The channel-blocked layout tlearn's operators pass between themselves: a `C × H × W` map
//! (planar, tract's NCHW without its batch axis) held as `C/16 × H × W × 16`, the 16 channels of
//! a block side by side at each pixel ("NCHW16c", as oneDNN and onnxruntime's NCHWc transformer
//! keep it). This module is the one definition of that format: its block width, its shape in a
//! tract graph and the conversions the tests compare through.
//!
//! Why: the 1×1 kernel's small-plane tiles (`Layout::Lanes`) hold 16 output channels per vector
//! and the blocked depthwise path 16 channels per vector; between two of them a planar tensor
//! costs scatters and gathers in the first and two 16×16 transposes per block in the second
//! (up to 0.45 of Lite0's 1.6 ms of depthwise work, measured by skipping them). Where producer
//! and every consumer of a tensor speak the blocked layout, [`super::rewrite`] keeps it blocked.
//!
//! The 16 channels of a block cover the same `16 × H × W` floats in both layouts (a block of
//! planes is contiguous in NCHW too), so an operator's loop over blocks is the same either way.

use tract_onnx::prelude::*;

/// Channels per block: the lanes of one AVX-512 vector of f32.
pub const BLOCK: usize = 16;

/// Which of an operator's tensors are channel-blocked (else planar).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Blocked {
    pub input: bool,
    /// The skip connection's tensor (1×1 convolutions only).
    pub residual: bool,
    pub output: bool,
}

impl Blocked {
    /// Every tensor planar.
    pub const PLANAR: Blocked = Blocked {
        input: false,
        residual: false,
        output: false,
    };

    pub fn any(self) -> bool {
        self.input || self.residual || self.output
    }
}

/// The tract shape of a planar `[.., C, H, W]` map held blocked: `[.., C/16, H, W, 16]`, or
/// `None` when `C` is not a whole number of blocks or the shape has fewer than three axes.
pub fn blocked_shape(planar: &[usize]) -> Option<TVec<usize>> {
    let n = planar.len();
    if n < 3 || !planar[n - 3].is_multiple_of(BLOCK) {
        return None;
    }
    let mut s: TVec<usize> = planar[..n - 3].into();
    s.extend([planar[n - 3] / BLOCK, planar[n - 2], planar[n - 1], BLOCK]);
    Some(s)
}

/// `planar` (`channels × hw`, channels a multiple of [`BLOCK`]) in the blocked layout.
pub fn to_blocked(planar: &[f32], channels: usize, hw: usize) -> Vec<f32> {
    assert!(channels.is_multiple_of(BLOCK), "{channels} channels");
    assert_eq!(planar.len(), channels * hw);
    let mut out = vec![0.0; planar.len()];
    for c in 0..channels {
        let (b, lane) = (c / BLOCK, c % BLOCK);
        for p in 0..hw {
            out[(b * hw + p) * BLOCK + lane] = planar[c * hw + p];
        }
    }
    out
}

/// The inverse of [`to_blocked`].
pub fn to_planar(blocked: &[f32], channels: usize, hw: usize) -> Vec<f32> {
    assert!(channels.is_multiple_of(BLOCK), "{channels} channels");
    assert_eq!(blocked.len(), channels * hw);
    let mut out = vec![0.0; blocked.len()];
    for c in 0..channels {
        let (b, lane) = (c / BLOCK, c % BLOCK);
        for p in 0..hw {
            out[c * hw + p] = blocked[(b * hw + p) * BLOCK + lane];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_round_trip() {
        assert_eq!(
            blocked_shape(&[1, 192, 7, 7]).unwrap().to_vec(),
            vec![1, 12, 7, 7, 16]
        );
        assert_eq!(
            blocked_shape(&[32, 14, 14]).unwrap().to_vec(),
            vec![2, 14, 14, 16]
        );
        assert!(blocked_shape(&[40, 7, 7]).is_none());
        assert!(blocked_shape(&[16, 7]).is_none());
        let x: Vec<f32> = (0..32 * 5).map(|i| i as f32).collect();
        let b = to_blocked(&x, 32, 5);
        // Channel 17 at pixel 3: block 1, lane 1.
        assert_eq!(b[(5 + 3) * BLOCK + 1], x[17 * 5 + 3]);
        assert_eq!(to_planar(&b, 32, 5), x);
    }
}
