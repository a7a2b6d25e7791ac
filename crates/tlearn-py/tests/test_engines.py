"""tlearn on real engines: a local Ray cluster of two nodes (``ray.cluster_utils.Cluster``) and
Spark ``local[2]`` extract Tux Paint photos (and a corrupt file) with EfficientNet-Lite0; the
Parquet codes they write, imported, are the command line's cache byte for byte, the corrupt
file is an error row, no path appears twice; a saved head predicts on the codes through each
engine as it does in-process, and a head of another extractor is refused naming the field.

One Ray cluster and one Spark session serve every test of this module. Needs `make models
data` (efficientnet-lite0, data/tuxpaint), the release CLI (target/release/tlearn), the package
(`make python`), Ray, pyspark and a Java runtime (`make test` installs them). A missing input
fails the test with its path.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

import tlearn

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
    cluster = None
    spark = None

    @classmethod
    def setup(cls):
        require(REPO / "models" / (MODEL + ".onnx"))
        cls.tmp = Path(tempfile.mkdtemp(prefix="tlearn-engines-test-"))
        cls.data = cls.tmp / "data"
        for c in CLASSES:
            (cls.data / c).mkdir(parents=True)
            for f in sorted(require(TUXPAINT / c).glob("*.png"))[:PER_CLASS]:
                shutil.copy(f, cls.data / c / f.name)
        (cls.data / "fish" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
        (cls.data / "MANIFEST.json").write_text("{}")
        cls.cache = cls.tmp / "cache"
        run("extract", cls.data, "--out", cls.cache, "--model", MODEL, "--threads", 2, "--quiet")
        cls.run_dir = cls.tmp / "run"
        run("train", cls.cache, "--head", "logistic", "--folds", "2", "--out", cls.run_dir)
        cls.head = cls.run_dir / "head.json"
        # The same head's predictions in-process, the reference for the engines'.
        codes = np.load(cls.cache / "features.npy")
        h = tlearn.Head.load(cls.head)
        paths = [line.split(",")[0] for line in
                 (cls.cache / "index.csv").read_text().splitlines()[1:]]
        cls.expected = dict(zip(paths, np.array(h.classes)[h.predict_proba(codes).argmax(1)]))
        # A head of another extractor (the raw-pixel baseline).
        other = cls.tmp / "other-cache"
        run("extract", cls.data, "--out", other, "--model", "pixels8", "--quiet")
        cls.other_head = cls.tmp / "other-run" / "head.json"
        run("train", other, "--head", "logistic", "--folds", "2", "--out", cls.other_head.parent)


def setUpModule():
    Shared.setup()


def tearDownModule():
    if Shared.spark is not None:
        Shared.spark.stop()
    if Shared.cluster is not None:
        import ray

        ray.shutdown()
        Shared.cluster.shutdown()
    if Shared.tmp is not None:
        shutil.rmtree(Shared.tmp, ignore_errors=True)


class EngineChecks:
    def check_codes(self, codes, summary):
        raw = pq.read_table(str(codes))
        paths = raw.column("path").to_pylist()
        self.assertEqual(len(paths), len(set(paths)), "a path written twice")
        self.assertEqual(summary["rows"], len(CLASSES) * PER_CLASS + 1)
        self.assertEqual(summary["errors"], 1)
        errors = [r for r in raw.select(["path", "error"]).to_pylist() if r["error"] is not None]
        self.assertEqual([r["path"] for r in errors], ["fish/corrupt.png"])
        back = Shared.tmp / (codes.name + "-cache")
        run("import-codes", codes, "--out", back)
        for f in ["features.npy", "index.csv"]:
            self.assertEqual((back / f).read_bytes(), (Shared.cache / f).read_bytes(), f)


class RayCluster(unittest.TestCase, EngineChecks):
    @classmethod
    def setUpClass(cls):
        import ray
        from ray.cluster_utils import Cluster

        if Shared.cluster is None:
            Shared.cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
            Shared.cluster.add_node(num_cpus=1)
            ray.init(address=Shared.cluster.address, log_to_driver=False)
            Shared.cluster.wait_for_nodes()
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False

    def test_two_nodes_extract_the_command_lines_codes_and_predict(self):
        import tlearn.ray

        self.assertEqual(len([n for n in __import__("ray").nodes() if n["Alive"]]), 2)
        codes = Shared.tmp / "ray-codes"
        # The defaults: one actor per node with all of its CPUs (one each here).
        self.assertEqual(tlearn.ray._cpus_per_node(), 1)
        # Batches: at least 4 per actor on small jobs, 64 at most.
        self.assertEqual([tlearn.ray._batch_size(n, a) for n, a in
                          [(80, 2), (216, 1), (3, 2), (100000, 8)]], [10, 54, 1, 64])
        summary = tlearn.ray.extract(Shared.data, codes, model=MODEL)
        self.check_codes(codes, summary)
        rows = tlearn.ray.predict(codes, Shared.head).take_all()
        got = {r["path"]: r["prediction"] for r in rows if r["error"] is None}
        self.assertEqual(got, Shared.expected)
        with self.assertRaisesRegex(ValueError, r"extractor\.backbone: 'pixels8' vs "
                                    r"'efficientnet-lite0'"):
            tlearn.ray.predict(codes, Shared.other_head)
        # The bytes through the object store (what a bucket needs) give the same codes.
        by_bytes = Shared.tmp / "ray-codes-bytes"
        self.check_codes(by_bytes, tlearn.ray.extract(Shared.data, by_bytes, model=MODEL,
                                                      read="bytes"))
        with self.assertRaisesRegex(FileExistsError, "not empty"):
            tlearn.ray.extract(Shared.data, codes, model=MODEL)


    def test_a_worker_killed_mid_run_loses_and_duplicates_no_row(self):
        import signal
        import threading
        import time

        import tlearn.ray

        codes = Shared.tmp / "ray-killed"
        result = {}

        def extract():
            result["summary"] = tlearn.ray.extract(Shared.data, codes, model=MODEL, num_cpus=1,
                                                   batch_size=1)

        t = threading.Thread(target=extract)
        t.start()
        killed = None
        deadline = time.time() + 120
        while killed is None and t.is_alive() and time.time() < deadline:
            # Ray names an actor's worker process after its class.
            found = subprocess.run(["pgrep", "-f", "ExtractCodes"], capture_output=True,
                                   text=True).stdout.split()
            if found:
                time.sleep(1.0)
                killed = int(found[0])
                os.kill(killed, signal.SIGKILL)
            else:
                time.sleep(0.1)
        t.join(300)
        self.assertIsNotNone(killed, "no extraction actor was seen alive to kill")
        self.assertIn("summary", result, "the extraction did not finish after a worker died")
        self.check_codes(codes, result["summary"])


class SparkLocal(unittest.TestCase, EngineChecks):
    @classmethod
    def setUpClass(cls):
        # What `import tlearn.spark` does where PYSPARK_PYTHON is unset (the test below).
        os.environ["PYSPARK_PYTHON"] = sys.executable
        from pyspark.sql import SparkSession

        if Shared.spark is None:
            Shared.spark = (SparkSession.builder.master("local[2]")
                            .config("spark.ui.enabled", "false")
                            .config("spark.ui.showConsoleProgress", "false").getOrCreate())
            Shared.spark.sparkContext.setLogLevel("ERROR")

    def test_importing_it_points_sparks_python_workers_at_this_interpreter(self):
        show = "import os, tlearn.spark; print(os.environ['PYSPARK_PYTHON'])"
        env = {k: v for k, v in os.environ.items() if k != "PYSPARK_PYTHON"}
        got = subprocess.run([sys.executable, "-c", show], env=env, capture_output=True,
                             text=True, check=True).stdout.strip()
        self.assertEqual(got, sys.executable)
        # A setting of the user's (a cluster's interpreter) is kept.
        env["PYSPARK_PYTHON"] = "/opt/cluster/python3"
        got = subprocess.run([sys.executable, "-c", show], env=env, capture_output=True,
                             text=True, check=True).stdout.strip()
        self.assertEqual(got, "/opt/cluster/python3")

    def test_local2_extracts_the_command_lines_codes_and_predicts(self):
        import tlearn.spark

        spark = Shared.spark
        df = (spark.read.format("binaryFile").option("recursiveFileLookup", "true")
              .load(str(Shared.data)))
        codes = Shared.tmp / "spark-codes"
        summary = tlearn.spark.extract(df, str(codes), root=str(Shared.data), model=MODEL)
        self.check_codes(codes, summary)
        udf = tlearn.spark.predict_udf(str(Shared.head), codes=str(codes))
        rows = (spark.read.parquet(str(codes)).where("error IS NULL")
                .withColumn("prediction", udf("features")).select("path", "prediction")
                .collect())
        self.assertEqual({r["path"]: r["prediction"] for r in rows}, Shared.expected)
        with self.assertRaisesRegex(ValueError, r"extractor\.backbone: 'pixels8' vs "
                                    r"'efficientnet-lite0'"):
            tlearn.spark.predict_udf(str(Shared.other_head), codes=str(codes))


if __name__ == "__main__":
    unittest.main()
