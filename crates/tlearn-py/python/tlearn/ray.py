"""tlearn on Ray Data: CNN codes of a folder or bucket of images, and predictions of a saved
head, as ``Dataset.map_batches`` callable classes; :func:`extract` and :func:`predict` wire them.

The codes are the Parquet codes ``tlearn export-codes`` writes (docs/formats.md, "Parquet
codes"): one row per image with ``path`` (relative to the source root), ``label`` (the class
folder), ``sha256``, ``features``, ``error`` (a corrupt or unreadable image is a row with its
error, not a failed job) and ``fingerprint``, and the sidecar ``_tlearn.json``. ``tlearn train``
and ``tlearn eval`` read the output directory as they read a cache.

Each actor runs the Rust library with as many threads as the CPUs Ray gave it (``num_cpus``);
the model file travels once through the object store, and each worker's extractor is checked
against the driver's fingerprint before it encodes anything. Actors that die are restarted and
their batches retried by Ray Data, so a lost worker loses and duplicates no row.

    import ray, tlearn.ray
    ray.init()                      # or ray.init(address="auto") on a cluster
    tlearn.ray.extract("data/tuxpaint", "codes/tuxpaint", model="efficientnet-lite0")
"""

import glob
import hashlib
import os
import time

import pyarrow as pa
import pyarrow.parquet as pq
import ray

from . import Extractor
from . import engines

__all__ = ["ExtractCodes", "ExtractCodesToShards", "PredictCodes", "extract", "predict"]


def _cpus_per_node():
    """The CPUs of the smallest live node: one actor per node with all of its CPUs runs one
    extractor whose threads share the model and the decode budget, where one actor per CPU
    would hold a model and a budget per CPU."""
    cpus = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
    cpus = [c for c in cpus if c >= 1]
    return max(1, int(min(cpus))) if cpus else 1


# Images per actor call at most: enough to keep the Python side of a call small next to the
# encoding, few enough to hold little in memory.
MAX_BATCH = 64


