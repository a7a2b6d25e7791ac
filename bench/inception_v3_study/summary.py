"""Paired summary of sim.py outputs: per configuration the CV-chosen held-out mean ± std over the
10 seeds, its paired difference to a reference configuration (mean ± standard error over seeds,
wins/ties/losses), the best fixed head, and the fixed logistic C=10 head.

usage: python summary.py REF_NAME SIM.json...   (markdown table on stdout; only configurations with
as many seeds as REF_NAME; the same name in several files = its seeds pooled)
"""

import json
import sys

import numpy as np

ref_name = sys.argv[1]
res = {}
for f in sys.argv[2:]:  # a configuration in several files (other seeds): rows pooled
    for name, r in json.load(open(f)).items():
        if name in res:
            res[name]["rows"] += r["rows"]
        else:
            res[name] = r
only = [n for n in res if len(res[n]["rows"]) == len(res[ref_name]["rows"])]
res = {n: res[n] for n in only}
for r in res.values():
    held = np.array([x["held"] for x in r["rows"]])
    r["fixed_mean"] = dict(zip(r["fixed_mean"], held.mean(0).tolist()))
ref = np.array([r["acc"] for r in res[ref_name]["rows"]])
HEAD = "logreg C=10"
names = list(res[ref_name]["fixed_mean"])
k = names.index(HEAD)
ref_fixed = np.array([r["held"][k] for r in res[ref_name]["rows"]])
print(f"| configuration | dim | CV-chosen head | Δ vs {ref_name} (± s.e., W/T/L) | best fixed head | fixed logreg C=10 | Δ fixed C=10 (± s.e., W/T/L) |")
print("|---|---|---|---|---|---|---|")
for name, r in res.items():
    acc = np.array([x["acc"] for x in r["rows"]])
    d = acc - ref
    fm = r["fixed_mean"]
    df = np.array([x["held"][k] for x in r["rows"]]) - ref_fixed
    bf = max(fm, key=fm.get)
    print(f"| {name} | {r['dim']} | {acc.mean():.3f} ± {acc.std():.3f} | {d.mean():+.3f} ± {d.std(ddof=1) / np.sqrt(len(d)):.3f} "
          f"({(d > 0).sum()}/{(d == 0).sum()}/{(d < 0).sum()}) | {fm[bf]:.3f} ({bf}) | {fm[HEAD]:.3f} | {df.mean():+.3f} ± {df.std(ddof=1) / np.sqrt(len(df)):.3f} ({(df > 0).sum()}/{(df == 0).sum()}/{(df < 0).sum()}) |")
