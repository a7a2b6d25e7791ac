"""tlearn on Spark: CNN codes of a ``binaryFile`` DataFrame through ``mapInArrow``, and a
prediction UDF for a saved head.

The output is the Parquet codes ``tlearn export-codes`` writes (docs/formats.md, "Parquet
codes"), with ``features`` as Spark's ``array<float>``: one row per image with ``path``
(relative to ``root``), ``label`` (the class folder), ``sha256``, ``features``, ``error`` (a
corrupt image is a row with its error, not a failed job) and ``fingerprint``, and the sidecar
``_tlearn.json``. ``tlearn train`` and ``tlearn eval`` read the output directory as a cache.

The model file travels once as a broadcast variable; each Python worker opens it once (workers
are reused across tasks) with ``spark.task.cpus`` threads and checks its fingerprint against
the driver's before it encodes anything.

Spark starts its Python workers with ``PYSPARK_PYTHON``, else ``python3`` from ``PATH``, which
in a virtual environment is an interpreter without tlearn; importing this module sets
``PYSPARK_PYTHON`` to the importing interpreter when it is unset, so a session started after the
import (``local[N]``) runs its workers where tlearn is. On a cluster whose nodes keep Python
elsewhere, set ``PYSPARK_PYTHON`` (or ``spark.pyspark.python``) to the nodes' interpreter.

    from pyspark.sql import SparkSession
    import tlearn.spark
    spark = SparkSession.builder.master("local[2]").getOrCreate()
    df = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load("data/tuxpaint")
    tlearn.spark.extract(df, "codes/tuxpaint", root="data/tuxpaint")
"""

import json
import os
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq

from . import Extractor, Head
from . import engines

__all__ = ["CODES_SCHEMA", "extract", "predict_udf"]

if not os.environ.get("PYSPARK_PYTHON"):
    os.environ["PYSPARK_PYTHON"] = sys.executable

# The codes' columns as Spark types (mapInArrow's output schema).
CODES_SCHEMA = ("path string, label string, sha256 string, features array<float>, "
                "error string, fingerprint string")

# Extractors opened in this Python worker, by (fingerprint, threads): reused by the tasks a
# reused worker runs.
_OPEN = {}


def _extractor(model, payload, fingerprint, threads, options):
    key = (json.dumps(fingerprint, sort_keys=True), threads)
    if key not in _OPEN:
        _OPEN[key] = engines.open_on_worker(model, payload, fingerprint, threads, options)
    return _OPEN[key]


def extract(df, out, root, model="efficientnet-lite0", layer=None, pool="avg", augment="none",
            decode="reduced", models_dir=None, batch_size=16, mode="errorifexists"):
    """Extract the images of ``df`` (``spark.read.format("binaryFile").load(...)``: columns
    ``path`` and ``content``) into Parquet codes in ``out``; ``root``: the folder the paths
    are made relative to (the data set root). Returns ``{"rows", "errors", "seconds", "out"}``
    (the counts read back from ``out``, a local folder)."""
    t0 = time.perf_counter()
    spark = df.sparkSession
    options = {"layer": layer, "pool": pool, "augment": augment, "decode": decode}
    driver = Extractor(model, threads=1, models_dir=models_dir, **options)
    fingerprint = driver.fingerprint
    payload = spark.sparkContext.broadcast(engines.model_payload(model, models_dir))
    threads = int(spark.conf.get("spark.task.cpus", "1"))
    model = os.fspath(model)
    root = os.path.abspath(os.fspath(root)) if "://" not in str(root) else str(root)

    def encode(batches):
        ex = _extractor(model, payload.value, fingerprint, threads, options)
        for b in batches:
            rel, labels, content = engines.class_files(
                b.column("path").to_pylist(), b.column("content").to_pylist(), root)
            for s in range(0, len(rel), batch_size):
                data = ex._inner.encode_parquet(content[s:s + batch_size], rel[s:s + batch_size],
                                                labels[s:s + batch_size], False)
                yield from pq.read_table(pa.BufferReader(data)).to_batches()

    df.select("path", "content").mapInArrow(encode, CODES_SCHEMA).write.mode(mode).parquet(
        os.fspath(out))
    engines.write_sidecar(os.fspath(out), driver, root)
    errors = pq.read_table(os.fspath(out), columns=["error"]).column("error")
    return {
        "rows": len(errors),
        "errors": len(errors) - errors.null_count,
        "seconds": time.perf_counter() - t0,
        "out": os.fspath(out),
    }


def predict_udf(head, codes=None):
    """A pandas UDF from a ``features`` column (``array<float>``) to the saved head's class
    name (null for a null code): ``df.withColumn("prediction", udf("features"))``. With
    ``codes`` (the codes directory the DataFrame was read from), a head of another extractor
    is refused naming the field."""
    from pyspark.sql.functions import pandas_udf

    if codes is not None:
        text = engines.checked_head(head, codes)
    else:
        Head.load(head)  # refused here, on the driver, when malformed
        with open(head) as f:
            text = f.read()

    @pandas_udf("string")
    def predict(features):
        import numpy as np
        import pandas as pd

        model = engines.head_from_text(text)
        ok = [i for i, v in enumerate(features) if v is not None]
        out = [None] * len(features)
        if ok:
            x = np.asarray([features.iloc[i] for i in ok], dtype=np.float32)
            p = model.predict_proba(x)
            for j, i in enumerate(ok):
                out[i] = model.classes[int(np.argmax(p[j]))]
        return pd.Series(out, dtype="object")

    return predict
