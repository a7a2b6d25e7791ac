"""Two implementations of the same small set of layer operations, for the converters whose
architecture is written once as a walk over the weights (``convert_inception_v3.py``,
``convert_resnet.py``, ``convert_keras.py``):

- ``OnnxOps`` emits ONNX nodes into ``onnx_graph.Graph`` (BatchNorm folded into the conv before
  it, in float64, then cast to float32); every layer output is a tensor named after the layer, so
  each can be a cut point;
- ``NumpyOps`` computes the same layers in float64 numpy, NCHW, straight from the weights (BN
  applied as BN, not folded; convolutions as a sum over kernel taps of BLAS products; pools with
  explicit padding and counts). It shares no numeric code with the ONNX runtimes it is compared
  against, so a wrong padding, pool count or folding shows up as a difference.

A walk calls ``ops.conv``, ``ops.relu``, ... with the layer's name and receives a handle: a tensor
name (ONNX) or an array (numpy). ``ops.hw(h)`` gives a handle's spatial size, which the walks
need for TensorFlow's "same" padding. ``NumpyOps.out`` keeps every named output.
"""

from __future__ import annotations

import math

import numpy as np

from onnx_graph import Graph

Pads = tuple[int, int, int, int]  # top, left, bottom, right


def same_pads(size: int, k: int, s: int) -> tuple[int, int]:
    """TensorFlow "same" padding (before, after) of one spatial axis."""
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def same_pads2d(hw: tuple[int, int], k: int, s: int) -> Pads:
    (t, b), (l, r) = same_pads(hw[0], k, s), same_pads(hw[1], k, s)
    return t, l, b, r


def out_size(size: int, k: int, s: int, before: int, after: int) -> int:
    return (size + before + after - k) // s + 1


BN = tuple  # (gamma or None, beta or None, mean, var, eps)


def fold_bn(w: np.ndarray, b: np.ndarray | None, bn: BN | None) -> tuple[np.ndarray, np.ndarray]:
    """Conv weights [O, ...] and bias with an inference BatchNorm after them folded in, float64."""
    w = w.astype(np.float64)
    b = np.zeros(w.shape[0]) if b is None else b.astype(np.float64)
    if bn is None:
        return w, b
    gamma, beta, mean, var, eps = bn
    gamma = np.ones(w.shape[0]) if gamma is None else gamma.astype(np.float64)
    beta = np.zeros(w.shape[0]) if beta is None else beta.astype(np.float64)
    scale = gamma / np.sqrt(var.astype(np.float64) + eps)
    return w * scale.reshape(-1, *([1] * (w.ndim - 1))), (b - mean.astype(np.float64)) * scale + beta


class OnnxOps:
    def __init__(self, input_name: str, input_shape: tuple[int, int, int]):
        self.g = Graph()
        self.shapes = {input_name: input_shape}  # name -> (C, H, W) or (C,)

    def hw(self, x: str) -> tuple[int, int]:
        return self.shapes[x][1:]

    def channels(self, x: str) -> int:
        return self.shapes[x][0]

    def _set(self, out: str, shape: tuple) -> str:
        if out in self.shapes:
            raise ValueError(f"tensor {out} written twice")
        self.shapes[out] = shape
        return out

    def conv(self, x: str, out: str, w: np.ndarray, b: np.ndarray | None = None, stride: int = 1,
             pads: Pads = (0, 0, 0, 0), groups: int = 1, bn: BN | None = None) -> str:
        wf, bf = fold_bn(w, b, bn)
        kh, kw = w.shape[2:]
        c, h, wd = self.shapes[x]
        if w.shape[1] * groups != c:
            raise ValueError(f"{out}: weights {w.shape} (groups {groups}) do not fit {c} input channels")
        t, l, bo, r = pads
        self.g.conv(x, out, wf, bf, stride=stride, pads=pads, groups=groups)
        return self._set(out, (w.shape[0], out_size(h, kh, stride, t, bo), out_size(wd, kw, stride, l, r)))

    def relu(self, x: str, out: str) -> str:
        self.g.node("Relu", [x], out)
        return self._set(out, self.shapes[x])

    def maxpool(self, x: str, out: str, k: int, s: int, pads: Pads = (0, 0, 0, 0)) -> str:
        c, h, w = self.shapes[x]
        self.g.node("MaxPool", [x], out, kernel_shape=[k, k], strides=[s, s], pads=list(pads))
        t, l, bo, r = pads
        return self._set(out, (c, out_size(h, k, s, t, bo), out_size(w, k, s, l, r)))

    def avgpool(self, x: str, out: str, k: int, s: int, pads: Pads, count_include_pad: bool) -> str:
        c, h, w = self.shapes[x]
        self.g.node("AveragePool", [x], out, kernel_shape=[k, k], strides=[s, s], pads=list(pads),
                    count_include_pad=int(count_include_pad))
        t, l, bo, r = pads
        return self._set(out, (c, out_size(h, k, s, t, bo), out_size(w, k, s, l, r)))

    def gap(self, x: str, out: str) -> str:
        """Global average over space, flattened to [N, C]."""
        self.g.node("GlobalAveragePool", [x], out + ".map")
        self.g.node("Flatten", [out + ".map"], out, axis=1)
        return self._set(out, (self.shapes[x][0],))

    def add(self, a: str, b: str, out: str) -> str:
        if self.shapes[a] != self.shapes[b]:
            raise ValueError(f"{out}: adding {self.shapes[a]} and {self.shapes[b]}")
        self.g.node("Add", [a, b], out)
        return self._set(out, self.shapes[a])

    def concat(self, xs: list[str], out: str) -> str:
        hw = {self.shapes[x][1:] for x in xs}
        if len(hw) != 1:
            raise ValueError(f"{out}: concatenating maps of sizes {hw}")
        self.g.node("Concat", xs, out, axis=1)
        return self._set(out, (sum(self.shapes[x][0] for x in xs), *hw.pop()))

    def dense(self, x: str, out: str, w: np.ndarray, b: np.ndarray) -> str:
        """x [N, I] times w [I, O] plus b."""
        if self.shapes[x] != (w.shape[0],):
            raise ValueError(f"{out}: weights {w.shape} do not fit input {self.shapes[x]}")
        self.g.node("Gemm", [x, self.g.const(out + ".w", w.astype(np.float32)),
                             self.g.const(out + ".b", b.astype(np.float32))], out)
        return self._set(out, (w.shape[1],))

    def dense_nhwc(self, x: str, out: str, w: np.ndarray, b: np.ndarray) -> str:
        """Keras ``Flatten`` (of an NHWC map: order h, w, c) then ``Dense`` with kernel w [H*W*C, O].
        The graph's maps are NCHW, so the kernel rows are permuted to (c, h, w) order."""
        c, h, wd = self.shapes[x]
        if w.shape[0] != c * h * wd:
            raise ValueError(f"{out}: weights {w.shape} do not fit a flattened {(c, h, wd)} map")
        w_chw = w.reshape(h, wd, c, -1).transpose(2, 0, 1, 3).reshape(c * h * wd, -1)
        self.g.node("Flatten", [x], out + ".flat", axis=1)
        self.shapes[out + ".flat"] = (c * h * wd,)
        return self.dense(out + ".flat", out, w_chw, b)


