#!/usr/bin/env python3
"""Dense head benchmark: `tlearn train --head mlp` against scikit-learn's MLPClassifier on the
same cached codes, the same train/held-out split, the same CV folds (read from tlearn's cv.json)
and the same grid; and against tlearn's other heads on the same splits.

    taskset -c 0,1 .venv/bin/python bench/mlp_bench.py CACHE --seeds 0-19 [--out FILE]
        [--others logistic,linear-svm,rbf-svm] [--tlearn target/release/tlearn]

For each seed:
- tlearn: `train CACHE --head mlp --transform standard --seed S --test-size 0.3 --folds 5
  --c-patience 0 --grid-extension 0` (every grid point fitted, no extension: the grid
  scikit-learn searches) then `eval`; wall time of the `train` process.
- scikit-learn: GridSearchCV(StandardScaler + MLPClassifier(solver="adam", lr 1e-3, batch 200,
  max_iter 200, early_stopping=True, validation_fraction=0.1, n_iter_no_change=10,
  random_state=S)) over the same hidden widths × alpha (= tlearn's weight decay), with
  PredefinedSplit on tlearn's folds, n_jobs=-1, refit on the training part; held-out accuracy on
  tlearn's held-out rows; wall time of `fit`.
- tlearn's other heads (`--head logistic|linear-svm|rbf-svm --transform standard`, their default
  grids; `--others` picks which, at least one: the first gives the split) on the same seed (the
  same split, checked).
The two timed sides alternate within each seed. Prints per-seed rows, the paired differences
(tlearn mlp minus each other, mean ± standard error over seeds) and median times; writes JSON.
"""
import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from heads_bench import TLEARN, load_cache, median, run  # noqa: E402

warnings.filterwarnings("ignore")
BIN = TLEARN
HIDDEN = [64, 256]
DECAY = [1e-4, 1e-2, 1.0]
OTHERS = ["logistic", "linear-svm", "rbf-svm"]


def seeds(spec):
    out = []
    for part in spec.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def tlearn(cache, head, seed, out, extra=()):
    cmd = [str(BIN), "train", str(cache), "--head", head, "--transform", "standard",
           "--seed", str(seed), "--test-size", "0.3", "--folds", "5", "--out", str(out), *extra]
    t0 = time.perf_counter()
    run(cmd)
    secs = time.perf_counter() - t0
    run([str(BIN), "eval", "--head", str(out / "head.json"), str(cache), "--out", str(out)])
    cv = json.loads((out / "cv.json").read_text())
    rep = json.loads((out / "report.json").read_text())
    return rep["metrics"]["accuracy"], secs, cv


def sklearn_mlp(x, y, split, seed):
    from sklearn.model_selection import GridSearchCV, PredefinedSplit
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    tr, te = np.array(split["train_rows"]), np.array(split["test_rows"])
    clf = MLPClassifier(solver="adam", learning_rate_init=1e-3, batch_size=200, max_iter=200,
                        early_stopping=True, validation_fraction=0.1, n_iter_no_change=10,
                        random_state=seed)
    pipe = Pipeline([("pre", StandardScaler()), ("clf", clf)])
    grid = {"clf__hidden_layer_sizes": [(h,) for h in HIDDEN], "clf__alpha": DECAY}
    gs = GridSearchCV(pipe, grid, cv=PredefinedSplit(np.array(split["fold_of_train_row"])),
                      n_jobs=-1)
    t0 = time.perf_counter()
    gs.fit(x[tr], y[tr])
    secs = time.perf_counter() - t0
    acc = float((gs.predict(x[te]) == y[te]).mean())
    bp = gs.best_params_
    return acc, secs, f"H={bp['clf__hidden_layer_sizes'][0]} alpha={bp['clf__alpha']:g}"


def mean_se(d):
    m = statistics.mean(d)
    se = statistics.stdev(d) / len(d) ** 0.5 if len(d) > 1 else float("nan")
    return m, se


