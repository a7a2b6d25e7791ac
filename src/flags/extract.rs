//! `tlearn extract`'s flags, as typed.

use std::path::PathBuf;

use clap::Args;
use tlearn_extract::augment::Augment;
use tlearn_extract::budget::ByteSize;
use tlearn_extract::spec::{DecodeMode, Pooling};

#[derive(Args)]
pub struct ExtractArgs {
    /// Dataset folder laid out as DIR/<class>/<image>.
    pub dir: PathBuf,
    /// Output cache folder (created; an existing cache is updated incrementally).
    #[arg(long)]
    pub out: PathBuf,
    /// Backbone name from the registry, `pixels` / `pixelsN` / `pixels-rgbN` (raw-pixel
    /// baseline), or the path of your own ONNX file: then give --layer, and --crop, --mean,
    /// --std, --value-scale, --bgr, --nhwc unless it is a 224 ImageNet-normalised RGB NCHW net.
    #[arg(long, default_value = "efficientnet-lite0")]
    pub model: String,
    /// Cut point: a registry cut name (e.g. `features`) or an ONNX node/tensor name; `CUT@KxK`
    /// (`stage6@2x2`) pools the cut's map over a KxK grid of cells instead of the whole map
    /// (C·K·K values, channel-major; see README "Choosing a backbone and a layer"). Several, comma-separated (`features,stage6,stage5`), or `all` (every named cut of the
    /// registry model), come from one forward pass per image and make OUT a cut set: OUT/cuts.json
    /// and one ordinary cache per cut in OUT/<cut>/. Default: the model's default cut.
    #[arg(long)]
    pub layer: Option<String>,
    /// A second backbone fed the same images in the same pass (each image is read and decoded
    /// once for both), its codes into --out2: what `tlearn fit` and `make features` do with
    /// MobileNetV2 beside EfficientNet-Lite0. The other flags apply to both.
    #[arg(long, requires = "out2")]
    pub model2: Option<String>,
    /// Cut(s) of --model2, as --layer takes them [default: its default cut].
    #[arg(long, requires = "model2")]
    pub layer2: Option<String>,
    /// Output cache folder of --model2's codes.
    #[arg(long, requires = "model2")]
    pub out2: Option<PathBuf>,
    /// How a spatial cut (or each cell of a grid cut) becomes a vector: avg, max or flatten
    /// (not with a grid).
    #[arg(long, default_value = "avg")]
    pub pool: Pooling,
    /// Test-time augmentation: none, flip, crops5 or crops10 (features averaged per image).
    #[arg(long, default_value = "none")]
    pub augment: Augment,
    /// Also keep every augmentation view's codes (OUT/views.npy, [N, V, D]) so that `train`
    /// can use each view of a training image as a row; needs --augment. An updated cache that
    /// has them keeps them.
    #[arg(long)]
    pub keep_views: bool,
    /// JPEG decoding: `reduced` decodes at 1/2, 1/4 or 1/8 scale (DCT domain) when the resize
    /// needs no more pixels, several times faster on camera photos; `full` decodes every pixel
    /// (reproduces reference tensors exactly). Default: the mode of the cache in --out if there
    /// is one, else reduced. The raw-pixel baseline (`--model pixels*`) always decodes fully.
    #[arg(long)]
    pub decode: Option<DecodeMode>,
    /// Worker threads (default: all cores; at most 4 per core and one per image, more is
    /// capped with a note).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Models directory (default: as `tlearn models --help` says).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// Memory for decoded pixels in flight across all threads (e.g. 2GiB, 512MiB): a thread
    /// waits before decoding an image that does not fit; one image larger than the whole budget
    /// is decoded alone. Default: $TLEARN_DECODE_MEMORY, else a quarter of the machine's memory.
    #[arg(long, value_name = "SIZE")]
    pub decode_memory: Option<ByteSize>,
    /// Largest image file read (e.g. 256MiB, 1GiB): larger files are skipped as too large,
    /// from their size, without being read.
    #[arg(long, value_name = "SIZE", default_value = "256MiB")]
    pub max_file_size: ByteSize,
    /// Ignored; kept so that older command lines still run (extraction is a pipeline without
    /// chunks now, and every finished image is journaled at once).
    #[arg(long, hide = true)]
    pub chunk: Option<usize>,
    /// Replace an existing cache made with a different extractor instead of refusing.
    #[arg(long)]
    pub overwrite: bool,
    /// Also write the run summary (JSON) here; it is always written to OUT/summary.json. With
    /// --model2: a list of both summaries.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub custom: super::custom_model::CustomModelArgs,
}
