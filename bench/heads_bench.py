#!/usr/bin/env python3
"""Heads benchmark: tlearn (train + eval) against scikit-learn GridSearchCV on the same cached
vectors, the same train/held-out split and the same CV folds (read from tlearn's cv.json).

    .venv/bin/python bench/heads_bench.py [CACHE_DIR] [--no-large]
    .venv/bin/python bench/heads_bench.py --make-digits DIR     # a 64-d cache from sklearn digits
    .venv/bin/python bench/heads_bench.py --make-synthetic DIR --rows 60000 --dim 1280
    taskset -c 0,1 .venv/bin/python bench/heads_bench.py CACHE --auto --test-size 0.3

For each head (logistic, linear-svm, rbf-svm) and engine (`--engines tlearn,linfa`: tlearn's own
solvers, or linfa-logistic / linfa-svm; the linear SVM has only tlearn's) with one fixed grid,
prints held-out accuracy and wall time (CV + final fit; for tlearn the whole `tlearn train`
process) next to scikit-learn's, and writes bench-out/heads.json. `--repeat N` alternates the
runs N times and reports medians (single timings on a shared machine are noisy). It also times the linear SVM on a generated 60,000 x 1,280 cache
against LinearSVC (skip with --no-large).

`--auto` instead times tlearn's default `train --head auto` (every transform x head x C/gamma
of its default grid, with its early stopping along C and grid extension) against scikit-learn
GridSearchCV over tlearn's grid points, read from tlearn's cv.json: the transforms as
pipelines (StandardScaler; signed sqrt + StandardScaler; Normalizer; StandardScaler +
Normalizer; StandardScaler + PCA(0.99, whiten=True)) x LinearSVC / LogisticRegression / SVC
with the same C and absolute gamma values, the same split and folds, n_jobs=-1. GridSearchCV
has no early stopping, so `--sklearn-points` runs it twice per round: on the points tlearn
fitted ("fitted": same points) and on every point of the grid, skipped ones included ("all":
each tool with its defaults). Run it under `taskset -c 0,1` so both sides get the same two
cores (children inherit the affinity); the sides alternate `--repeat` times, and medians and
per-round ratios are reported with the 1-minute load average at each start.
"""
import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import warnings

import numpy as np

# LinearSVC at its default tol/max_iter warns about convergence on some folds; the figures
# are what a user running the defaults gets, so the warnings are only noise here.
warnings.filterwarnings("ignore", category=UserWarning)
try:
    from sklearn.exceptions import ConvergenceWarning
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")  # joblib workers inherit it
except ImportError:
    pass

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = ROOT / "runs/cache/tuxpaint--efficientnet-lite0--features--avg--none"
TLEARN = ROOT / "target/release/tlearn"
C_GRID = [0.01, 0.1, 1.0, 10.0]
GAMMA_MULTS = [0.1, 1.0, 10.0]  # times 1/dim


