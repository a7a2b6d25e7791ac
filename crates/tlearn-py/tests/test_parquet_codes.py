"""Parquet codes between tlearn and the tools that read Parquet: the codes `tlearn export-codes`
writes are read as they are by pyarrow and DuckDB (the same codes as features.npy, an error row
for the corrupt file); Parquet written the way Spark and Ray write it (plain list columns, no
error or fingerprint column, `part-*` files beside `_SUCCESS`) is read by `tlearn import-codes`
and `tlearn train`; a float64 column is refused naming the file.

Needs `make models data` (efficientnet-lite0, data/tuxpaint) and the release CLI
(target/release/tlearn); `make test` runs it. A missing input fails the test with its path.
"""

import csv
import json
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[3]
TLEARN = REPO / "target" / "release" / "tlearn"
TUXPAINT = REPO / "data" / "tuxpaint"
MODEL = "efficientnet-lite0"
CLASSES = ["birds", "fish", "flowers"]
PER_CLASS = 6


def require(path):
    if not path.exists():
        raise AssertionError("missing test input {} (run `make models data` and build)".format(path))
    return path


def run(*args, ok=True):
    out = subprocess.run([str(require(TLEARN)), *map(str, args)], capture_output=True, text=True)
    if ok and out.returncode != 0:
        raise AssertionError("tlearn {} failed:\n{}".format(" ".join(map(str, args)), out.stderr))
    return out


class Shared:
    tmp = None

    @classmethod
    def setup(cls):
        require(REPO / "models" / (MODEL + ".onnx"))
        cls.tmp = Path(tempfile.mkdtemp(prefix="tlearn-parquet-test-"))
        cls.data = cls.tmp / "data"
        for c in CLASSES:
            (cls.data / c).mkdir(parents=True)
            for f in sorted(require(TUXPAINT / c).glob("*.png"))[:PER_CLASS]:
                shutil.copy(f, cls.data / c / f.name)
        (cls.data / "fish" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
        cls.cache = cls.tmp / "cache"
        run("extract", cls.data, "--out", cls.cache, "--model", MODEL, "--threads", 2, "--quiet")
        cls.codes = cls.tmp / "codes"
        run("export-codes", cls.cache, "--out", cls.codes, "--rows-per-file", 7)
        cls.features = np.load(cls.cache / "features.npy")
        with open(cls.cache / "index.csv", newline="") as f:
            cls.index = list(csv.DictReader(f))
        cls.sidecar = json.loads((cls.codes / "_tlearn.json").read_text())


def setUpModule():
    Shared.setup()


def tearDownModule():
    if Shared.tmp is not None:
        shutil.rmtree(Shared.tmp, ignore_errors=True)


def data_files(d):
    return sorted(str(p) for p in d.glob("*.parquet"))


class ReadByPyarrowAndDuckDB(unittest.TestCase):
    def test_pyarrow_reads_the_schema_codes_and_error_row(self):
        t = pa.concat_tables([pq.read_table(f) for f in data_files(Shared.codes)])
        dim = Shared.features.shape[1]
        self.assertEqual(t.schema.field("features").type,
                         pa.list_(pa.field("item", pa.float32(), nullable=False), dim))
        for name in ["path", "label", "sha256", "error", "fingerprint"]:
            self.assertEqual(t.schema.field(name).type, pa.string(), name)
        rows = t.to_pylist()
        good = sorted((r for r in rows if r["error"] is None), key=lambda r: r["path"])
        bad = [r for r in rows if r["error"] is not None]
        self.assertEqual([r["path"] for r in good], [r["path"] for r in Shared.index])
        self.assertEqual([r["sha256"] for r in good], [r["sha256"] for r in Shared.index])
        np.testing.assert_array_equal(
            np.array([r["features"] for r in good], dtype=np.float32), Shared.features)
        self.assertEqual([r["path"] for r in bad], ["fish/corrupt.png"])
        self.assertIsNone(bad[0]["features"])
        self.assertEqual({r["fingerprint"] for r in rows}, {Shared.sidecar["fingerprint"]})

    def test_duckdb_queries_the_directory(self):
        con = duckdb.connect()
        glob = str(Shared.codes / "*.parquet")
        counts = dict(con.execute(
            "SELECT label, count(*) FROM read_parquet(?) WHERE error IS NULL GROUP BY label",
            [glob]).fetchall())
        self.assertEqual(counts, {c: PER_CLASS for c in CLASSES})
        got = con.execute(
            "SELECT path, features FROM read_parquet(?) WHERE error IS NULL ORDER BY path",
            [glob]).fetchall()
        self.assertEqual([p for p, _ in got], [r["path"] for r in Shared.index])
        np.testing.assert_array_equal(np.array([f for _, f in got], dtype=np.float32),
                                      Shared.features)
        (err,) = con.execute(
            "SELECT error FROM read_parquet(?) WHERE error IS NOT NULL", [glob]).fetchone()
        with open(Shared.cache / "skipped.csv", newline="") as f:
            skipped = {r["path"]: r["reason"] for r in csv.DictReader(f)}
        self.assertEqual(err, skipped["fish/corrupt.png"])


def engine_style(out, features_type=pa.float32()):
    """Codes as a Spark or Ray job writes them: plain list column, only path/label/sha256/features,
    two part files and a _SUCCESS marker, tlearn's sidecar beside them."""
    out.mkdir()
    rows = Shared.index
    half = len(rows) // 2
    for i, part in enumerate([rows[:half], rows[half:]]):
        idx = [Shared.index.index(r) for r in part]
        t = pa.table({
            "path": [r["path"] for r in part],
            "label": [r["label"] for r in part],
            "sha256": [r["sha256"] for r in part],
            "features": pa.array([Shared.features[j].tolist() for j in idx],
                                 type=pa.list_(features_type)),
        })
        pq.write_table(t, out / "part-{:05d}-3f1e.snappy.parquet".format(i))
    (out / "_SUCCESS").write_bytes(b"")
    shutil.copy(Shared.codes / "_tlearn.json", out / "_tlearn.json")


class WrittenByEnginesReadByTlearn(unittest.TestCase):
    def test_plain_list_columns_import_to_the_same_cache(self):
        d = Shared.tmp / "engine"
        engine_style(d)
        back = Shared.tmp / "engine-cache"
        run("import-codes", d, "--out", back)
        self.assertEqual((back / "features.npy").read_bytes(),
                         (Shared.cache / "features.npy").read_bytes())
        self.assertEqual((back / "index.csv").read_bytes(),
                         (Shared.cache / "index.csv").read_bytes())
        run_dir = Shared.tmp / "engine-run"
        run("train", d, "--head", "logistic", "--folds", "2", "--out", run_dir)
        head = json.loads((run_dir / "head.json").read_text())
        self.assertEqual(head["classes"], CLASSES)

    def test_float64_codes_are_refused_naming_the_file(self):
        d = Shared.tmp / "engine-f64"
        engine_style(d, pa.float64())
        out = run("import-codes", d, "--out", Shared.tmp / "f64-cache", ok=False)
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertIn("part-00000-3f1e.snappy.parquet", out.stderr)
        self.assertIn("float64", out.stderr.lower().replace("double", "float64"))


if __name__ == "__main__":
    unittest.main()
