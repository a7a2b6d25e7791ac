"""What the Ray and Spark integrations share: paths relative to the data set root, the class
folder as the label, the model file shipped to workers, the fingerprint check on a worker, and
the sidecar of a codes directory. The codes themselves are made by the Rust library
(``Extractor._inner.encode_parquet``), in the one schema ``tlearn export-codes`` writes."""

import json
import os
import tempfile

from . import _tlearn
from . import Extractor, Head

SIDECAR = "_tlearn.json"

# Schemes an engine puts in front of a path (Ray's and Spark's local and object stores).
_SCHEMES = ("file://", "local://")


def strip_scheme(path):
    for s in _SCHEMES:
        if path.startswith(s):
            return path[len(s):]
    return path


def relative(path, root):
    """``(path relative to root with '/', class folder or None)``; a path outside ``root`` is
    refused naming both."""
    p = strip_scheme(str(path)).replace(os.sep, "/")
    r = strip_scheme(str(root)).replace(os.sep, "/").rstrip("/")
    # Spark writes file:/x for file:///x.
    if p.startswith("file:"):
        p = p[len("file:"):]
    if r.startswith("file:"):
        r = r[len("file:"):]
    if p.startswith("//") and not r.startswith("//"):
        p = "/" + p.lstrip("/")
    if not (p == r or p.startswith(r + "/")):
        raise ValueError("{} is not under the data set root {}".format(path, root))
    rel = p[len(r) + 1:]
    label = rel.split("/", 1)[0] if "/" in rel else None
    return rel, label


def class_files(paths, items, root):
    """The files of the layout ``DIR/<class>/<image>``, as ``tlearn extract`` lists them:
    ``(relative paths, labels, items)`` without the files directly under the root (a
    MANIFEST, a README) or hidden ones (a name or folder starting with ``.``)."""
    rel, labels, kept = [], [], []
    for p, item in zip(paths, items):
        r, label = relative(p, root)
        if label is None or any(part.startswith(".") for part in r.split("/")):
            continue
        rel.append(r)
        labels.append(label)
        kept.append(item)
    return rel, labels, kept


def model_payload(model, models_dir=None):
    """``(file name, bytes)`` of the model's ONNX file, read once on the driver."""
    path, name = _tlearn.model_file(os.fspath(model), None if models_dir is None else
                                    os.fspath(models_dir))
    with open(path, "rb") as f:
        return os.path.basename(name), f.read()


def open_on_worker(model, payload, expected, threads, options):
    """An Extractor on a worker, from the model bytes the driver shipped (written once into a
    private folder), refused when its fingerprint is not the driver's."""
    name, data = payload
    folder = tempfile.mkdtemp(prefix="tlearn-model-")
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)
    if str(model).endswith(".onnx") or "/" in str(model):
        ex = Extractor(os.path.join(folder, name), threads=threads, **options)
    else:
        ex = Extractor(model, threads=threads, models_dir=folder, **options)
    check_fingerprint(ex.fingerprint, expected, "this worker's extractor")
    return ex


def differences(a, b, prefix="extractor"):
    """The fields where two fingerprints (dicts) differ, as ``field: a vs b`` lines."""
    out = []
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            out += differences(a.get(k), b.get(k), "{}.{}".format(prefix, k))
    elif a != b:
        out.append("{}: {!r} vs {!r}".format(prefix, a, b))
    return out


def check_fingerprint(got, expected, what, against="the driver's"):
    """Refuse ``got`` unless it equals ``expected``, naming each field that differs."""
    diff = differences(got, expected)
    if diff:
        raise ValueError("{} differs from {}: {}".format(what, against, "; ".join(diff)))


def write_sidecar(out, extractor, dataset):
    """Write ``out/_tlearn.json`` for the codes ``extractor`` made (a local folder; for an
    object store, give a local ``out`` or copy the file beside the shards)."""
    os.makedirs(out, exist_ok=True)
    text = extractor._inner.codes_sidecar_json(str(dataset))
    tmp = os.path.join(out, ".{}.tmp".format(SIDECAR))
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, os.path.join(out, SIDECAR))
    return json.loads(text)


def read_sidecar(codes):
    with open(os.path.join(os.fspath(codes), SIDECAR)) as f:
        return json.load(f)


def checked_head(head, codes):
    """The text of the saved head ``head`` (``head.json``), refused unless it reads the codes
    of ``codes`` (one part, the extractor of the codes' sidecar), naming the field."""
    head, codes = os.fspath(head), os.fspath(codes)
    parts = Head.load(head).parts
    if len(parts) != 1:
        raise ValueError("{}: a head on {} parts; codes directories hold one cut each"
                         .format(head, len(parts)))
    check_fingerprint(parts[0]["extractor"], read_sidecar(codes)["extractor"],
                      "the head's extractor ({})".format(head),
                      "the codes' ({})".format(os.path.join(codes, SIDECAR)))
    with open(head) as f:
        return f.read()


def head_from_text(text):
    """A Head on a worker, from the ``head.json`` text the driver shipped."""
    folder = tempfile.mkdtemp(prefix="tlearn-head-")
    path = os.path.join(folder, "head.json")
    with open(path, "w") as f:
        f.write(text)
    return Head.load(path)