def write_cache(d: Path, x: np.ndarray, labels, paths, extractor):
    d.mkdir(parents=True, exist_ok=True)
    classes = sorted(set(labels))
    np.save(d / "features.npy", np.ascontiguousarray(x, dtype=np.float32))
    with open(d / "index.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "sha256"])
        for p, l, row in zip(paths, labels, x):
            w.writerow([p, l, hashlib.sha256(row.tobytes()).hexdigest()])
    with open(d / "skipped.csv", "w") as f:
        f.write("path,reason\n")
    meta = {
        "format": "tlearn-features", "version": 1, "dataset": str(d), "dim": int(x.shape[1]),
        "rows": int(x.shape[0]), "classes": classes, "extractor": extractor,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "tlearn_version": "bench",
    }
    (d / "meta.json").write_text(json.dumps(meta, indent=1))


def make_digits(d: Path):
    from sklearn.datasets import load_digits
    x, y = load_digits(return_X_y=True)
    labels = [f"digit{v}" for v in y]
    order = sorted(range(len(y)), key=lambda i: f"{labels[i]}/{i:05d}.png")
    x = x[order]
    labels = [labels[i] for i in order]
    paths = [f"{labels[k]}/{i:05d}.png" for k, i in enumerate(order)]
    write_cache(d, x, labels, paths, {"backbone": "sklearn-digits-pixels", "sha256": "-",
                                      "layer": "pixels", "pool": "flatten", "preprocess": {},
                                      "augment": "none"})


def make_synthetic(d: Path, rows: int, dim: int, classes: int, seed: int = 0):
    """Structured random data like CNN codes: non-negative, class means on a low-rank subspace,
    overlapping classes (linear accuracy well below 100%)."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(32, dim)).astype(np.float32)
    centres = rng.normal(size=(classes, 32)).astype(np.float32) @ basis * 0.05
    y = rng.integers(0, classes, size=rows)
    x = np.empty((rows, dim), dtype=np.float32)
    for s in range(0, rows, 5000):
        e = min(rows, s + 5000)
        lat = rng.normal(size=(e - s, 32)).astype(np.float32) @ basis * 0.1
        x[s:e] = np.maximum(centres[y[s:e]] + lat + rng.normal(size=(e - s, dim)).astype(np.float32), 0)
    labels = [f"class{v:02d}" for v in y]
    order = sorted(range(rows), key=lambda i: f"{labels[i]}/{i:06d}.png")
    write_cache(d, x[order], [labels[i] for i in order],
                [f"{labels[i]}/{i:06d}.png" for i in order],
                {"backbone": f"synthetic-{rows}x{dim}", "sha256": "-", "layer": "-",
                 "pool": "avg", "preprocess": {}, "augment": "none"})


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{p.stderr}")


def run_tlearn(cache: Path, head: str, out: Path, c_grid, gamma_grid, folds, seed, test_size,
               engine="tlearn"):
    cmd = [str(TLEARN), "train", str(cache), "--head", head, "--seed", str(seed),
           "--test-size", str(test_size), "--folds", str(folds), "--out", str(out),
           "--c-grid", ",".join(map(str, c_grid)), "--engine", engine,
           # scikit-learn's side: one standardised grid, every point fitted, no extension
           "--transform", "standard", "--c-patience", "0", "--grid-extension", "0"]
    if head == "rbf-svm":
        cmd += ["--gamma-grid", ",".join(repr(g) for g in gamma_grid)]
    t0 = time.perf_counter()
    run(cmd)
    t_train = time.perf_counter() - t0
    run([str(TLEARN), "eval", "--head", str(out / "head.json"), str(cache), "--out", str(out)])
    cv = json.loads((out / "cv.json").read_text())
    rep = json.loads((out / "report.json").read_text())
    chosen = cv["chosen_params"]
    return {"acc": rep["metrics"]["accuracy"], "seconds": t_train,
            "cv_seconds": cv["cv_seconds"], "chosen": chosen,
            "cv_acc": cv["candidates"][cv["chosen"]]["mean_accuracy"]}, cv["split"]


def run_sklearn(x, y, split, head, c_grid, gamma_grid):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, PredefinedSplit
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, LinearSVC
    tr = np.array(split["train_rows"])
    te = np.array(split["test_rows"])
    folds = PredefinedSplit(np.array(split["fold_of_train_row"]))
    if head == "logistic":
        clf, grid = LogisticRegression(max_iter=1000), {"clf__C": c_grid}
    elif head == "linear-svm":
        clf, grid = LinearSVC(), {"clf__C": c_grid}
    else:
        clf, grid = SVC(kernel="rbf"), {"clf__C": c_grid, "clf__gamma": gamma_grid}
    pipe = Pipeline([("scale", StandardScaler()), ("clf", clf)])
    gs = GridSearchCV(pipe, grid, cv=folds, n_jobs=-1)
    t0 = time.perf_counter()
    gs.fit(x[tr], y[tr])
    secs = time.perf_counter() - t0
    acc = float((gs.predict(x[te]) == y[te]).mean())
    return {"acc": acc, "seconds": secs, "chosen": {k.replace("clf__", ""): v for k, v in gs.best_params_.items()},
            "cv_acc": float(gs.best_score_)}


def load_cache(cache: Path):
    x = np.load(cache / "features.npy")
    with open(cache / "index.csv", newline="") as f:
        y = np.array([r["label"] for r in csv.DictReader(f)])
    return x, y


def median(v):
    v = sorted(v)
    return v[len(v) // 2] if len(v) % 2 else 0.5 * (v[len(v) // 2 - 1] + v[len(v) // 2])


def bench(cache: Path, heads, folds, seed, test_size, work: Path, engines=("tlearn",), repeat=1):
    x, y = load_cache(cache)
    dim = x.shape[1]
    gamma_grid = [m / dim for m in GAMMA_MULTS]
    rows = []
    for head in heads:
        sides = [e for e in engines if e == "tlearn" or head != "linear-svm"] + ["sklearn"]
        runs = {s: [] for s in sides}
        split = None
        for _ in range(repeat):  # alternate the sides, then take medians
            for side in sides:
                if side == "sklearn":
                    runs[side].append(run_sklearn(x, y, split, head, C_GRID, gamma_grid))
                else:
                    t, split = run_tlearn(cache, head, work / f"{head}-{side}", C_GRID, gamma_grid,
                                          folds, seed, test_size, side)
                    runs[side].append(t)
        for side in sides:
            r = dict(runs[side][0])
            r["seconds_all"] = [v["seconds"] for v in runs[side]]
            r["seconds"] = median(r["seconds_all"])
            rows.append({"head": head, "engine": side, "result": r})
            print(f"  {head} {side}: {r['acc']:.4f} in {r['seconds']:.2f}s (median of {repeat})",
                  file=sys.stderr)
    return {"cache": str(cache), "rows": int(x.shape[0]), "dim": dim, "folds": folds,
            "seed": seed, "test_size": test_size, "c_grid": C_GRID, "gamma_grid": gamma_grid,
            "repeat": repeat, "heads": rows}


def sklearn_transform(name):
    from sklearn.decomposition import PCA
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, Normalizer, StandardScaler
    if name == "standard":
        return StandardScaler()
    if name == "sqrt-standard":
        return Pipeline([("sqrt", FunctionTransformer(lambda v: np.sign(v) * np.sqrt(np.abs(v)))),
                         ("scale", StandardScaler())])
    if name == "l2":
        return Normalizer()
    if name == "standard-l2":
        return Pipeline([("scale", StandardScaler()), ("l2", Normalizer())])
    if name == "pca-whiten":
        return Pipeline([("scale", StandardScaler()),
                         ("pca", PCA(n_components=0.99, whiten=True, svd_solver="full"))])
    sys.exit(f"no scikit-learn equivalent for transform {name}")


def sklearn_grid(cv, points="all"):
    """tlearn's grid points as a GridSearchCV parameter grid: one dict per transform and head
    (and gamma for the RBF SVM). `points="all"`: every cv.json candidate, the ones tlearn's
    early stopping along C skipped included (what GridSearchCV, which has no early stopping,
    fits for that grid: the tool-defaults comparison); `"fitted"`: only the points tlearn
    fitted (the same-points comparison)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC, LinearSVC
    groups = {}
    for c in cv["candidates"]:
        if points == "fitted" and c.get("skipped"):
            continue
        t = c["transform"]["kind"]
        key = (t, c["kind"], c.get("gamma"))
        groups.setdefault(key, set()).add(c["c"])
    grid = []
    for (t, kind, gamma), cs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        clf = {"linear-svm": LinearSVC(), "logistic": LogisticRegression(max_iter=1000),
               "rbf-svm": SVC(kernel="rbf")}[kind]
        g = {"pre": [sklearn_transform(t)], "clf": [clf], "clf__C": sorted(cs)}
        if gamma is not None:
            g["clf__gamma"] = [gamma]
        grid.append(g)
    return grid


def sklearn_auto(x, y, cv, points):
    from sklearn.model_selection import GridSearchCV, PredefinedSplit
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC
    split = cv["split"]
    tr, te = np.array(split["train_rows"]), np.array(split["test_rows"])
    pipe = Pipeline([("pre", StandardScaler()), ("clf", LinearSVC())])
    gs = GridSearchCV(pipe, sklearn_grid(cv, points),
                      cv=PredefinedSplit(np.array(split["fold_of_train_row"])), n_jobs=-1)
    t0 = time.perf_counter()
    gs.fit(x[tr], y[tr])
    secs = time.perf_counter() - t0
    bp = gs.best_params_
    return secs, {"acc": float((gs.predict(x[te]) == y[te]).mean()), "cv_acc": float(gs.best_score_),
                  "chosen": {"clf": type(bp["clf"]).__name__, "C": bp["clf__C"],
                             "gamma": bp.get("clf__gamma")},
                  "transform": str(bp["pre"]).replace("\n", "")[:80],
                  "grid_points": len(gs.cv_results_["params"])}


def loadavg():
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return None


def bench_auto(cache: Path, folds, seed, test_size, work: Path, repeat, modes=("fitted", "all"),
               partial: Path | None = None):
    """Alternate tlearn and scikit-learn (each `modes` entry: which grid points) `repeat` times;
    medians and per-round ratios tlearn / scikit-learn. After each round the figures so far are
    written to `partial` (a long run that is stopped keeps what it measured)."""
    x, y = load_cache(cache)
    out = work / "auto"
    cmd = [str(TLEARN), "train", str(cache), "--head", "auto", "--seed", str(seed),
           "--test-size", str(test_size), "--folds", str(folds), "--out", str(out)]
    t_runs = []
    s_runs = {m: [] for m in modes}
    s_res = {}
    t_res = None
    loads = []
    for _ in range(repeat):
        loads.append(loadavg())
        t0 = time.perf_counter()
        run(cmd)
        t_runs.append(time.perf_counter() - t0)
        run([str(TLEARN), "eval", "--head", str(out / "head.json"), str(cache), "--out", str(out)])
        cv = json.loads((out / "cv.json").read_text())
        rep = json.loads((out / "report.json").read_text())
        t_res = {"acc": rep["metrics"]["accuracy"], "chosen": cv["chosen_params"],
                 "transform": cv["chosen_transform"]["kind"],
                 "cv_acc": cv["candidates"][cv["chosen"]]["mean_accuracy"],
                 "cv_seconds": cv["cv_seconds"],
                 "grid_points": len(cv["candidates"]),
                 "fitted": sum(1 for c in cv["candidates"] if not c.get("skipped"))}
        print(f"  auto: tlearn {t_runs[-1]:.1f}s (load {loads[-1]})", file=sys.stderr)
        for m in modes:
            loads.append(loadavg())
            secs, s_res[m] = sklearn_auto(x, y, cv, m)
            s_runs[m].append(secs)
            print(f"  auto: scikit-learn ({m} points) {secs:.1f}s (load {loads[-1]})", file=sys.stderr)
        if partial is not None:
            partial.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps(summarise_auto(
                cache, x, folds, seed, test_size, len(t_runs), loads, t_res, t_runs, s_res, s_runs,
                modes), indent=1))
    return summarise_auto(cache, x, folds, seed, test_size, repeat, loads, t_res, t_runs, s_res,
                          s_runs, modes)


