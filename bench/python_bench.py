"""The Python package against the command line: `tlearn.Extractor.encode_paths` from Python
against `tlearn extract`, same model, cut, threads and cores, on the Tux Paint PNGs and on
12-megapixel JPEGs (the `jpeg12` set of bench/extract_bench.py), or any DIR/<class>/<image>.

Each side runs in its own child process pinned with `taskset -c CPUS` (default 0,1), and the
sides alternate (cli, python, then python, cli, ...). Reported per side: the median wall
images/s (process start, imports, model load and extraction) and the median loop images/s (the
extraction alone: `summary.json`'s seconds for the CLI, the time around `encode_paths` in
Python), and per round the ratio python/cli of each, with their medians. The CLI also hashes
every file and writes the cache; the Python side returns the codes as a numpy array.
Output: `bench-out/python.json` and a table.

Usage: .venv/bin/python bench/python_bench.py [--sets tuxpaint jpeg12] [--repeat 5]
       [--cpus 0,1] [--threads 2] [--model efficientnet-lite0] [--count 80]
Needs `make python` (the package in the venv) and `make build`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extract_bench import REPO, median, pin, resolve_set, run_measured  # noqa: E402

PY_SIDE = """
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
import tlearn
data, model, threads = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
paths = sorted(str(p) for c in data.iterdir() if c.is_dir() and not c.name.startswith(".")
               for p in c.iterdir() if p.is_file() and not p.name.startswith("."))
ex = tlearn.Extractor(model, layer="features", pool="avg", threads=threads)
t1 = time.perf_counter()
codes, errors = ex.encode_paths(paths)
t2 = time.perf_counter()
print(json.dumps({"images": len(paths) - len(errors), "errors": len(errors),
                  "loop_s": t2 - t1, "open_s": t1 - t0, "dim": int(codes.shape[1])}))
"""


def bench_set(args, name: str, data: Path, work: Path) -> dict:
    sides = ["cli", "python"]
    runs: dict[str, list[dict]] = {s: [] for s in sides}
    env = {**os.environ, "CI": "1"}
    for i in range(args.repeat):
        for side in (sides if i % 2 == 0 else sides[::-1]):
            if side == "cli":
                cache, report = work / f"{name}-cache{i}", work / f"{name}-summary{i}.json"
                cmd = [*pin(args.cpus), args.tlearn, "extract", "--model", args.model, "--layer", "features",
                       "--pool", "avg", str(data), "--out", str(cache), "--threads", str(args.threads),
                       "--quiet", "--report", str(report)]
                wall, rss, _, _ = run_measured(cmd, env=env)
                s = json.loads(report.read_text())
                n, loop = s["extracted"], s["seconds"]
                shutil.rmtree(cache, ignore_errors=True)
            else:
                cmd = [*pin(args.cpus), sys.executable, "-c", PY_SIDE, str(data), args.model, str(args.threads)]
                wall, rss, out, _ = run_measured(cmd, env=env)
                s = json.loads(out.strip().splitlines()[-1])
                n, loop = s["images"], s["loop_s"]
            runs[side].append({"images": n, "wall_s": wall, "images_per_s": n / wall,
                               "loop_images_per_s": n / loop, "peak_rss_mib": rss})
            r = runs[side][-1]
            print(f"  {name} round {i + 1}/{args.repeat} {side:6} {r['images_per_s']:7.1f} img/s wall "
                  f"{r['loop_images_per_s']:7.1f} loop {rss:5.0f} MiB", flush=True)
    res: dict = {"data": str(data), "runs": runs}
    for side in sides:
        res[side] = {k: median([r[k] for r in runs[side]])
                     for k in ("images_per_s", "loop_images_per_s", "peak_rss_mib")}
    for k in ("images_per_s", "loop_images_per_s"):
        pairs = [p[k] / c[k] for p, c in zip(runs["python"], runs["cli"])]
        res[f"pair_ratios_{k}"] = [round(x, 3) for x in pairs]
        res[f"median_ratio_{k}"] = round(median(pairs), 3)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=["tuxpaint", "jpeg12"])
    ap.add_argument("--count", type=int, default=80, help="images in the jpeg12 set")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cpus", default="0,1", help="taskset CPU list for both sides ('' = unpinned)")
    ap.add_argument("--repeat", type=int, default=5, help="alternating rounds; medians are reported")
    ap.add_argument("--tlearn", default=str(REPO / "target" / "release" / "tlearn"))
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--out", default=str(REPO / "bench-out" / "python.json"))
    args = ap.parse_args()
    try:
        import tlearn  # noqa: F401
    except ImportError:
        sys.exit("the tlearn Python package is not installed in this interpreter: run `make python`")
    if not (REPO / "models" / f"{args.model}.onnx").exists():
        sys.exit(f"models/{args.model}.onnx missing: run `make models MODELS={args.model}`")
    results: dict = {"model": args.model, "threads": args.threads, "cpus": args.cpus,
                     "repeat": args.repeat, "sets": {}}
    work = Path(tempfile.mkdtemp(prefix="tlearn-pybench-"))
    try:
        for s in args.sets:
            name, data = resolve_set(s, args.count)
            results["sets"][name] = bench_set(args, name, data, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{args.threads} threads, cpus {args.cpus or 'any'}, median of {args.repeat} alternating rounds")
    print(f"{'set':10} {'side':7} {'wall img/s':>11} {'loop img/s':>11} {'peak MiB':>9}")
    for name, r in results["sets"].items():
        for side in ("cli", "python"):
            print(f"{name:10} {side:7} {r[side]['images_per_s']:11.1f} {r[side]['loop_images_per_s']:11.1f} "
                  f"{r[side]['peak_rss_mib']:9.0f}")
        print(f"{name:10} {'py/cli':7} {r['median_ratio_images_per_s']:11.3f} "
              f"{r['median_ratio_loop_images_per_s']:11.3f}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
