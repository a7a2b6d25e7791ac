"""A small deterministic ONNX graph builder shared by the torch-free converters
(``convert_squeezenet.py``, ``convert_mobilenetv2.py``), plus the numpy operators of their
reference forward passes (float64, NCHW), so each converter's graph and its reference are written
from the same weight arrays but share no code path that could hide a mistake in both.

Nodes and initializers are kept in creation order and serialised with
``SerializeToString(deterministic=True)``, so the same weights give the same bytes (the registry
pins the sha256 of each converted file).
"""

from __future__ import annotations

import numpy as np

OPSET = 13
IR_VERSION = 8


class Graph:
    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []

    def const(self, name: str, arr: np.ndarray) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(self, op: str, inputs: list[str], out: str, **attrs) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x: str, out: str, w: np.ndarray, b: np.ndarray, stride: int = 1,
             pads: tuple[int, int, int, int] = (0, 0, 0, 0), groups: int = 1) -> str:
        """Conv with float32 weights [O, I/groups, kh, kw] and bias; pads (top, left, bottom, right)."""
        kh, kw = w.shape[2:]
        return self.node(
            "Conv",
            [x, self.const(out + ".w", w.astype(np.float32)), self.const(out + ".b", b.astype(np.float32))],
            out,
            kernel_shape=[int(kh), int(kw)],
            strides=[stride, stride],
            pads=list(pads),
            group=groups,
        )

    def model(self, name: str, inputs: list, outputs: list, producer: str, doc: str):
        import onnx
        from onnx import helper

        graph = helper.make_graph(self.nodes, name, inputs, outputs, initializer=self.inits)
        m = helper.make_model(
            graph, producer_name=producer, producer_version="1",
            opset_imports=[helper.make_opsetid("", OPSET)],
        )
        m.ir_version = IR_VERSION
        m.doc_string = doc
        onnx.checker.check_model(m)
        return m


def fold_bn(w: np.ndarray, gamma, beta, mean, var, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Fold an inference BatchNorm into the bias-free conv before it, in float64."""
    scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    wf = w.astype(np.float64) * scale[:, None, None, None]
    bf = beta.astype(np.float64) - mean.astype(np.float64) * scale
    return wf, bf


def pool_pads(size: int, k: int, s: int) -> tuple[int, int]:
    """Caffe's ceil-mode pooling as floor mode plus end padding: (output size, extra end pad)."""
    out = -(-(size - k) // s) + 1
    if (out - 1) * s >= size:  # Caffe drops a window that would start in the padding
        out -= 1
    return out, max((out - 1) * s + k - size, 0)


# ----------------------------------------------------------------------------- numpy reference ops
# Deliberately naive (an explicit loop over kernel taps), float64, NCHW.


def np_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int = 1,
            pads: tuple[int, int, int, int] = (0, 0, 0, 0), groups: int = 1) -> np.ndarray:
    n, c, h, wd = x.shape
    o, ig, kh, kw = w.shape
    t, l, bo, r = pads
    xp = np.pad(x, ((0, 0), (0, 0), (t, bo), (l, r)))
    oh = (h + t + bo - kh) // stride + 1
    ow = (wd + l + r - kw) // stride + 1
    og = o // groups
    out = np.zeros((n, o, oh, ow), dtype=np.float64)
    for g in range(groups if groups > 1 else 1):
        xs = xp[:, g * ig:(g + 1) * ig] if groups > 1 else xp
        ws = w[g * og:(g + 1) * og] if groups > 1 else w
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
                out[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", patch, ws[:, :, i, j])
    return out + b.reshape(1, -1, 1, 1)


def np_depthwise(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """Depthwise conv, w [C, 1, k, k], symmetric padding."""
    n, c, h, wd = x.shape
    k = w.shape[-1]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = (h + 2 * pad - k) // stride + 1
    ow = (wd + 2 * pad - k) // stride + 1
    out = np.zeros((n, c, oh, ow), dtype=np.float64)
    for i in range(k):
        for j in range(k):
            out += xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] * w[None, :, 0, i, j, None, None]
    return out + b.reshape(1, -1, 1, 1)


def np_maxpool_ceil(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """Caffe max pooling (ceil mode, windows clipped at the border)."""
    n, c, h, w = x.shape
    oh, _ = pool_pads(h, k, s)
    ow, _ = pool_pads(w, k, s)
    out = np.empty((n, c, oh, ow), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = x[:, :, i * s:min(i * s + k, h), j * s:min(j * s + k, w)].max(axis=(2, 3))
    return out