def summarise_auto(cache, x, folds, seed, test_size, repeat, loads, t_res, t_runs, s_res, s_runs,
                   modes):
    t_res = dict(t_res)
    t_res["seconds_all"], t_res["seconds"] = t_runs, median(t_runs)
    res = {"cache": str(cache), "rows": int(x.shape[0]), "dim": int(x.shape[1]), "folds": folds,
           "seed": seed, "test_size": test_size, "repeat": repeat,
           "cpus": sorted(os.sched_getaffinity(0)), "loadavg_1min_at_starts": loads,
           "tlearn": t_res, "sklearn": {}}
    for m in modes:
        r = dict(s_res[m])
        r["seconds_all"], r["seconds"] = s_runs[m], median(s_runs[m])
        r["pair_ratios_tlearn_over_sklearn"] = [t / s for t, s in zip(t_runs, s_runs[m])]
        r["median_ratio_tlearn_over_sklearn"] = t_res["seconds"] / r["seconds"]
        res["sklearn"][m] = r
    return res


def print_auto(res):
    print(f"\ncache {res['cache']} ({res['rows']} x {res['dim']}, test size {res['test_size']}, "
          f"{res['folds']} folds, CPUs {res['cpus']}, median of {res['repeat']} alternating runs, "
          f"1-min load at starts {res['loadavg_1min_at_starts']})")
    r = res["tlearn"]
    print(f"{'tlearn':<22} held-out {r['acc']:.4f}  CV {r['cv_acc']:.4f}  {r['seconds']:8.1f} s  "
          f"grid points {r['grid_points']} ({r['fitted']} fitted)  chosen {r['chosen']} on {r['transform']}")
    for m, r in res["sklearn"].items():
        print(f"{'scikit-learn, ' + m:<22} held-out {r['acc']:.4f}  CV {r['cv_acc']:.4f}  "
              f"{r['seconds']:8.1f} s  grid points {r['grid_points']}  chosen {r['chosen']} on {r['transform']}")
        print(f"  time ratio tlearn / scikit-learn ({m} points): median {r['median_ratio_tlearn_over_sklearn']:.2f}, "
              f"per round {[round(v, 2) for v in r['pair_ratios_tlearn_over_sklearn']]}")