def main():
    global BIN, OTHERS
    ap = argparse.ArgumentParser()
    ap.add_argument("cache", type=Path)
    ap.add_argument("--seeds", default="0-19")
    ap.add_argument("--work", type=Path, default=Path("bench-out/mlp"))
    ap.add_argument("--out", type=Path, default=Path("bench-out/mlp.json"))
    ap.add_argument("--others", default=",".join(OTHERS))
    ap.add_argument("--tlearn", type=Path, default=TLEARN)
    a = ap.parse_args()
    BIN = a.tlearn
    OTHERS = [h for h in a.others.split(",") if h]
    if not OTHERS:
        sys.exit("--others needs at least one head (the first gives the split)")
    x, y = load_cache(a.cache)
    grid = ["--hidden-grid", ",".join(map(str, HIDDEN)),
            "--weight-decay-grid", ",".join(map(repr, DECAY)),
            "--c-patience", "0", "--grid-extension", "0"]
    rows = []
    print(f"{'seed':>4} {'mlp':>6} {'sk-mlp':>6} " + " ".join(f"{h:>10}" for h in OTHERS)
          + f" {'t mlp':>7} {'t sk':>7}  picks (tlearn | sklearn)", flush=True)
    for s in seeds(a.seeds):
        work = a.work / a.cache.name / f"seed{s}"
        # The other heads first: the logistic run gives the split (the same for every head
        # of one seed); then the two timed sides, alternating which goes first.
        others, split = {}, None
        for h in OTHERS:
            o_acc, _, o_cv = tlearn(a.cache, h, s, work / h)
            split = split or o_cv["split"]
            if o_cv["split"]["test_rows"] != split["test_rows"]:
                sys.exit(f"seed {s}: {h} split differs")
            others[h] = o_acc
        if s % 2 == 0:
            acc, t_secs, cv = tlearn(a.cache, "mlp", s, work / "mlp", grid)
            sk_acc, sk_secs, sk_pick = sklearn_mlp(x, y, split, s)
        else:
            sk_acc, sk_secs, sk_pick = sklearn_mlp(x, y, split, s)
            acc, t_secs, cv = tlearn(a.cache, "mlp", s, work / "mlp", grid)
        if cv["split"]["test_rows"] != split["test_rows"]:
            sys.exit(f"seed {s}: mlp split differs")
        row = {"seed": s, "mlp": acc, "sklearn_mlp": sk_acc, "others": others,
               "t_mlp": t_secs, "t_sklearn": sk_secs, "pick": str(cv["chosen_params"]),
               "sklearn_pick": sk_pick, "test_rows": len(cv["split"]["test_rows"])}
        rows.append(row)
        print(f"{s:>4} {acc:6.4f} {sk_acc:6.4f} "
              + " ".join(f"{others[h]:10.4f}" for h in OTHERS)
              + f" {t_secs:7.2f} {sk_secs:7.2f}  {row['pick']} | {sk_pick}", flush=True)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps({"cache": str(a.cache), "hidden": HIDDEN, "decay": DECAY,
                                     "rows": rows}, indent=1))
    print(f"\n{len(rows)} seeds, {rows[0]['test_rows']} held-out images each")
    for name, key in [("scikit-learn MLPClassifier", None)] + [(h, h) for h in OTHERS]:
        d = [r["mlp"] - (r["sklearn_mlp"] if key is None else r["others"][key]) for r in rows]
        m, se = mean_se(d)
        print(f"mlp - {name}: {m:+.4f} ± {se:.4f}")
    print(f"mean accuracy: mlp {statistics.mean(r['mlp'] for r in rows):.4f}, scikit-learn "
          f"{statistics.mean(r['sklearn_mlp'] for r in rows):.4f}, "
          + ", ".join(f"{h} {statistics.mean(r['others'][h] for r in rows):.4f}" for h in OTHERS))
    tm, ts = median([r["t_mlp"] for r in rows]), median([r["t_sklearn"] for r in rows])
    ratios = [r["t_mlp"] / r["t_sklearn"] for r in rows]
    print(f"median time: tlearn train {tm:.2f} s, scikit-learn GridSearchCV.fit {ts:.2f} s, "
          f"median pair ratio {median(ratios):.2f}")


if __name__ == "__main__":
    main()
