"""Cost of a second backbone: EfficientNet-Lite0 `--layer all` alone, against Lite0 `--layer all`
plus MobileNetV2 `features` in one pass (`tlearn extract --model2`, what `tlearn fit` does: each
image is read, hashed and decoded once and fed to both networks), and against the same two
caches made by two `extract` runs one after the other (each decodes every image).

Each side runs as child processes pinned with `taskset -c CPUS` (default 0,1), into fresh output
folders (nothing reused), and the sides alternate (the order rotates every round), so a slow
spell of the machine hits all of them. Reported per image set: each side's median wall seconds
(process start, model loads and extraction: what a user waits for), the per-round ratios
together/alone and apart/alone and their medians (the target for together: at most 1.15), and
MobileNetV2's own run (the second half of the two-run side) against Lite0's.
Output: `bench-out/backbones.json` and a table.

Usage: .venv/bin/python bench/backbones_bench.py [--sets tuxpaint jpeg12] [--repeat 5]
       [--cpus 0,1] [--threads 2] [--tlearn target/release/tlearn]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extract_bench import resolve_set  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
GOAL = 1.15


def run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", nargs="+", default=["tuxpaint", "jpeg12"])
    ap.add_argument("--count", type=int, default=80, help="images of the generated jpeg12 set")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cpus", default="0,1")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tlearn", default=str(REPO / "target" / "release" / "tlearn"))
    ap.add_argument("--out", default=str(REPO / "bench-out" / "backbones.json"))
    a = ap.parse_args()
    results = []
    for set_name in a.sets:
        name, data = resolve_set(set_name, a.count)
        results.append(bench_set(a, name, data))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=2) + "\n")
    print("\n| images | Lite0 `all` alone | + MobileNetV2, one pass | + MobileNetV2, two runs "
          "| one pass / alone | two runs / alone | MobileNetV2 run / Lite0 run |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        m = r["median_s"]
        print(f"| {r['images']} {r['set']} | {m['alone']:.2f} s | {m['together']:.2f} s | "
              f"{m['apart']:.2f} s | **{r['median_ratio']['together']:.3f}** | "
              f"{r['median_ratio']['apart']:.3f} | {r['median_ratio']['mobilenetv2']:.3f} |")
    print(f"goal: one pass / alone <= {GOAL}; {a.out}")


def bench_set(a, name: str, data: Path) -> dict:
    base = ["taskset", "-c", a.cpus, a.tlearn, "extract", "--quiet", "--threads", str(a.threads)]
    lite0 = ["--model", "efficientnet-lite0", "--layer", "all"]
    sides = ["alone", "together", "apart"]
    walls: dict[str, list[float]] = {k: [] for k in sides + ["mobilenetv2"]}
    ratios: dict[str, list[float]] = {"together": [], "apart": [], "mobilenetv2": []}
    rows = None
    with tempfile.TemporaryDirectory(prefix="tlearn-backbones-bench-") as tmp:
        for r in range(a.repeat):
            order = sides[r % 3:] + sides[:r % 3]
            this = {}
            for side in order:
                o1, o2 = Path(tmp) / f"{side}-{r}-a", Path(tmp) / f"{side}-{r}-b"
                if side == "alone":
                    this[side] = run(base + lite0 + [str(data), "--out", str(o1)])
                elif side == "together":
                    this[side] = run(base + lite0 + ["--model2", "mobilenetv2", "--out2", str(o2),
                                                     str(data), "--out", str(o1)])
                else:
                    mnv2 = run(base + ["--model", "mobilenetv2", str(data), "--out", str(o2)])
                    walls["mobilenetv2"].append(mnv2)
                    first = run(base + lite0 + [str(data), "--out", str(o1)])
                    ratios["mobilenetv2"].append(mnv2 / first)
                    this[side] = first + mnv2
                walls[side].append(this[side])
                if rows is None:
                    rows = json.loads((o1 / "summary.json").read_text())["rows"]
                for o in (o1, o2):
                    shutil.rmtree(o, ignore_errors=True)
            for k in ("together", "apart"):
                ratios[k].append(this[k] / this["alone"])
            print(f"{name} round {r + 1}: alone {this['alone']:.2f} s, one pass "
                  f"{this['together']:.2f} s ({ratios['together'][-1]:.3f}), two runs "
                  f"{this['apart']:.2f} s ({ratios['apart'][-1]:.3f})", flush=True)
    med = {k: statistics.median(v) for k, v in walls.items()}
    return {
        "set": name,
        "data": str(data),
        "cpus": a.cpus,
        "threads": a.threads,
        "images": rows,
        "median_s": med,
        "ratios": ratios,
        "median_ratio": {k: statistics.median(v) for k, v in ratios.items()},
        "goal": GOAL,
    }


if __name__ == "__main__":
    main()
