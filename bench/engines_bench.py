#!/usr/bin/env python3
"""Extraction through the engines against the command line: images/s of `tlearn extract`
(EfficientNet-Lite0 `features`, 2 threads), `tlearn.ray.extract` on one Ray node with 2 CPUs
(two actors of one CPU), on two Ray nodes of 1 CPU each (`ray.cluster_utils.Cluster`), and
`tlearn.spark.extract` on Spark `local[2]`; every side pinned to the same cores, the sides
alternating within each round, medians over the rounds. An engine's time is its `extract`
call (actors or Python workers started, model shipped and opened, images encoded, Parquet
written), not the start of the cluster or session, which a user pays once.

Usage: .venv/bin/python bench/engines_bench.py [--sets tuxpaint jpeg12] [--rounds 3]
Output: `bench-out/engines.json` and a table.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from extract_bench import resolve_set  # noqa: E402

SIDES = ["cli", "ray-1x2", "ray-2x1", "spark-local2"]


def engine(side, data, out):
    """Run in a child process: start the engine, time one extraction, print its seconds."""
    if side.startswith("ray"):
        import ray
        import tlearn.ray

        if side == "ray-1x2":
            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
            cluster = None
        else:
            from ray.cluster_utils import Cluster

            cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
            cluster.add_node(num_cpus=1)
            ray.init(address=cluster.address, log_to_driver=False)
            cluster.wait_for_nodes()
        t0 = time.perf_counter()
        s = tlearn.ray.extract(data, out, num_cpus=1)
        secs = time.perf_counter() - t0
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
    else:
        os.environ["PYSPARK_PYTHON"] = sys.executable
        from pyspark.sql import SparkSession

        import tlearn.spark

        spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
                 .config("spark.ui.showConsoleProgress", "false").getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")
        df = (spark.read.format("binaryFile").option("recursiveFileLookup", "true")
              .load(str(data)))
        t0 = time.perf_counter()
        s = tlearn.spark.extract(df, str(out), root=str(data))
        secs = time.perf_counter() - t0
        spark.stop()
    print(json.dumps({"seconds": secs, "rows": s["rows"]}))


def timed(a, side, data, out):
    if side == "cli":
        cmd = ["taskset", "-c", a.cpus, str(REPO / "target" / "release" / "tlearn"), "extract",
               "--quiet", "--threads", "2", "--layer", "features", str(data), "--out", str(out)]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        return time.perf_counter() - t0
    cmd = ["taskset", "-c", a.cpus, sys.executable, __file__, "--engine", side, str(data), str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{side} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])["seconds"]


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--engine":
        engine(sys.argv[2], sys.argv[3], sys.argv[4])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", nargs="+", default=["tuxpaint", "jpeg12"])
    ap.add_argument("--count", type=int, default=80, help="images of the generated jpeg12 set")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cpus", default="0,1")
    ap.add_argument("--out", default=str(REPO / "bench-out" / "engines.json"))
    a = ap.parse_args()
    results = []
    for set_name in a.sets:
        name, data = resolve_set(set_name, a.count)
        images = sum(1 for p in Path(data).glob("*/*") if p.is_file())
        secs = {s: [] for s in SIDES}
        with tempfile.TemporaryDirectory(prefix="tlearn-engines-bench-") as tmp:
            for r in range(a.rounds):
                for side in SIDES:
                    out = Path(tmp) / f"{side}-{r}"
                    secs[side].append(timed(a, side, data, out))
                    shutil.rmtree(out, ignore_errors=True)
                    print(f"{name} round {r} {side}: {secs[side][-1]:.2f} s", flush=True)
        med = {s: statistics.median(v) for s, v in secs.items()}
        ratio = {s: statistics.median(c / e for c, e in zip(secs["cli"], secs[s])) for s in SIDES}
        results.append({"set": name, "images": images, "seconds": secs, "median_s": med,
                        "median_ratio_vs_cli": ratio})
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=2) + "\n")
    print("\n| images | side | median s | images/s | images/s ÷ CLI's (median of pairs) |")
    print("|---|---|---|---|---|")
    for r in results:
        for s in SIDES:
            print(f"| {r['images']} {r['set']} | {s} | {r['median_s'][s]:.2f} | "
                  f"{r['images'] / r['median_s'][s]:.0f} | {r['median_ratio_vs_cli'][s]:.2f} |")
    print(a.out)


if __name__ == "__main__":
    main()
