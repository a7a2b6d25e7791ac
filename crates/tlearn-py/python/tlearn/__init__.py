"""tlearn from Python: CNN codes of images from pretrained backbones, and saved heads.

The work is done by tlearn's Rust library (the same code as the ``tlearn`` command line), so
codes equal the ``features.npy`` rows ``tlearn extract`` writes, and heads give the
probabilities ``tlearn predict`` prints.

- :class:`Extractor` -- a backbone cut at a layer: image files or bytes in, a float32 array of
  codes out (plus the inputs that could not be read).
- :class:`Head` -- a ``head.json`` written by ``tlearn train``: codes or image files in, class
  probabilities out.
- :func:`read_cache` -- a feature cache written by ``tlearn extract`` (or
  :meth:`Extractor.extract`).
- :mod:`tlearn.sklearn` -- :class:`~tlearn.sklearn.CNNCodes`, a scikit-learn transformer from
  image paths to codes, and :class:`~tlearn.sklearn.HeadClassifier`.

Errors are Python exceptions carrying the library's message: ``FileNotFoundError`` for a missing
file, ``OSError`` for other I/O errors, ``ValueError`` otherwise (a malformed head names the
field). An image that cannot be read or decoded is not an exception but an entry in the
``errors`` list that the encoding methods return, and its row of codes is NaN.
"""

import json
import os
from collections import namedtuple

import numpy as np

from . import _tlearn

__version__ = _tlearn.__version__

__all__ = ["Extractor", "Head", "Cache", "read_cache", "__version__"]


def _paths(paths):
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise TypeError("expected a list of paths, got a single path")
    return [os.fspath(p) for p in paths]


def _opt_path(p):
    return None if p is None else os.fspath(p)


class Extractor:
    """A pretrained backbone cut at a layer: images in, CNN codes out.

    Parameters
    ----------
    model : str
        A registry name (``"efficientnet-lite0"``, ``"mobilenetv2"``, ...), the raw-pixel
        baseline (``"pixels"``, ``"pixels28"``, ``"pixels-rgb8"``), or the path of an ONNX file.
    layer : str or None
        As ``tlearn extract --layer``: a cut name or ONNX node (``"features"``,
        ``"stage6@2x2"``), several separated by commas (their codes side by side, from one
        forward pass), or ``"all"``; ``None`` is the model's default cut.
    pool : {"avg", "max", "flatten"}
    augment : {"none", "flip", "crops5", "crops10"}
        Test-time augmentation; the views' codes are averaged.
    threads : int or None
        Worker threads (default: all cores).
    decode : {"reduced", "full"}
        JPEG decoding (``reduced`` decodes at 1/2, 1/4 or 1/8 scale when the resize allows).
    decode_memory : int or None
        Bytes of decoded pixels in flight across the threads (default: ``$TLEARN_DECODE_MEMORY``,
        else a quarter of the machine's memory).
    models_dir : path or None
        Where the backbones are (default: ``$TLEARN_MODELS``, else the repository's ``models/``).
    """

    def __init__(
        self,
        model="efficientnet-lite0",
        layer=None,
        pool="avg",
        augment="none",
        threads=None,
        decode="reduced",
        decode_memory=None,
        models_dir=None,
    ):
        self._inner = _tlearn.Extractor(
            os.fspath(model),
            layer,
            pool,
            augment,
            threads,
            decode,
            decode_memory,
            _opt_path(models_dir),
        )

    @property
    def dim(self):
        """Length of each code."""
        return self._inner.dim

    @property
    def threads(self):
        return self._inner.threads

    @property
    def fingerprint(self):
        """What a cache of these codes records: backbone, sha256, cut, pooling,
        preprocessing, augmentation (a dict, as in a cache's ``meta.json``)."""
        return json.loads(self._inner.fingerprint_json())

    @property
    def cuts(self):
        """The cuts whose codes lie side by side in each row: ``[(name, dim), ...]``."""
        return self._inner.cuts()

    def encode_paths(self, paths):
        """Codes of image files.

        Returns ``(codes, errors)``: ``codes`` is a float32 array ``[len(paths), dim]`` (row i
        is ``paths[i]``'s code), ``errors`` a list of ``(index, message)`` for the files that
        could not be read, decoded or encoded (their rows are NaN). Other Python threads run
        while the images are encoded.
        """
        return self._inner.encode_paths(_paths(paths))

    def encode_bytes(self, items):
        """Codes of encoded images held in memory (the bytes of PNG, JPEG, ... files).

        Returns ``(codes, errors)`` as :meth:`encode_paths`.
        """
        return self._inner.encode_bytes([b if isinstance(b, bytes) else bytes(b) for b in items])

    def extract(self, dataset, out, overwrite=False, keep_views=False):
        """Extract the folder ``dataset`` (``DIR/<class>/<image>``) into the feature cache
        ``out``, exactly as ``tlearn extract`` does (an existing cache of the same extractor is
        updated incrementally, an interrupted run resumes). Returns the run summary (a dict)."""
        return json.loads(
            self._inner.extract_dir(os.fspath(dataset), os.fspath(out), overwrite, keep_views)
        )

    def __repr__(self):
        fp = self.fingerprint
        return "Extractor(model={!r}, layer={!r}, pool={!r}, augment={!r}, dim={})".format(
            fp["backbone"], fp["layer"], fp["pool"], fp["augment"], self.dim
        )


