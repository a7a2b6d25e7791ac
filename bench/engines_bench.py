#!/usr/bin/env python3
"""Extraction through the engines against the command line: images/s of `tlearn extract`
(EfficientNet-Lite0 `features`, 2 threads), `tlearn.ray.extract` with its defaults on one Ray
node with 2 CPUs (one actor of 2 CPUs), on two Ray nodes of 1 CPU each
(`ray.cluster_utils.Cluster`, one actor each), and `tlearn.spark.extract` on Spark `local[2]`;
every side pinned to the same cores, the sides alternating within each round, medians over the
rounds. An engine's time is its `extract` call (actors or Python workers started, model shipped
and opened, images encoded, Parquet written), not the start of the cluster or session, which a
user pays once. Each engine runs two jobs on one cluster or session: the first job, and a second
one on the warm engine (its workers' processes and imports already there), as a user's next job
would be. For Ray, the workers' span (first batch started to last shard written,
`encode_seconds`) is also set against the CLI's own span (its `summary.json` seconds): the rate
of a running cluster, without the engine's start-up.

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
JOBS = ["first", "second"]


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
        secs, encode = [], []
        for job in range(2):
            t0 = time.perf_counter()
            s = tlearn.ray.extract(data, f"{out}-{job}")
            secs.append(time.perf_counter() - t0)
            encode.append(s["encode_seconds"])
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
        secs, encode = [], [None, None]
        for job in range(2):
            t0 = time.perf_counter()
            s = tlearn.spark.extract(df, f"{out}-{job}", root=str(data))
            secs.append(time.perf_counter() - t0)
        spark.stop()
    print(json.dumps({"seconds": secs, "encode": encode, "rows": s["rows"]}))


def timed(a, side, data, out):
    if side == "cli":
        cmd = ["taskset", "-c", a.cpus, str(REPO / "target" / "release" / "tlearn"), "extract",
               "--quiet", "--threads", "2", "--layer", "features", str(data), "--out", str(out)]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        secs = time.perf_counter() - t0
        # Its own span (listing, model, images, cache), without the process start.
        inner = json.loads((Path(out) / "summary.json").read_text())["seconds"]
        return [secs, secs], [inner, inner]
    cmd = ["taskset", "-c", a.cpus, sys.executable, __file__, "--engine", side, str(data), str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{side} failed:\n{p.stderr[-3000:]}")
    got = json.loads(p.stdout.strip().splitlines()[-1])
    return got["seconds"], got["encode"]


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
        secs = {(s, j): [] for s in SIDES for j in JOBS}
        inner = {(s, j): [] for s in SIDES for j in JOBS}
        with tempfile.TemporaryDirectory(prefix="tlearn-engines-bench-") as tmp:
            for r in range(a.rounds):
                for side in SIDES:
                    out = Path(tmp) / f"{side}-{r}"
                    for j, t, e in zip(JOBS, *timed(a, side, data, out)):
                        secs[side, j].append(t)
                        inner[side, j].append(e)
                    for p in Path(tmp).glob(f"{side}-{r}*"):
                        shutil.rmtree(p, ignore_errors=True)
                    print(f"{name} round {r} {side}: "
                          + ", ".join(f"{j} {secs[side, j][-1]:.2f} s" for j in JOBS), flush=True)
        med = {k: statistics.median(v) for k, v in secs.items()}
        ratio = {k: statistics.median(c / e for c, e in zip(secs["cli", k[1]], v))
                 for k, v in secs.items()}
        # Workers' span against the CLI's own span, where the engine reports one.
        steady = {k: statistics.median(c / e for c, e in zip(inner["cli", k[1]], v))
                  for k, v in inner.items() if None not in v}
        results.append({"set": name, "images": images,
                        "sides": [{"side": s, "job": j, "seconds": secs[s, j],
                                   "median_s": med[s, j], "median_ratio_vs_cli": ratio[s, j],
                                   "inner_seconds": inner[s, j],
                                   "median_inner_ratio_vs_cli": steady.get((s, j))}
                                  for s in SIDES for j in JOBS]})
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=2) + "\n")
    print("\n| images | side | job | median s | images/s | images/s ÷ CLI's (median of pairs) "
          "| workers' images/s ÷ CLI's |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        for x in r["sides"]:
            if x["side"] == "cli" and x["job"] == "second":
                continue
            job = "—" if x["side"] == "cli" else x["job"]
            print(f"| {r['images']} {r['set']} | {x['side']} | {job} | {x['median_s']:.2f} | "
                  f"{r['images'] / x['median_s']:.1f} | {x['median_ratio_vs_cli']:.2f} | "
                  + ("—" if x["median_inner_ratio_vs_cli"] is None or x["side"] == "cli"
                     else f"{x['median_inner_ratio_vs_cli']:.2f}") + " |")
    print(a.out)


if __name__ == "__main__":
    main()
