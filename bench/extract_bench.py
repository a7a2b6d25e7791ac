"""End-to-end extraction benchmark: `tlearn extract` vs the onnxruntime pipeline a Python user
would write (PIL decode + resize + numpy normalise + onnxruntime, CPU, same ONNX, same threads,
vectors saved as .npy). Both run in one invocation over the same real image folder.

Output: `bench-out/extract.json` and a table on stdout. Each side runs in its own child process;
peak memory is that child's max RSS (os.wait4). "images/s" is over the extraction loop only
(model loading reported separately); "wall" includes process start and model loading.

Usage: .venv/bin/python bench/extract_bench.py [--data DIR] [--threads 2] [--repeat N]
       [--tlearn target/release/tlearn] [--model efficientnet-lite0]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

ORT_SCRIPT = r"""
import json, os, sys, time
t0 = time.perf_counter()
import numpy as np
import onnxruntime as ort
from PIL import Image

data, model, out, threads, crop = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
so = ort.SessionOptions()
so.intra_op_num_threads = threads
so.inter_op_num_threads = 1
sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
inp = sess.get_inputs()[0].name
t_load = time.perf_counter() - t0
target = crop * 256 / 224
short = round(target)

paths = []
for cls in sorted(os.listdir(data)):
    d = os.path.join(data, cls)
    if cls.startswith(".") or not os.path.isdir(d):
        continue
    for f in sorted(os.listdir(d)):
        if not f.startswith("."):
            paths.append(os.path.join(d, f))

t1 = time.perf_counter()
feats, n_ok = [], 0
for p in paths:
    try:
        img = Image.open(p)
        img.load()
    except Exception:
        continue
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.new("RGB", img.size, (255, 255, 255))
        img.paste(rgba, mask=rgba.split()[3])
    else:
        img = img.convert("RGB")
    w, h = img.size
    # Same arithmetic as the reference fixtures (and tlearn).
    if w <= h:
        nw, nh = short, round(h * target / w)
    else:
        nw, nh = round(w * target / h), short
    img = img.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - crop) // 2, (nh - crop) // 2
    img = img.crop((left, top, left + crop, top + crop))
    x = (np.asarray(img, dtype=np.float32) - 127.0) / 128.0
    x = x.transpose(2, 0, 1)[None]
    feats.append(sess.run(["features"], {inp: x})[0][0])
    n_ok += 1