class Head:
    """A head saved by ``tlearn train`` (``head.json``), with the backbone(s) it reads.

    Open with :meth:`Head.load`. The backbones are opened on the first call that needs them
    (:meth:`predict`, :meth:`predict_paths`, :meth:`encode_paths`), from the fingerprints the
    head records, and must give exactly those codes (another file or setting is refused).
    """

    def __init__(self, inner):
        self._inner = inner

    @classmethod
    def load(cls, path, model=None, models_dir=None, threads=None):
        """Read and check ``head.json``. ``model``: the path of the head's backbone when it is
        an own ONNX file. A malformed file raises ``ValueError`` naming the field."""
        return cls(
            _tlearn.Head.load(os.fspath(path), _opt_path(model), _opt_path(models_dir), threads)
        )

    @property
    def classes(self):
        """Class names, in the order of the probability columns."""
        return self._inner.classes

    @property
    def dim(self):
        """Length of the codes the head reads."""
        return self._inner.dim

    @property
    def parts(self):
        """The cut(s) the head reads, in column order (name, extractor fingerprint, dim)."""
        return json.loads(self._inner.parts_json())

    def predict_proba(self, codes):
        """Class probabilities ``[N, classes]`` for codes ``[N, dim]`` (float32, C-ordered
        arrays are read in place)."""
        codes = np.asarray(codes, dtype=np.float32)
        if codes.ndim != 2:
            raise ValueError("codes must be a 2-D array [N, dim], got shape {}".format(codes.shape))
        return self._inner.predict_proba(codes)

    def encode_paths(self, paths):
        """The codes this head reads for image files: ``(codes, errors)`` as
        :meth:`Extractor.encode_paths`."""
        return self._inner.encode_paths(_paths(paths))

    def predict_paths(self, paths):
        """Class probabilities of image files: ``(probabilities, errors)``; the rows of images
        that could not be encoded are NaN."""
        return self._inner.predict_paths(_paths(paths))

    def predict(self, paths):
        """The most probable class name of each image file (a numpy array of str). Raises
        ``ValueError`` listing the files that could not be read or decoded."""
        proba, errors = self.predict_paths(paths)
        if errors:
            raise ValueError(
                "{} of {} images could not be classified: {}".format(
                    len(errors), len(proba), "; ".join(msg for _, msg in errors)
                )
            )
        return np.asarray(self.classes, dtype=object)[np.argmax(proba, axis=1)].astype(str)

    def __repr__(self):
        return "Head(classes={!r}, dim={})".format(self.classes, self.dim)


Cache = namedtuple("Cache", ["codes", "labels", "paths", "classes", "meta"])
Cache.__doc__ = """A feature cache: ``codes`` float32 ``[N, D]``, ``labels`` and ``paths``
(relative to the data set folder) of each row, ``classes``, and ``meta`` (``meta.json``)."""


def read_cache(path):
    """Read a feature cache written by ``tlearn extract`` (or :meth:`Extractor.extract`)."""
    codes, labels, paths, classes, meta = _tlearn.read_cache(os.fspath(path))
    return Cache(codes, labels, paths, classes, json.loads(meta))
