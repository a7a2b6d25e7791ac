#!/usr/bin/env python3
"""The dense head's training loop against candle-nn's on the same network and data.

Builds tlearn's `mlp_epochs` example and bench/candle-mlp, then runs each REPS times,
alternating, pinned to one core (`taskset -c CORE`, RAYON_NUM_THREADS=1, OMP_NUM_THREADS=1):
Dense(256, ReLU) -> Dense(10), Adam in mini-batches of 200, EPOCHS epochs, the first ROWS rows
of FEATURES, labels i % 10. Prints each side's median seconds and the median of the per-pair
ratios candle / tlearn (above 1: tlearn is faster).

    python3 bench/mlp_engines.py FEATURES.npy [--rows 121 216] [--epochs 100] [--reps 5] [--core 1]
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CANDLE = ROOT / "bench" / "candle-mlp"
SECONDS = re.compile(r": ([0-9.]+) s \(")


def build():
    subprocess.run(
        ["cargo", "build", "--release", "--workspace", "--example", "mlp_epochs"],
        cwd=ROOT,
        check=True,
    )
    subprocess.run(["cargo", "build", "--release", "--locked"], cwd=CANDLE, check=True)
    return (
        ROOT / "target" / "release" / "examples" / "mlp_epochs",
        CANDLE / "target" / "release" / "candle-mlp",
    )


def once(exe, features, rows, epochs, core):
    env = dict(os.environ, RAYON_NUM_THREADS="1", OMP_NUM_THREADS="1")
    cmd = ["taskset", "-c", str(core), str(exe), str(features), str(rows), str(epochs)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    m = SECONDS.search(out)
    if not m:
        sys.exit(f"{exe}: no timing in its output: {out!r}")
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("features", type=Path)
    ap.add_argument("--rows", type=int, nargs="+", default=[121, 216])
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--core", type=int, default=1)
    a = ap.parse_args()
    if not a.features.is_file():
        sys.exit(f"{a.features}: no such file")
    tlearn, candle = build()
    print("| rows | epochs | tlearn ndarray (s, median) | candle-nn (s, median) | candle / tlearn (median pair ratio) |")
    print("|---:|---:|---:|---:|---:|")
    for rows in a.rows:
        t, c = [], []
        for _ in range(a.reps):
            t.append(once(tlearn, a.features, rows, a.epochs, a.core))
            c.append(once(candle, a.features, rows, a.epochs, a.core))
        ratio = statistics.median(ci / ti for ti, ci in zip(t, c))
        print(
            f"| {rows} | {a.epochs} | {statistics.median(t):.3f} | {statistics.median(c):.3f} | {ratio:.2f} |",
            flush=True,
        )
        print(f"  tlearn {t}\n  candle {c}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
