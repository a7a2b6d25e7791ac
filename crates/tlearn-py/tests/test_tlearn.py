"""The Python package against the command line, on the real EfficientNet-Lite0 and Tux Paint
photos: codes equal `tlearn extract`'s features.npy, probabilities equal `tlearn predict`'s, the
scikit-learn transformer fits, clones, pickles and runs in GridSearchCV, the GIL is released
while encoding, and bad input is an error entry or a Python exception, never a crash.

Needs `make models data` (efficientnet-lite0, data/tuxpaint), the release CLI
(target/release/tlearn) and the package installed (`make python`); `make test` runs it.
A missing input fails the test with its path.
"""

import json
import pickle
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
from pathlib import Path

import numpy as np

import tlearn
from tlearn.sklearn import CNNCodes, HeadClassifier

REPO = Path(__file__).resolve().parents[3]
TLEARN = REPO / "target" / "release" / "tlearn"
TUXPAINT = REPO / "data" / "tuxpaint"
MODEL = "efficientnet-lite0"
CLASSES = ["birds", "fish"]
PER_CLASS = 10
THREADS = 2


def require(path):
    if not path.exists():
        raise AssertionError("missing test input {} (run `make models data` and build)".format(path))
    return path


def run(*args):
    out = subprocess.run([str(require(TLEARN)), *map(str, args)], capture_output=True, text=True)
    if out.returncode != 0:
        raise AssertionError("tlearn {} failed:\n{}".format(" ".join(map(str, args)), out.stderr))
    return out.stdout


class Shared:
    """One data set, one CLI extraction and one CLI-trained head for every test."""

    tmp = None

    @classmethod
    def setup(cls):
        if cls.tmp is not None:
            return
        require(REPO / "models" / (MODEL + ".onnx"))
        cls.tmp = Path(tempfile.mkdtemp(prefix="tlearn-py-test-"))
        cls.data = cls.tmp / "data"
        for c in CLASSES:
            (cls.data / c).mkdir(parents=True)
            files = sorted(require(TUXPAINT / c).glob("*.png"))[:PER_CLASS]
            for f in files:
                shutil.copy(f, cls.data / c / f.name)
        cls.cache = cls.tmp / "cache"
        run("extract", cls.data, "--out", cls.cache, "--model", MODEL, "--threads", THREADS, "--quiet")
        index = (cls.cache / "index.csv").read_text().splitlines()[1:]
        cls.rel = [line.split(",")[0] for line in index]
        cls.labels = [r.split("/")[0] for r in cls.rel]
        cls.paths = [str(cls.data / r) for r in cls.rel]
        cls.run_dir = cls.tmp / "run"
        run("train", cls.cache, "--head", "logistic", "--transform", "standard", "--folds", "2",
            "--out", cls.run_dir)
        cls.head_path = cls.run_dir / "head.json"
        cls.extractor = tlearn.Extractor(MODEL, threads=THREADS)

    @classmethod
    def cli_predict(cls, paths):
        return json.loads(run("predict", "--head", cls.head_path, "--json", "--top", len(CLASSES),
                              *paths))


def setUpModule():
    Shared.setup()


def tearDownModule():
    if Shared.tmp is not None:
        shutil.rmtree(Shared.tmp, ignore_errors=True)


