"""scikit-learn estimators on tlearn.

- :class:`CNNCodes`: a transformer from image paths (or image bytes) to CNN codes, so that
  ``make_pipeline(CNNCodes(model="efficientnet-lite0"), LogisticRegression())`` fits on a list of
  image files. The backbone is opened lazily on first use and dropped when pickled, so the
  estimator clones, pickles and runs inside ``GridSearchCV`` like any other.
- :class:`HeadClassifier`: a head saved by ``tlearn train`` as a classifier on codes, e.g.
  after :class:`CNNCodes` in a pipeline (it is fitted already; ``fit`` only loads it).

Needs scikit-learn (``pip install tlearn[sklearn]``).
"""

import os

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin

from . import Extractor, Head

__all__ = ["CNNCodes", "HeadClassifier"]


class CNNCodes(TransformerMixin, BaseEstimator):
    """Images → CNN codes, as a scikit-learn transformer.

    ``X`` is a sequence of image paths (str or ``os.PathLike``), or of ``bytes`` holding encoded
    images. The parameters are :class:`tlearn.Extractor`'s. ``on_error``: ``"raise"`` (an image
    that cannot be read or decoded raises ``ValueError`` naming it) or ``"nan"`` (its row is
    NaN, for a later imputer to handle).

    Fitting learns nothing (the backbone is pretrained): it opens the backbone and records
    ``n_features_out_`` and ``fingerprint_``.
    """

    def __init__(
        self,
        model="efficientnet-lite0",
        layer=None,
        pool="avg",
        augment="none",
        threads=None,
        decode="reduced",
        models_dir=None,
        on_error="raise",
    ):
        self.model = model
        self.layer = layer
        self.pool = pool
        self.augment = augment
        self.threads = threads
        self.decode = decode
        self.models_dir = models_dir
        self.on_error = on_error

    def _extractor(self):
        # The opened backbone is cached under a key of the parameters it was opened with, so
        # set_params (GridSearchCV) reopens it, and __getstate__ leaves it out of pickles.
        key = (self.model, self.layer, self.pool, self.augment, self.threads, self.decode,
               self.models_dir)
        cached = self.__dict__.get("_opened")
        if cached is None or cached[0] != key:
            ex = Extractor(
                model=self.model,
                layer=self.layer,
                pool=self.pool,
                augment=self.augment,
                threads=self.threads,
                decode=self.decode,
                models_dir=self.models_dir,
            )
            self.__dict__["_opened"] = (key, ex)
            return ex
        return cached[1]

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_opened", None)
        return state

    def fit(self, X=None, y=None):
        if self.on_error not in ("raise", "nan"):
            raise ValueError("on_error must be 'raise' or 'nan', got {!r}".format(self.on_error))
        ex = self._extractor()
        self.n_features_out_ = ex.dim
        self.fingerprint_ = ex.fingerprint
        self.cuts_ = ex.cuts
        return self

    def transform(self, X):
        """Codes of the images in ``X``: a float32 array ``[len(X), n_features_out_]``."""
        if not hasattr(self, "n_features_out_"):
            self.fit()
        items = list(X)
        ex = self._extractor()
        if items and all(isinstance(x, (bytes, bytearray, memoryview)) for x in items):
            codes, errors = ex.encode_bytes(items)
        else:
            codes, errors = ex.encode_paths([os.fspath(x) for x in items])
        if errors and self.on_error == "raise":
            raise ValueError(
                "{} of {} images could not be encoded: {}".format(
                    len(errors), len(items), "; ".join(msg for _, msg in errors)
                )
            )
        return codes

    def get_feature_names_out(self, input_features=None):
        """``<cut>_<i>`` for each value of each cut (``features_0``, ..., ``stage6_0``, ...)."""
        if not hasattr(self, "cuts_"):
            self.fit()
        names = [
            "{}_{}".format(cut.replace("@", "_").replace("/", "_"), i)
            for cut, dim in self.cuts_
            for i in range(dim)
        ]
        return np.asarray(names, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # X is a list of paths or bytes, not a numeric array.
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = False
        return tags


class HeadClassifier(ClassifierMixin, BaseEstimator):
    """A head saved by ``tlearn train`` as a scikit-learn classifier on codes ``[N, dim]``.

    It is trained already: ``fit`` only loads ``head`` (a path to ``head.json``) and sets
    ``classes_``. Its probabilities are :meth:`tlearn.Head.predict_proba`'s.
    """

    def __init__(self, head=None):
        self.head = head

    def _head(self):
        cached = self.__dict__.get("_loaded")
        if cached is None or cached[0] != self.head:
            h = Head.load(self.head)
            self.__dict__["_loaded"] = (self.head, h)
            return h
        return cached[1]

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_loaded", None)
        return state

    def fit(self, X=None, y=None):
        if self.head is None:
            raise ValueError("HeadClassifier needs head= (the path of a head.json)")
        self.classes_ = np.asarray(self._head().classes, dtype=object)
        return self

    def predict_proba(self, X):
        if not hasattr(self, "classes_"):
            self.fit()
        return self._head().predict_proba(X)

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)].astype(str)