np.save(out, np.stack(feats).astype(np.float32))
t_loop = time.perf_counter() - t1
print(json.dumps({"images": n_ok, "load_s": t_load, "loop_s": t_loop}))
"""


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, float, str, str]:
    """Run cmd as a child, reap it with os.wait4 to get its own peak RSS (MiB)."""
    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe, text=True, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read(), fe.read()
    if p.returncode != 0:
        sys.exit(f"command failed ({p.returncode}): {' '.join(cmd)}\n{out}\n{err}")
    return wall, ru.ru_maxrss / 1024.0, out, err


def pick_data(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit).resolve()
    for name in ("tuxpaint", "smoke", "fashion-mnist"):
        p = REPO / "data" / name
        if (p / "MANIFEST.json").exists():
            return p
    sys.exit("no data set found: run `make data DATASETS=tuxpaint` (make bench does)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="runs per side; the best is reported")
    ap.add_argument("--tlearn", default=str(REPO / "target" / "release" / "tlearn"))
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--out", default=str(REPO / "bench-out" / "extract.json"))
    ap.add_argument("--extra", nargs="*", default=[], help="extra tlearn extract arguments")
    args = ap.parse_args()

    data = pick_data(args.data)
    onnx = REPO / "models" / f"{args.model}.onnx"
    if not onnx.exists():
        sys.exit(f"{onnx} missing: run `make models MODELS={args.model}`")
    work = Path(tempfile.mkdtemp(prefix="tlearn-bench-"))
    results: dict = {"data": str(data), "model": args.model, "threads": args.threads}
    try:
        script = work / "ort_pipeline.py"
        script.write_text(ORT_SCRIPT)
        # The two sides alternate (tlearn, onnxruntime, tlearn, ...) so that a slow spell of a
        # shared machine hits both; the best run of each side is reported, and the ratio of
        # each adjacent pair too.
        runs_t, runs_o = [], []
        for i in range(args.repeat):
            cache = work / f"cache{i}"
            report = work / f"summary{i}.json"
            cmd = [args.tlearn, "extract", "--model", args.model, "--layer", "features", "--pool", "avg",
                   str(data), "--out", str(cache), "--threads", str(args.threads), "--quiet",
                   "--report", str(report), *args.extra]
            wall, rss, _, _ = run_measured(cmd, env={**os.environ, "CI": "1"})
            s = json.loads(report.read_text())
            runs_t.append({"images": s["extracted"], "skipped": len(s["skipped"]), "wall_s": wall,
                           "loop_s": s["seconds"], "images_per_s": s["extracted"] / s["seconds"],
                           "images_per_s_wall": s["extracted"] / wall, "peak_rss_mib": rss})

            cmd = [sys.executable, str(script), str(data), str(onnx), str(work / f"ort{i}.npy"),
                   str(args.threads), str(args.crop)]
            wall, rss, out, _ = run_measured(cmd)
            s = json.loads(out.strip().splitlines()[-1])
            runs_o.append({"images": s["images"], "wall_s": wall, "load_s": s["load_s"], "loop_s": s["loop_s"],
                           "images_per_s": s["images"] / s["loop_s"], "images_per_s_wall": s["images"] / wall,
                           "peak_rss_mib": rss})
        best_t = max(runs_t, key=lambda r: r["images_per_s"])
        best_o = max(runs_o, key=lambda r: r["images_per_s"])
        results["tlearn"] = best_t
        results["pair_ratios"] = [round(t["images_per_s"] / o["images_per_s"], 3) for t, o in zip(runs_t, runs_o)]
        results["median_pair_ratio"] = sorted(results["pair_ratios"])[len(runs_t) // 2]
        results["runs"] = {"tlearn": [r["images_per_s"] for r in runs_t],
                           "onnxruntime": [r["images_per_s"] for r in runs_o]}
        results["onnxruntime"] = best_o
        results["ratio"] = best_t["images_per_s"] / best_o["images_per_s"]
        results["ratio_wall"] = best_t["images_per_s_wall"] / best_o["images_per_s_wall"]

        # Same vectors? (tlearn rows are sorted by relative path, as the ORT loop is.)
        try:
            import numpy as np

            a = np.load(work / "cache0" / "features.npy")
            b = np.load(work / "ort0.npy")
            if a.shape == b.shape:
                results["max_abs_diff_vs_ort"] = float(np.abs(a - b).max())
                results["mean_abs_diff_vs_ort"] = float(np.abs(a - b).mean())
        except Exception as e:  # noqa: BLE001 - informational only
            results["diff_error"] = str(e)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    t, o = results["tlearn"], results["onnxruntime"]
    print(f"data: {data} ({t['images']} images), {args.threads} threads")
    print(f"{'':12} {'images/s':>9} {'wall img/s':>10} {'peak MiB':>9}")
    print(f"{'tlearn':12} {t['images_per_s']:9.1f} {t['images_per_s_wall']:10.1f} {t['peak_rss_mib']:9.0f}")
    print(f"{'onnxruntime':12} {o['images_per_s']:9.1f} {o['images_per_s_wall']:10.1f} {o['peak_rss_mib']:9.0f}")
    print(f"ratio (tlearn / onnxruntime, extraction loop): {results['ratio']:.2f} (best runs); "
          f"median of {len(results['pair_ratios'])} adjacent pairs {results['median_pair_ratio']:.2f}; "
          f"wall: {results['ratio_wall']:.2f}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