class ExtractorMatchesTheCommandLine(unittest.TestCase):
    def test_codes_equal_features_npy_bit_for_bit(self):
        codes, errors = Shared.extractor.encode_paths(Shared.paths)
        self.assertEqual(errors, [])
        cli = np.load(Shared.cache / "features.npy")
        self.assertEqual(codes.dtype, np.float32)
        self.assertEqual(codes.shape, cli.shape)
        np.testing.assert_array_equal(codes, cli)
        self.assertEqual(Shared.extractor.dim, cli.shape[1])
        meta = json.loads((Shared.cache / "meta.json").read_text())
        self.assertEqual(Shared.extractor.fingerprint, meta["extractor"])

    def test_bytes_give_the_same_codes_as_paths(self):
        items = [Path(p).read_bytes() for p in Shared.paths[:4]]
        codes, errors = Shared.extractor.encode_bytes(items)
        self.assertEqual(errors, [])
        np.testing.assert_array_equal(codes, np.load(Shared.cache / "features.npy")[:4])

    def test_extract_writes_the_cache_the_command_line_writes(self):
        out = Shared.tmp / "py-cache"
        summary = Shared.extractor.extract(Shared.data, out)
        self.assertEqual(summary["rows"], len(Shared.paths))
        mine, cli = tlearn.read_cache(out), tlearn.read_cache(Shared.cache)
        np.testing.assert_array_equal(mine.codes, cli.codes)
        self.assertEqual(mine.paths, Shared.rel)
        self.assertEqual(mine.labels, Shared.labels)
        self.assertEqual(mine.meta["extractor"], cli.meta["extractor"])

    def test_the_gil_is_released_while_encoding(self):
        ticks = [0]
        done = threading.Event()

        def count():
            while not done.is_set():
                ticks[0] += 1
                time.sleep(0.001)

        t = threading.Thread(target=count)
        t.start()
        try:
            start = ticks[0]
            t0 = time.perf_counter()
            codes, errors = Shared.extractor.encode_paths(Shared.paths)
            seconds = time.perf_counter() - t0
            during = ticks[0] - start
        finally:
            done.set()
            t.join()
        self.assertEqual(errors, [])
        # A thread blocked by the GIL for the whole call would tick once or twice; released,
        # it ticks about once per millisecond (the bound asks for a tenth of that, so that other processes on the cores do not fail it).
        self.assertGreater(during, max(20, seconds * 100), "{} ticks in {:.2f} s".format(during, seconds))


class HeadMatchesTheCommandLine(unittest.TestCase):
    def test_probabilities_and_classes_equal_tlearn_predict(self):
        head = tlearn.Head.load(Shared.head_path)
        self.assertEqual(sorted(head.classes), CLASSES)
        codes, _ = Shared.extractor.encode_paths(Shared.paths)
        proba = head.predict_proba(codes)
        cli = Shared.cli_predict(Shared.paths)
        self.assertEqual(cli["errors"], [])
        cli_proba = np.zeros_like(proba)
        for i, p in enumerate(cli["predictions"]):
            self.assertEqual(p["path"], Shared.paths[i])
            for r in p["top"]:
                cli_proba[i, r["index"]] = r["probability"]
        np.testing.assert_allclose(proba, cli_proba, rtol=0, atol=1e-6)
        predicted = head.predict(Shared.paths)
        self.assertEqual(list(predicted), [p["class"] for p in cli["predictions"]])
        on_images, errors = head.predict_paths(Shared.paths)
        self.assertEqual(errors, [])
        np.testing.assert_array_equal(on_images, proba)


class ScikitLearn(unittest.TestCase):
    def test_pipeline_fits_on_paths_clones_pickles_and_grid_searches(self):
        from sklearn.base import clone
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GridSearchCV
        from sklearn.pipeline import make_pipeline

        pipe = make_pipeline(CNNCodes(model=MODEL, threads=THREADS), LogisticRegression(max_iter=2000))
        pipe.fit(Shared.paths, Shared.labels)
        predicted = pipe.predict(Shared.paths)
        self.assertEqual(set(predicted), set(CLASSES))
        self.assertGreaterEqual(np.mean(predicted == np.asarray(Shared.labels)), 0.9)

        again = clone(pipe).fit(Shared.paths, Shared.labels)
        np.testing.assert_array_equal(again.predict(Shared.paths), predicted)
        thawed = pickle.loads(pickle.dumps(pipe))
        self.assertNotIn("_opened", thawed[0].__dict__)
        np.testing.assert_array_equal(thawed.predict(Shared.paths), predicted)

        names = pipe[0].get_feature_names_out()
        self.assertEqual(len(names), Shared.extractor.dim)
        self.assertEqual(names[0], "features_0")

        search = GridSearchCV(pipe, {"logisticregression__C": [0.1, 10.0]}, cv=2)
        search.fit(Shared.paths, Shared.labels)
        self.assertIn(search.best_params_["logisticregression__C"], [0.1, 10.0])
        self.assertEqual(len(search.predict(Shared.paths)), len(Shared.paths))

    def test_pipeline_with_the_saved_head_predicts_what_tlearn_predict_does(self):
        from sklearn.pipeline import make_pipeline

        pipe = make_pipeline(CNNCodes(model=MODEL, threads=THREADS),
                             HeadClassifier(head=str(Shared.head_path)))
        pipe.fit(Shared.paths)
        cli = Shared.cli_predict(Shared.paths)
        self.assertEqual(list(pipe.predict(Shared.paths)), [p["class"] for p in cli["predictions"]])
        thawed = pickle.loads(pickle.dumps(pipe))
        np.testing.assert_array_equal(thawed.predict_proba(Shared.paths), pipe.predict_proba(Shared.paths))