class NumpyOps:
    def __init__(self):
        self.out: dict[str, np.ndarray] = {}

    def hw(self, x: np.ndarray) -> tuple[int, int]:
        return x.shape[2:]

    def channels(self, x: np.ndarray) -> int:
        return x.shape[1]

    def _set(self, out: str, v: np.ndarray) -> np.ndarray:
        self.out[out] = v
        return v

    def conv(self, x, out, w, b=None, stride=1, pads=(0, 0, 0, 0), groups=1, bn=None):
        t, l, bo, r = pads
        xp = np.pad(x, ((0, 0), (0, 0), (t, bo), (l, r)))
        n, c, h, wd = xp.shape
        o, ig, kh, kw = w.shape
        oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
        w = w.astype(np.float64)
        y = np.zeros((n, o, oh, ow))
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, :, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]
                if groups == 1:
                    y += np.tensordot(w[:, :, i, j], patch, axes=([1], [1])).transpose(1, 0, 2, 3)
                elif groups == c and ig == 1:  # depthwise, channel multiplier o / c
                    m = o // c
                    y += np.repeat(patch, m, axis=1) * w[None, :, 0, i, j, None, None]
                else:
                    raise ValueError(f"{out}: groups {groups} not supported by the reference")
        if b is not None:
            y += b.astype(np.float64).reshape(1, -1, 1, 1)
        if bn is not None:
            gamma, beta, mean, var, eps = bn
            col = lambda a: a.astype(np.float64).reshape(1, -1, 1, 1)  # noqa: E731
            y = (y - col(mean)) / np.sqrt(col(var) + eps)
            if gamma is not None:
                y = y * col(gamma)
            if beta is not None:
                y = y + col(beta)
        return self._set(out, y)

    def relu(self, x, out):
        return self._set(out, np.maximum(x, 0.0))

    def maxpool(self, x, out, k, s, pads=(0, 0, 0, 0)):
        t, l, bo, r = pads
        xp = np.pad(x, ((0, 0), (0, 0), (t, bo), (l, r)), constant_values=-np.inf)
        h, w = xp.shape[2:]
        oh, ow = (h - k) // s + 1, (w - k) // s + 1
        y = np.full(x.shape[:2] + (oh, ow), -np.inf)
        for i in range(k):
            for j in range(k):
                y = np.maximum(y, xp[:, :, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s])
        return self._set(out, y)

    def avgpool(self, x, out, k, s, pads, count_include_pad):
        t, l, bo, r = pads
        xp = np.pad(x, ((0, 0), (0, 0), (t, bo), (l, r)))
        ones = np.pad(np.ones((1, 1) + x.shape[2:]), ((0, 0), (0, 0), (t, bo), (l, r)),
                      constant_values=float(count_include_pad))
        h, w = xp.shape[2:]
        oh, ow = (h - k) // s + 1, (w - k) // s + 1
        total = np.zeros(x.shape[:2] + (oh, ow))
        count = np.zeros((1, 1, oh, ow))
        for i in range(k):
            for j in range(k):
                sl = (slice(None), slice(None), slice(i, i + s * (oh - 1) + 1, s), slice(j, j + s * (ow - 1) + 1, s))
                total += xp[sl]
                count += ones[sl]
        return self._set(out, total / count)

    def gap(self, x, out):
        return self._set(out, x.mean(axis=(2, 3)))

    def add(self, a, b, out):
        return self._set(out, a + b)

    def concat(self, xs, out):
        return self._set(out, np.concatenate(xs, axis=1))

    def dense(self, x, out, w, b):
        return self._set(out, x @ w.astype(np.float64) + b.astype(np.float64))

    def dense_nhwc(self, x, out, w, b):
        flat = x.transpose(0, 2, 3, 1).reshape(len(x), -1)  # Keras Flatten of the NHWC map
        return self.dense(flat, out, w, b)
