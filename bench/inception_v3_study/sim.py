"""Paired scikit-learn simulation of Tux Paint held-out accuracy for backbone combinations.

Codes from bench/inception_v3_study/extract.py (one npz). Each block: signed sqrt, then L2 normalisation;
blocks concatenated; then StandardScaler (fit on the training part) inside the head pipeline.
Splits: StratifiedShuffleSplit(test_size=0.3, random_state=seed), seeds 0-9, the same splits for
every configuration (paired). Heads: LogisticRegression C {0.1,1,10,100}, LinearSVC C {0.01,0.1,1},
SVC rbf C {1,10,100} gamma "scale"; the head is chosen by 5-fold (stratified, unshuffled, as
GridSearchCV) CV accuracy on the training part, first candidate on ties; then refit on the whole
training part and scored on the held-out part. Every fixed head's held-out accuracy is kept too.

usage: python sim.py CODES.npz[,MORE.npz] OUT.json [--seeds=A-B] CONFIG...   CONFIG = name=block+block (block keys of the npz;
a block "X~flip" means mean of X and X_flip)
"""

import json
import sys
import time
import warnings

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

warnings.filterwarnings("ignore", category=ConvergenceWarning)

HEADS = ([(f"logreg C={c}", LogisticRegression(C=c, max_iter=2000)) for c in (0.1, 1, 10, 100)]
         + [(f"linsvm C={c}", LinearSVC(C=c, max_iter=20000)) for c in (0.01, 0.1, 1)]
         + [(f"rbf C={c}", SVC(kernel="rbf", C=c, gamma="scale")) for c in (1, 10, 100)])


def block(z, key):
    if key.endswith("~flip"):
        k = key[:-5]
        x = (z[k] + z[k + "_flip"]) / 2
    else:
        x = z[key]
    x = np.sign(x) * np.sqrt(np.abs(x))
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def run(X, y, seeds=range(10)):
    rows = []
    for seed in seeds:
        tr, te = next(StratifiedShuffleSplit(1, test_size=0.3, random_state=seed).split(X, y))
        cv = StratifiedKFold(5)
        cvs, held = [], []
        for _, h in HEADS:
            pipe = make_pipeline(StandardScaler(), clone(h))
            sc = []
            for a, b in cv.split(X[tr], y[tr]):
                p = clone(pipe).fit(X[tr][a], y[tr][a])
                sc.append(np.mean(p.predict(X[tr][b]) == y[tr][b]))
            cvs.append(float(np.mean(sc)))
            p = clone(pipe).fit(X[tr], y[tr])
            held.append(float(np.mean(p.predict(X[te]) == y[te])))
        best = int(np.argmax(cvs))
        rows.append({"seed": seed, "cv": cvs, "held": held, "chosen": best, "acc": held[best]})
    return rows


def main():
    z = {}
    for f in sys.argv[1].split(","):  # several npz files of the same rows: merged
        d = dict(np.load(f))
        if "paths" in z:
            assert (d["paths"] == z["paths"]).all(), f
        z.update(d)
    y = z["y"]
    out = {}
    specs = sys.argv[3:]
    seeds = range(10)
    if specs and specs[0].startswith("--seeds="):  # e.g. --seeds=10-29 (a robustness rerun)
        a, b = specs.pop(0).split("=")[1].split("-")
        seeds = range(int(a), int(b) + 1)
    for spec in specs:
        name, blocks = spec.split("=")
        X = np.hstack([block(z, b) for b in blocks.split("+")])
        t0 = time.time()
        rows = run(X, y, seeds)
        acc = np.array([r["acc"] for r in rows])
        held = np.array([r["held"] for r in rows])
        out[name] = {"blocks": blocks, "dim": X.shape[1], "rows": rows, "mean": float(acc.mean()),
                     "std": float(acc.std()), "fixed_mean": dict(zip([h for h, _ in HEADS], held.mean(0).tolist()))}
        chosen = [HEADS[r["chosen"]][0] for r in rows]
        bf = int(np.argmax(held.mean(0)))
        print(f"{name:28s} dim {X.shape[1]:5d}  CV-chosen {acc.mean():.3f} ± {acc.std():.3f}   "
              f"best fixed head {HEADS[bf][0]} {held.mean(0)[bf]:.3f}   chosen: "
              + ", ".join(f"{c}×{chosen.count(c)}" for c in sorted(set(chosen))) + f"   ({time.time() - t0:.0f}s)",
              flush=True)
        json.dump(out, open(sys.argv[2], "w"), indent=1)


if __name__ == "__main__":
    main()