class BadInput(unittest.TestCase):
    def test_missing_and_corrupt_images_are_error_entries(self):
        corrupt = Shared.tmp / "corrupt.png"
        corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
        missing = Shared.tmp / "missing.png"
        paths = [Shared.paths[0], str(missing), str(corrupt)]
        codes, errors = Shared.extractor.encode_paths(paths)
        self.assertEqual([i for i, _ in errors], [1, 2])
        self.assertIn("missing.png", errors[0][1])
        self.assertIn("corrupt.png", errors[1][1])
        self.assertTrue(np.isnan(codes[1:]).all())
        np.testing.assert_array_equal(codes[0], np.load(Shared.cache / "features.npy")[0])
        codes, errors = Shared.extractor.encode_bytes([b"not an image"])
        self.assertEqual(errors[0][0], 0)
        self.assertTrue(np.isnan(codes).all())
        head = tlearn.Head.load(Shared.head_path)
        with self.assertRaisesRegex(ValueError, "missing.png"):
            head.predict(paths)
        with self.assertRaisesRegex(ValueError, "could not be encoded"):
            CNNCodes(model=MODEL, threads=THREADS).fit_transform(paths)
        self.assertTrue(np.isnan(CNNCodes(model=MODEL, on_error="nan").fit_transform(paths)[1]).all())

    def test_a_malformed_head_is_a_value_error_naming_the_field(self):
        def one_entry(bias):
            # ndarray's serde form {"v", "dim", "data"}, or a plain list.
            return {"v": 1, "dim": [1], "data": [0.0]} if isinstance(bias, dict) else [0.0]

        good = json.loads(Shared.head_path.read_text())
        for field, change in [
            ("dim", lambda h: h.__setitem__("dim", "wide")),
            ("head.bias", lambda h: h["head"].__setitem__("bias", one_entry(h["head"]["bias"]))),
        ]:
            bad = json.loads(json.dumps(good))
            change(bad)
            path = Shared.tmp / "bad-head.json"
            path.write_text(json.dumps(bad))
            with self.assertRaises(ValueError) as e:
                tlearn.Head.load(path)
            self.assertIn(field, str(e.exception))
        (Shared.tmp / "truncated.json").write_text(Shared.head_path.read_text()[:100])
        with self.assertRaisesRegex(ValueError, "not valid JSON"):
            tlearn.Head.load(Shared.tmp / "truncated.json")
        with self.assertRaises(FileNotFoundError):
            tlearn.Head.load(Shared.tmp / "no-such-head.json")

    def test_wrong_arguments_are_exceptions_with_the_library_message(self):
        head = tlearn.Head.load(Shared.head_path)
        with self.assertRaisesRegex(ValueError, "this head expects {}".format(head.dim)):
            head.predict_proba(np.zeros((2, 3), dtype=np.float32))
        with self.assertRaisesRegex(ValueError, "NaN or infinite"):
            head.predict_proba(np.full((1, head.dim), np.nan, dtype=np.float32))
        with self.assertRaisesRegex(ValueError, "same K on both sides"):
            tlearn.Extractor(MODEL, layer="features@2x3")
        with self.assertRaisesRegex(ValueError, "no-such-net"):
            tlearn.Extractor("no-such-net")
        with self.assertRaisesRegex(ValueError, "pool"):
            tlearn.Extractor(MODEL, pool="median")
        with self.assertRaisesRegex(ValueError, "threads"):
            tlearn.Extractor(MODEL, threads=0)
        with self.assertRaises(TypeError):
            Shared.extractor.encode_paths("one/path.png")


if __name__ == "__main__":
    unittest.main()
