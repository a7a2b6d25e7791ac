"""Read PyTorch's zip checkpoint format (``torch.save`` since 1.6, and TorchScript archives)
without torch.

A zip checkpoint holds ``<root>/data.pkl`` (the pickled object: a state dict, or for TorchScript
the module tree as ``__torch__.*`` objects built with NEWOBJ and a ``__setstate__`` dict), tensors
as ``torch._utils._rebuild_tensor_v2`` over persistent ids ``('storage', <dtype>Storage, key,
device, numel)``, and each storage's raw little-endian bytes in ``<root>/data/<key>``. Classes are
resolved to inert stand-ins (nothing from the file is executed): torch modules become `Module`
objects holding their attributes, tensors become float32/float64/int64 numpy arrays.

Shared by ``convert_inception_v3.py`` (a TorchScript archive) and ``convert_resnet.py`` (a state
dict). The legacy (pre-1.6) format is ``torch_legacy.py``.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict

import numpy as np

from torch_legacy import PthError

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class Module:
    """Inert stand-in for a pickled TorchScript module: its class name and attributes."""

    cls = "?"

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise PthError(f"{self.cls}: unexpected module state {type(state).__name__}")
        self.__dict__.update(state)

    def __repr__(self):
        return f"<{self.cls}>"

    def children(self) -> "list[tuple[str, Module]]":
        """Sub-modules in attribute order (the order the TorchScript module declared them)."""
        return [(k, v) for k, v in self.__dict__.items() if isinstance(v, Module)]


def _module_class(module: str, name: str) -> type:
    return type(name, (Module,), {"cls": f"{module}.{name}"})


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, zf: zipfile.ZipFile, root: str, modules: bool):
        super().__init__(f)
        self.zf, self.root, self.modules, self.cache = zf, root, modules, {}

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return lambda data, requires_grad=False, hooks=None, *a: data
        if module == "torch" and name in _STORAGE_DTYPES:
            return name
        if module == "torch.jit._pickle" and name in ("build_intlist", "build_doublelist", "build_boollist"):
            return list
        if self.modules and module.startswith("__torch__."):
            return _module_class(module, name)
        raise PthError(f"unsupported class in checkpoint: {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise PthError(f"unsupported persistent id {pid!r}")
        _, stype, key, _device, numel = pid[:5]
        if stype not in _STORAGE_DTYPES:
            raise PthError(f"unsupported storage type {stype!r}")
        if key not in self.cache:
            try:
                raw = self.zf.read(f"{self.root}/data/{key}")
            except KeyError:
                raise PthError(f"storage {key} is referenced but missing from the archive") from None
            dtype = np.dtype(_STORAGE_DTYPES[stype]).newbyteorder("<")
            if len(raw) != int(numel) * dtype.itemsize:
                raise PthError(f"storage {key}: {len(raw)} bytes, {numel} elements of {stype} expected")
            self.cache[key] = np.frombuffer(raw, dtype=dtype)
        return self.cache[key]


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, *a):
    size, stride, offset = tuple(int(s) for s in size), tuple(int(s) for s in stride), int(offset)
    if any(s == 0 for s in size):
        return np.zeros(size, dtype=storage.dtype.newbyteorder("="))
    need = offset + sum((s - 1) * st for s, st in zip(size, stride)) + 1
    if offset < 0 or need > storage.size:
        raise PthError(f"tensor {size} at offset {offset} reaches past its storage ({storage.size})")
    item = storage.itemsize
    v = np.lib.stride_tricks.as_strided(storage[offset:], shape=size, strides=tuple(s * item for s in stride))
    return np.ascontiguousarray(v).astype(storage.dtype.newbyteorder("="), copy=False)


def _open(data: bytes) -> tuple[zipfile.ZipFile, str]:
    if data[:2] != b"PK":
        raise PthError("not a zip checkpoint (PyTorch >= 1.6 or TorchScript format)")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        names = zf.namelist()
    except zipfile.BadZipFile as e:
        raise PthError(f"corrupt zip checkpoint: {e}") from e
    roots = [n[: -len("/data.pkl")] for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(roots) != 1:
        raise PthError(f"expected one <root>/data.pkl in the checkpoint, found {len(roots)}")
    return zf, roots[0]


def _load(data: bytes, modules: bool):
    zf, root = _open(data)
    try:
        return _Unpickler(io.BytesIO(zf.read(f"{root}/data.pkl")), zf, root, modules).load()
    except PthError:
        raise
    except Exception as e:  # truncated members, garbage pickles
        raise PthError(f"cannot read checkpoint: {e}") from e


def load_state_dict(data: bytes) -> "OrderedDict[str, np.ndarray]":
    """A zip checkpoint holding a flat state dict (name -> tensor)."""
    obj = _load(data, modules=False)
    if not isinstance(obj, dict):
        raise PthError(f"checkpoint holds a {type(obj).__name__}, expected a state dict")
    out: "OrderedDict[str, np.ndarray]" = OrderedDict()
    for k, v in obj.items():
        if not isinstance(v, np.ndarray):
            raise PthError(f"entry {k} is not a tensor")
        out[str(k)] = v
    return out


def load_module(data: bytes) -> Module:
    """A TorchScript archive: its root module tree (`Module` objects, tensors as numpy)."""
    obj = _load(data, modules=True)
    if not isinstance(obj, Module):
        raise PthError(f"archive holds a {type(obj).__name__}, expected a TorchScript module")
    return obj