def print_table(res):
    print(f"\ncache {res['cache']} ({res['rows']} x {res['dim']}, {res['folds']} folds, "
          f"C grid {res['c_grid']}, median of {res['repeat']} alternating runs)")
    print(f"{'head':<11} {'engine':<8} {'held-out acc':>12} {'CV+fit s':>9}  chosen")
    for r in res["heads"]:
        t = r["result"]
        print(f"{r['head']:<11} {r['engine']:<8} {t['acc']:>12.4f} {t['seconds']:>9.2f}  {t['chosen']}")


def main():
    global TLEARN, C_GRID
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache", nargs="?", default=str(DEFAULT_CACHE))
    ap.add_argument("--make-digits", metavar="DIR")
    ap.add_argument("--make-synthetic", metavar="DIR")
    ap.add_argument("--rows", type=int, default=60000)
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--heads", default="logistic,linear-svm,rbf-svm")
    ap.add_argument("--engines", default="tlearn,linfa",
                    help="tlearn engines to compare with scikit-learn [%(default)s]")
    ap.add_argument("--repeat", type=int, default=3,
                    help="alternating runs per side; timings are medians [%(default)s]")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--test-size", type=float, default=0.2)
    ap.add_argument("--no-large", dest="large", action="store_false",
                    help="skip timing linear-svm on a generated 60,000 x 1,280 cache "
                         "(2 folds, C=0.01; ~4 min with LinearSVC)")
    ap.add_argument("--auto", action="store_true",
                    help="time `train --head auto` (default grid) against the same grid in "
                         "scikit-learn instead of the per-head comparison")
    ap.add_argument("--sklearn-points", default="fitted,all",
                    help="with --auto: scikit-learn fits the grid points tlearn fitted "
                         "('fitted': same points) and/or every point of tlearn's grid, the ones "
                         "its early stopping skipped included ('all': each tool's defaults) "
                         "[%(default)s]")
    ap.add_argument("--out", default=str(ROOT / "bench-out/heads.json"))
    ap.add_argument("--tlearn", default=str(ROOT / "target/release/tlearn"),
                    help="tlearn binary [%(default)s]")
    a = ap.parse_args()
    TLEARN = Path(a.tlearn)
    if a.make_digits:
        make_digits(Path(a.make_digits))
        return
    if a.make_synthetic:
        make_synthetic(Path(a.make_synthetic), a.rows, a.dim, a.classes)
        return
    cache = Path(a.cache)
    if not (cache / "meta.json").exists():
        sys.exit(f"no feature cache at {cache} (run `make features` first, or pass a cache dir)")
    if not TLEARN.exists():
        sys.exit(f"{TLEARN} missing: run `cargo build --release` first")
    out = {}
    if a.auto:
        with tempfile.TemporaryDirectory() as tmp:
            res = bench_auto(cache, a.folds, a.seed, a.test_size, Path(tmp), a.repeat,
                             a.sklearn_points.split(","), Path(a.out))
        print_auto(res)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=1))
        print(f"wrote {a.out}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        res = bench(cache, a.heads.split(","), a.folds, a.seed, a.test_size, Path(tmp),
                    a.engines.split(","), a.repeat)
        print_table(res)
        out["main"] = res
        if a.large:
            big = Path(tmp) / "synthetic-60000x1280"
            make_synthetic(big, 60000, 1280, 10)
            C_GRID = [0.01]
            res = bench(big, ["linear-svm"], 2, a.seed, a.test_size, Path(tmp) / "big")
            print_table(res)
            out["large"] = res
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
