"""Cost of extracting every named cut in one pass: `tlearn extract --layer all` (one forward
pass per image, every registry cut pooled and written as a cut set) against `--layer features`
alone, on the same images, model, threads and cores.

Each side runs as its own child process, pinned with `taskset -c CPUS` (default 0,1), into a
fresh output directory (nothing reused), and the sides alternate (features, all, then the next
round in the other order), so a slow spell of the machine hits both. Reported: each side's
median wall seconds and images/s, the per-round ratio all/features and its median (the
target: at most 1.25). Output: `bench-out/cuts.json` and a table.

Usage: .venv/bin/python bench/cuts_bench.py [--data data/tuxpaint] [--repeat 5] [--cpus 0,1]
       [--threads 2] [--model efficientnet-lite0] [--tlearn target/release/tlearn]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(REPO / "data" / "tuxpaint"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cpus", default="0,1")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--tlearn", default=str(REPO / "target" / "release" / "tlearn"))
    ap.add_argument("--out", default=str(REPO / "bench-out" / "cuts.json"))
    a = ap.parse_args()
    data = Path(a.data)
    if not (data / "MANIFEST.json").exists():
        sys.exit(f"{data} missing: run `make data DATASETS=tuxpaint` (make bench does)")
    sides = {"features": "features", "all": "all"}
    walls: dict[str, list[float]] = {k: [] for k in sides}
    ratios = []
    rows = None
    with tempfile.TemporaryDirectory(prefix="tlearn-cuts-bench-") as tmp:
        for r in range(a.repeat):
            order = list(sides) if r % 2 == 0 else list(reversed(sides))
            this = {}
            for side in order:
                out = Path(tmp) / f"{side}-{r}"
                cmd = ["taskset", "-c", a.cpus, a.tlearn, "extract", "--quiet", "--model",
                       a.model, "--layer", sides[side], "--threads", str(a.threads), str(data),
                       "--out", str(out)]
                this[side] = run(cmd)
                walls[side].append(this[side])
                if rows is None:
                    rows = json.loads((out / "summary.json").read_text())["rows"]
                shutil.rmtree(out)
            ratios.append(this["all"] / this["features"])
            print(f"round {r + 1}: features {this['features']:.2f} s, all {this['all']:.2f} s, "
                  f"ratio {ratios[-1]:.3f}", flush=True)
    result = {
        "data": str(data),
        "model": a.model,
        "cpus": a.cpus,
        "threads": a.threads,
        "images": rows,
        "median_s": {k: statistics.median(v) for k, v in walls.items()},
        "images_per_s": {k: rows / statistics.median(v) for k, v in walls.items()},
        "ratio_all_over_features": ratios,
        "median_ratio": statistics.median(ratios),
        "goal": 1.25,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n| side | median s | images/s |\n|---|---|---|")
    for k in sides:
        print(f"| --layer {k} | {result['median_s'][k]:.2f} | {result['images_per_s'][k]:.1f} |")
    print(f"median ratio all/features: {result['median_ratio']:.3f} (goal <= 1.25); {a.out}")


if __name__ == "__main__":
    main()
