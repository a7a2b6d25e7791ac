#!/usr/bin/env python3
"""Paired differences between configurations of `bench/accuracy.py` (labels in
bench-out/accuracy.json): per set, each label's held-out accuracy minus the base label's on the
same seeds, checked to be the same held-out images (head.json `split.held_out` of both runs), as
mean ± standard error of the per-split differences, with wins/ties/losses.

    .venv/bin/python bench/paired.py --base default LABEL... [--sets tuxpaint] [--json OUT]

Prints a markdown table per set (label, seeds, mean accuracy, paired difference).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def held_out(work: Path, label: str, name: str, seed: int) -> list[str]:
    head = json.loads((work / "runs" / label / name / f"seed-{seed}" / "head.json").read_text())
    return sorted(head["split"]["held_out"])


def paired(base: dict, other: dict, work: Path, base_label: str, label: str, name: str) -> dict:
    a = {s["seed"]: s["accuracy"] for s in base["per_seed"]}
    b = {s["seed"]: s["accuracy"] for s in other["per_seed"]}
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise SystemExit(f"{name}: {label} and {base_label} share no seed")
    for s in seeds:
        if held_out(work, base_label, name, s) != held_out(work, label, name, s):
            raise SystemExit(f"{name} seed {s}: {label} and {base_label} held out different images")
    d = [b[s] - a[s] for s in seeds]
    se = statistics.stdev(d) / math.sqrt(len(d)) if len(d) > 1 else float("nan")
    return {"label": label, "seeds": seeds, "mean": statistics.fmean(b[s] for s in seeds),
            "base_mean": statistics.fmean(a[s] for s in seeds), "diff": statistics.fmean(d), "se": se,
            "wins": sum(x > 0 for x in d), "ties": sum(x == 0 for x in d), "losses": sum(x < 0 for x in d)}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("labels", nargs="+")
    p.add_argument("--base", default="default")
    p.add_argument("--sets", nargs="+", default=None)
    p.add_argument("--accuracy", default=str(ROOT / "bench-out/accuracy.json"))
    p.add_argument("--work", default=str(ROOT / "runs/bench-accuracy"))
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    runs = {r["label"]: r for r in json.loads(Path(a.accuracy).read_text())["runs"]}
    for label in [a.base, *a.labels]:
        if label not in runs:
            raise SystemExit(f"label {label!r} not in {a.accuracy}; known: {', '.join(runs)}")
    sets = a.sets or [s["set"] for s in runs[a.base]["sets"]]
    out = {}
    for name in sets:
        base = next((s for s in runs[a.base]["sets"] if s["set"] == name), None)
        if base is None:
            raise SystemExit(f"{a.base} has no {name} run")
        rows = []
        for label in a.labels:
            other = next((s for s in runs[label]["sets"] if s["set"] == name), None)
            if other is None:
                print(f"({label}: no {name} run)", file=sys.stderr)
                continue
            rows.append(paired(base, other, Path(a.work), a.base, label, name))
        out[name] = rows
        print(f"\n{name}: held-out accuracy, paired with `{a.base}` "
              f"({statistics.fmean(s['accuracy'] for s in base['per_seed']):.4f} over its seeds)")
        print("| configuration | seeds | accuracy | Δ vs base (mean ± s.e.) | wins/ties/losses |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['label']} | {len(r['seeds'])} | {r['mean']:.4f} | "
                  f"{100 * r['diff']:+.2f} ± {100 * r['se']:.2f} pts | {r['wins']}/{r['ties']}/{r['losses']} |")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