def _batch_size(images, actors):
    """Batches of at most MAX_BATCH images, at least 4 per actor, so that the last batches
    do not leave one actor working alone (80 images in batches of 64 on two actors: one actor
    encoded 64 while the other had 16)."""
    return max(1, min(MAX_BATCH, -(-images // (4 * actors))))


def _assigned_cpus():
    try:
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    except Exception:  # outside a Ray worker
        cpus = 1
    return max(1, int(round(cpus)))


def _resolve(payload):
    # An ObjectRef inside a list is not resolved by Ray before the constructor runs.
    if isinstance(payload, list) and len(payload) == 1 and isinstance(payload[0], ray.ObjectRef):
        return ray.get(payload[0])
    return payload


class ExtractCodes:
    """``map_batches`` callable over ``ray.data.read_binary_files(root, include_paths=True)``
    (columns ``bytes``, ``path``), ``batch_format="pyarrow"``: each batch of images becomes a
    table of Parquet codes rows.

    ``payload``: ``[ray.put(engines.model_payload(model))]`` (the model file); ``fingerprint``:
    the driver's ``Extractor.fingerprint``; ``options``: the Extractor's other arguments
    (``layer``, ``pool``, ``augment``, ``decode``)."""

    def __init__(self, model, root, payload, fingerprint, options=None, threads=None):
        self.root = root
        threads = threads or _assigned_cpus()
        self.extractor = engines.open_on_worker(
            model, _resolve(payload), fingerprint, threads, options or {})

    def __call__(self, batch):
        return pq.read_table(pa.BufferReader(self._encode(batch)))

    def _encode(self, batch):
        """The Parquet file (bytes) of the batch's codes rows."""
        paths = batch.column("path").to_pylist()
        if "bytes" in batch.column_names:
            items = batch.column("bytes").to_pylist()
        else:
            # Paths only (a folder every worker sees): the worker reads the files itself, and a
            # file it cannot read becomes an error row (empty bytes decode to an error).
            items = []
            for p in paths:
                try:
                    with open(p, "rb") as f:
                        items.append(f.read())
                except OSError:
                    items.append(b"")
        rel, labels, items = engines.class_files(paths, items, self.root)
        return self.extractor._inner.encode_parquet(items, rel, labels, True)


class ExtractCodesToShards(ExtractCodes):
    """:class:`ExtractCodes` that writes each batch's rows as one Parquet shard into ``out`` (a
    folder every worker reaches) and returns one row per shard (``shard``, ``rows``,
    ``errors``), for :func:`extract`. The shard leaves the worker as the file the library
    encoded, with no pass through Ray's object store and write stage (which on a node whose CPUs
    the actors hold waits for them to finish: a second or two per job). A shard is named after
    the paths it holds and written through a temporary file, so a batch retried after a worker
    died replaces its shard: no row lost or written twice. ``started``/``finished``: the
    batch's wall-clock span on its worker."""

    def __init__(self, out, **kwargs):
        super().__init__(**kwargs)
        self.out = out

    def __call__(self, batch):
        started = time.time()
        data = self._encode(batch)
        paths = batch.column("path").to_pylist()
        name = "part-{}.parquet".format(
            hashlib.sha256("\0".join(paths).encode()).hexdigest()[:20])
        tmp = os.path.join(self.out, ".{}.{}.tmp".format(name, os.getpid()))
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, os.path.join(self.out, name))
        errors = pq.read_table(pa.BufferReader(data), columns=["error"]).column("error")
        return pa.table({"shard": [name], "rows": [len(errors)],
                         "errors": [len(errors) - errors.null_count],
                         "started": [started], "finished": [time.time()]})


class PredictCodes:
    """``map_batches`` callable over ``ray.data.read_parquet(CODES)``: adds ``prediction`` (the
    most probable class, null for an error row) and ``probabilities`` (one per class, in
    ``Head.classes`` order). ``head_json``: the text of ``head.json``; ``fingerprint``: the
    sidecar's ``fingerprint``, which every row must carry."""

    def __init__(self, head_json, fingerprint):
        self.head = engines.head_from_text(head_json)
        self.fingerprint = fingerprint

    def __call__(self, batch):
        import numpy as np

        fps = set(batch.column("fingerprint").to_pylist()) if "fingerprint" in \
            batch.column_names else {self.fingerprint}
        if fps - {self.fingerprint}:
            raise ValueError("codes of another extractor in the batch: fingerprint {} is not the "
                             "sidecar's {}".format(sorted(fps - {self.fingerprint}),
                                                   self.fingerprint))
        feats = batch.column("features").to_pylist()
        ok = [i for i, f in enumerate(feats) if f is not None]
        classes = self.head.classes
        pred = [None] * len(feats)
        probs = [None] * len(feats)
        if ok:
            x = np.asarray([feats[i] for i in ok], dtype=np.float32)
            p = self.head.predict_proba(x)
            for j, i in enumerate(ok):
                pred[i] = classes[int(np.argmax(p[j]))]
                probs[i] = p[j].tolist()
        return batch.append_column("prediction", pa.array(pred, pa.string())).append_column(
            "probabilities", pa.array(probs, pa.list_(pa.float32())))


def _empty_or_new(out):
    out = os.fspath(out)
    if os.path.isdir(out) and os.listdir(out):
        raise FileExistsError("{} is not empty; write the codes into a new or empty folder"
                              .format(out))
    return out


def extract(source, out, model="efficientnet-lite0", layer=None, pool="avg", augment="none",
            decode="reduced", models_dir=None, num_cpus=None, concurrency=None, batch_size=None,
            root=None, read="auto"):
    """Extract every image under ``source`` (a folder ``DIR/<class>/<image>`` or anything
    ``ray.data.read_binary_files`` reads) into Parquet codes in ``out`` (shards + sidecar).

    ``num_cpus``: CPUs (and threads) per actor (default: all of a node's, the smallest
    node's where they differ: one actor per node); ``concurrency``: actors (default: the
    cluster's CPUs / ``num_cpus``); ``batch_size``: images per call of an actor (default: 64,
    fewer where the number of images is known and 64 would give an actor fewer than 4
    batches); ``root``: what paths are made relative to (default
    ``source``). ``read``: ``"bytes"`` reads the files with ``ray.data.read_binary_files``
    and ships their bytes through the object store (any path or URI Ray reads);
    ``"paths"`` ships only the paths of a local folder and each worker reads its files (the
    folder must be at the same path on every node: a shared file system); ``"auto"``: paths for
    a local folder, else bytes. Returns ``{"rows", "errors", "seconds", "encode_seconds",
    "out"}`` (``encode_seconds``: first batch started to last shard written on the workers,
    the job without the engine's start-up).
    """
    t0 = time.perf_counter()
    out = _empty_or_new(out)
    options = {"layer": layer, "pool": pool, "augment": augment, "decode": decode}
    driver = Extractor(model, threads=1, models_dir=models_dir, **options)
    payload = [ray.put(engines.model_payload(model, models_dir))]
    if num_cpus is None:
        num_cpus = _cpus_per_node()
    if concurrency is None:
        concurrency = max(1, int(ray.cluster_resources().get("CPU", 1)) // num_cpus)
    # Reading files is I/O: its tasks take no CPU, so that actors holding every CPU cannot
    # starve the reads that feed them.
    if read == "auto":
        read = "paths" if os.path.isdir(os.fspath(source)) else "bytes"
    root = os.fspath(root or source)
    if read == "paths":
        root = os.path.abspath(root)
        files = sorted(os.path.join(d, f) for d, _, fs in os.walk(os.path.abspath(source))
                       for f in fs)
        ds = ray.data.from_items([{"path": f} for f in files])
        if batch_size is None:
            batch_size = _batch_size(len(files), concurrency)
    elif read == "bytes":
        ds = ray.data.read_binary_files(os.fspath(source), include_paths=True, num_cpus=0)
    else:
        raise ValueError("read={!r}: expected 'auto', 'paths' or 'bytes'".format(read))
    if batch_size is None:
        batch_size = MAX_BATCH
    os.makedirs(out, exist_ok=True)
    shards = ds.map_batches(
        ExtractCodesToShards,
        fn_constructor_kwargs={
            "out": os.path.abspath(out),
            "model": os.fspath(model),
            "root": root,
            "payload": payload,
            "fingerprint": driver.fingerprint,
            "options": options,
        },
        batch_size=batch_size,
        batch_format="pyarrow",
        concurrency=concurrency,
        num_cpus=num_cpus,
        max_restarts=-1,
        max_task_retries=-1,
    )
    written = shards.take_all()
    for leftover in glob.glob(os.path.join(out, ".part-*.tmp")):  # of workers that died
        os.remove(leftover)
    engines.write_sidecar(out, driver, os.fspath(source))
    return {
        "rows": sum(w["rows"] for w in written),
        "errors": sum(w["errors"] for w in written),
        # The workers' span, first batch started to last batch written: the rate of the
        # cluster once its actors run, without the engine's start-up, for sizing a cluster.
        "encode_seconds": (max((w["finished"] for w in written), default=0.0)
                           - min((w["started"] for w in written), default=0.0)),
        "seconds": time.perf_counter() - t0,
        "out": out,
    }


def predict(codes, head, out=None, concurrency=1, batch_size=1024):
    """Predictions of the saved head ``head`` (``head.json``) for the Parquet codes ``codes``:
    a Ray Dataset of the codes rows plus ``prediction`` and ``probabilities``, written as
    Parquet to ``out`` when given. A head of another extractor than the codes' is refused
    naming the field."""
    codes = os.fspath(codes)
    text = engines.checked_head(head, codes)
    side = engines.read_sidecar(codes)
    ds = ray.data.read_parquet(codes).map_batches(
        PredictCodes,
        fn_constructor_kwargs={"head_json": text, "fingerprint": side["fingerprint"]},
        batch_size=batch_size,
        batch_format="pyarrow",
        concurrency=concurrency,
    )
    if out is not None:
        ds.write_parquet(_empty_or_new(out))
    return ds
