//! The flags describing a user's own ONNX file, shared by `extract` and `show`, checked into the
//! library's [`OwnModel`]; the rules (name or path, building the encoder) are
//! `tlearn_extract::open`'s. Also the two environment variables the commands that load a
//! backbone or decode images read: the library takes these settings as arguments and reads no
//! environment.

use std::ffi::OsString;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use tlearn_extract::backbone::{BackboneOptions, Ops};
use tlearn_extract::budget::ByteSize;
use tlearn_extract::open::OwnModel;
use tlearn_extract::spec::{ChannelOrder, Layout};

/// Which of tlearn's operators replace tract's in a backbone: `all` (the default), `planar`
/// (all, with no channel-blocked tensors between them), `gemm`, `depthwise` or `tract` (none). For benchmarks, or to rule tlearn's operators out when
/// chasing a numerical difference.
pub const OPS_ENV: &str = "TLEARN_OPS";

/// The default memory for decoded pixels in flight when `--decode-memory` is not given.
pub const DECODE_MEMORY_ENV: &str = "TLEARN_DECODE_MEMORY";

/// How backbones are loaded: the library's defaults, with [`OPS_ENV`] choosing the operators.
pub fn backbone_options() -> Result<BackboneOptions> {
    options_from(std::env::var(OPS_ENV).ok().as_deref())
}

/// [`backbone_options`] for the value of [`OPS_ENV`] (an unknown one is an error naming it,
/// not a silent default).
fn options_from(ops: Option<&str>) -> Result<BackboneOptions> {
    let ops = match ops {
        Some(v) if !v.trim().is_empty() => v
            .parse::<Ops>()
            .map_err(|e| anyhow!("{OPS_ENV}={v:?}: {e}"))?,
        _ => Ops::default(),
    };
    Ok(BackboneOptions { ops })
}

/// The decode-memory budget in bytes: `flag` when given, else [`DECODE_MEMORY_ENV`] (a
/// malformed value is an error naming it), else `None` (the library's default, a quarter of
/// the machine's memory).
pub fn decode_memory(flag: Option<ByteSize>) -> Result<Option<u64>> {
    decode_memory_from(flag, std::env::var(DECODE_MEMORY_ENV).ok().as_deref())
}

/// [`decode_memory`] for the value of [`DECODE_MEMORY_ENV`].
fn decode_memory_from(flag: Option<ByteSize>, env: Option<&str>) -> Result<Option<u64>> {
    if let Some(b) = flag {
        return Ok(Some(b.as_u64()));
    }
    let Some(v) = env else {
        return Ok(None);
    };
    let size = v.trim().parse::<ByteSize>().map_err(|e| {
        anyhow!("{DECODE_MEMORY_ENV}={v:?} is not a memory size (e.g. 2GiB, 512MiB): {e}")
    })?;
    Ok(Some(size.as_u64()))
}

/// Flags that take three numbers, written `--mean R,G,B` (one word) or `--mean R G B`.
const TRIPLE_FLAGS: [&str; 2] = ["--mean", "--std"];

/// The command line with every `--mean R G B` / `--std R G B` (three words that are numbers,
/// the first without a comma) joined into the one-word form `--mean R,G,B`. clap counts words,
/// not values: letting these flags take one to three words would make `--std 128,128,128 DIR`
/// take the data-set folder as a second value, so the three-word form is joined here instead.
pub fn join_spaced_triples(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let args: Vec<OsString> = args.into_iter().collect();
    let number = |a: &OsString| a.to_str().is_some_and(|s| s.parse::<f32>().is_ok());
    let mut out = Vec::with_capacity(args.len());
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            out.extend(args[i..].iter().cloned());
            break;
        }
        out.push(a.clone());
        i += 1;
        let triple_flag = a.to_str().is_some_and(|s| TRIPLE_FLAGS.contains(&s));
        if triple_flag && i + 3 <= args.len() && args[i..i + 3].iter().all(number) {
            let words: Vec<&str> = args[i..i + 3].iter().filter_map(|w| w.to_str()).collect();
            out.push(words.join(",").into());
            i += 3;
        }
    }
    out
}

/// How to read a user-supplied ONNX file (`--model path/to/net.onnx`).
#[derive(Args, Clone, Debug)]
pub struct CustomModelArgs {
    /// Own ONNX only: square input side the network takes.
    #[arg(long, default_value_t = 224)]
    pub crop: u32,
    /// Own ONNX only: multiplier of 0-255 pixel values before mean/std (1/255 = 0.003921569).
    #[arg(long, default_value_t = 1.0 / 255.0)]
    pub value_scale: f32,
    /// Own ONNX only: per-channel mean (RGB order, in units of pixel*value_scale); `0.5,0.5,0.5`
    /// or `0.5 0.5 0.5`.
    #[arg(
        long,
        value_name = "R,G,B",
        value_delimiter = ',',
        default_value = "0.485,0.456,0.406",
        allow_hyphen_values = true
    )]
    pub mean: Vec<f32>,
    /// Own ONNX only: per-channel standard deviation (RGB order); `R,G,B` or `R G B`.
    #[arg(
        long,
        value_name = "R,G,B",
        value_delimiter = ',',
        default_value = "0.229,0.224,0.225"
    )]
    pub std: Vec<f32>,
    /// Own ONNX only: the network wants BGR instead of RGB.
    #[arg(long)]
    pub bgr: bool,
    /// Own ONNX only: the network wants NHWC instead of NCHW.
    #[arg(long)]
    pub nhwc: bool,
}

impl CustomModelArgs {
    /// The library's description of the file.
    pub fn own_model(&self) -> Result<OwnModel> {
        let arr = |v: &[f32], what: &str| -> Result<[f32; 3]> {
            v.try_into().with_context(|| {
                format!("--{what} needs 3 values (R,G,B or R G B), got {}", v.len())
            })
        };
        Ok(OwnModel {
            crop: self.crop,
            value_scale: self.value_scale,
            mean: arr(&self.mean, "mean")?,
            std: arr(&self.std, "std")?,
            channels: if self.bgr {
                ChannelOrder::Bgr
            } else {
                ChannelOrder::Rgb
            },
            layout: if self.nhwc {
                Layout::Nhwc
            } else {
                Layout::Nchw
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_variable_picks_the_operators_and_a_typo_is_refused() {
        assert_eq!(options_from(None).unwrap().ops, Ops::All);
        assert_eq!(options_from(Some("")).unwrap().ops, Ops::All);
        for ops in Ops::ALL {
            assert_eq!(options_from(Some(&ops.to_string())).unwrap().ops, ops);
        }
        let e = options_from(Some("gemn")).unwrap_err().to_string();
        assert!(e.starts_with("TLEARN_OPS=\"gemn\""), "{e}");
        assert!(e.contains("all, planar, gemm, depthwise, tract"), "{e}");
    }

    #[test]
    fn the_flag_wins_over_the_memory_variable_and_a_bad_size_is_named() {
        assert_eq!(decode_memory_from(None, None).unwrap(), None);
        assert_eq!(
            decode_memory_from(None, Some(" 512 MiB ")).unwrap(),
            Some(512 << 20)
        );
        assert_eq!(
            decode_memory_from(Some(ByteSize::gib(1)), Some("lots")).unwrap(),
            Some(1 << 30)
        );
        let e = decode_memory_from(None, Some("lots"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("TLEARN_DECODE_MEMORY=\"lots\" is not a memory size"),
            "{e}"
        );
    }
}
