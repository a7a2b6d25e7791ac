"""Read PyTorch's legacy (pre-1.6, non-zip) checkpoint format without torch.

Shared by the converters (``convert_efficientnet_lite.py``, ``convert_mobilenetv2.py``). A legacy
file is five consecutive pickles (magic number, protocol version, sys info, the object with
persistent ids standing for storages, the list of storage keys), followed by each storage's raw
data in key order, each preceded by its element count as a little-endian int64. Torch classes are
resolved to inert stand-ins (nothing from the file is executed); only a flat state dict of tensors
is accepted.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

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


class PthError(ValueError):
    """A checkpoint that is not a readable legacy PyTorch file."""


@dataclass
class _StorageType:
    name: str

    @property
    def dtype(self):
        return _STORAGE_DTYPES[self.name]


@dataclass
class _StorageRef:
    key: str
    dtype: type
    numel: int


@dataclass
class _TensorRef:
    storage: _StorageRef
    offset: int
    size: tuple
    stride: tuple


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, hooks=None, *a):
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad=False, hooks=None, *a):
    return data


class _LegacyUnpickler(pickle.Unpickler):
    """Resolves torch classes to inert stand-ins; storages become `_StorageRef`s."""

    def __init__(self, f, storages: dict):
        super().__init__(f)
        self._storages = storages

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_tensor":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise PthError(f"unsupported class in checkpoint: {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise PthError(f"unsupported persistent id {pid!r}")
        _, stype, key, _location, numel, view = pid[:6] if len(pid) >= 6 else (*pid, None)
        if view is not None:
            raise PthError("storage views are not supported")
        if not isinstance(stype, _StorageType):
            raise PthError(f"unexpected storage type {stype!r}")
        ref = self._storages.get(key)
        if ref is None:
            ref = _StorageRef(str(key), stype.dtype, int(numel))
            self._storages[key] = ref
        return ref


def load_legacy_pth(data: bytes) -> "OrderedDict[str, np.ndarray]":
    """Parse a legacy (non-zip) PyTorch checkpoint holding a flat state dict."""
    if data[:2] == b"PK":
        raise PthError("checkpoint is a zip (PyTorch >= 1.6 format), expected the legacy format")
    f = io.BytesIO(data)
    storages: dict = {}
    try:
        magic = pickle.load(f)
        if magic != LEGACY_MAGIC:
            raise PthError("not a PyTorch legacy checkpoint (bad magic number)")
        proto = pickle.load(f)
        if proto != LEGACY_PROTOCOL:
            raise PthError(f"unsupported legacy protocol version {proto}")
        sys_info = pickle.load(f)
        if not sys_info.get("little_endian", True):
            raise PthError("big-endian checkpoints are not supported")
        obj = _LegacyUnpickler(f, storages).load()
        keys = pickle.load(f)
    except PthError:
        raise
    except Exception as e:  # truncated or garbage pickles
        raise PthError(f"cannot unpickle checkpoint header: {e}") from e

    arrays = {}
    for key in keys:
        head = f.read(8)
        if len(head) != 8:
            raise PthError(f"checkpoint truncated before storage {key}")
        (numel,) = struct.unpack("<q", head)
        ref = storages.get(key)
        if ref is None:
            raise PthError(f"storage {key} is listed but never referenced")
        if numel != ref.numel:
            raise PthError(f"storage {key}: {numel} elements on disk, {ref.numel} expected")
        nbytes = numel * np.dtype(ref.dtype).itemsize
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise PthError(f"checkpoint truncated inside storage {key}")
        arrays[key] = np.frombuffer(raw, dtype=np.dtype(ref.dtype).newbyteorder("<"))
    if f.read(1):
        raise PthError("trailing bytes after the last storage")
    if not isinstance(obj, dict):
        raise PthError(f"checkpoint holds a {type(obj).__name__}, expected a state dict")

    out: "OrderedDict[str, np.ndarray]" = OrderedDict()
    for name, t in obj.items():
        if not isinstance(t, _TensorRef):
            raise PthError(f"entry {name} is not a tensor")
        base = arrays[t.storage.key]
        item = base.itemsize
        need = t.offset + sum((s - 1) * st for s, st in zip(t.size, t.stride)) + 1 if t.size else t.offset + 1
        if any(s == 0 for s in t.size):
            out[name] = np.zeros(t.size, dtype=base.dtype)
            continue
        if need > base.size:
            raise PthError(f"tensor {name} reaches past its storage")
        view = np.lib.stride_tricks.as_strided(
            base[t.offset :], shape=t.size, strides=tuple(s * item for s in t.stride)
        )
        out[name] = np.ascontiguousarray(view)
    return out
