#!/usr/bin/env python3
"""Accuracy benchmark: the real CLI, end to end, over seeded splits.

    .venv/bin/python bench/accuracy.py                       # every set, the tool's defaults
                                                             # (lite0 `extract --layer all` + mobilenetv2 `features`, train choosing)
    .venv/bin/python bench/accuracy.py --sets tuxpaint --label one-backbone --model2 none
    .venv/bin/python bench/accuracy.py --label after --extract-args="--layer all" \
        --train-args="--c-grid 0.001,0.01,0.1,1,10,100,1000"

(write `--extract-args=VALUE` with `=`: a separate value that starts with `--` is taken for a flag)

For each set: `tlearn extract --model MODEL EXTRACT_ARGS DATA --out CACHE` (incremental: a second
run with the same arguments reuses the cache) and, as `make demo` does, the second backbone's
`tlearn extract --model MODEL2 EXTRACT2_ARGS DATA --out CACHE2` (`--model2 none`: one backbone);
then for each seed `tlearn train CACHE [CACHE2] --seed S --test-size 0.3 TRAIN_ARGS --out RUN`
and `tlearn eval --head RUN/head.json CACHE [CACHE2] --out RUN`; the held-out accuracy is
`metrics.accuracy` of the eval report (report.json). Nothing is computed outside the CLI: the
figure is what a user of these commands gets. The defaults are `make demo`'s: MODEL
efficientnet-lite0 with `--layer all` (every named cut), MODEL2 mobilenetv2 `--layer features`.

Seeds (default): Tux Paint 0-9, Fashion-MNIST and MNIST 0-2 (`--seeds SET=0-9`, repeatable, to
change). Extra arguments also come from the environment, so a Makefile run can be steered:
TLEARN_BENCH_MODEL, TLEARN_BENCH_EXTRACT_ARGS, TLEARN_BENCH_MODEL2, TLEARN_BENCH_EXTRACT2_ARGS,
TLEARN_BENCH_TRAIN_ARGS, TLEARN_BENCH_LABEL,
TLEARN_BENCH_SETS (space-separated). Command-line flags win over the environment.

Writes bench-out/accuracy.json: one entry per label (a re-run with the same label replaces it),
each with the exact commands, per-seed accuracy, the chosen head of every seed (from cv.json, plus
`chosen_cut`/`transform` when train reports them) and mean ± std (population std over the seeds)
per set; prints the table of this run and, per set, every label in the file (before / after).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SEEDS = {"tuxpaint": "0-9", "fashion-mnist": "0-2", "mnist": "0-2"}
GOALS = {"tuxpaint": 0.90, "fashion-mnist": 0.90, "mnist": 0.985}
TEST_SIZE = "0.3"


class BenchError(RuntimeError):
    pass


def parse_seeds(spec: str) -> list[int]:
    """'0-9' or '0,3,5' or '0-2,7' -> sorted seeds."""
    seeds: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            seeds.update(range(int(lo), int(hi) + 1))
        else:
            seeds.add(int(part))
    if not seeds:
        raise BenchError(f"empty seed list {spec!r}")
    return sorted(seeds)


def run(cmd: list[str], log: Path) -> float:
    """Run one CLI command, its output appended to LOG; a failure names the command and the log."""
    t0 = time.perf_counter()
    with open(log, "a") as f:
        f.write(f"$ {shlex.join(cmd)}\n")
        f.flush()
        proc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise BenchError(f"`{shlex.join(cmd)}` failed (exit {proc.returncode}); see {log}")
    return time.perf_counter() - t0


def chosen_of(cv: dict) -> dict:
    """What train chose, as cv.json records it (fields of other versions kept when present)."""
    out = {"params": cv.get("chosen_params"), "scaling": cv.get("scaling"), "pca": cv.get("pca")}
    for key in ("chosen_cut", "cut", "transform", "chosen_transform", "view_rows",
                "view_rows_cv"):
        if key in cv:
            out[key] = cv[key]
    if isinstance(cv.get("cuts"), dict):
        out["cut"] = cv["cuts"].get("chosen")  # the selection over cuts (and backbones)
    return out


def extract(name: str, data: Path, model: str, extract_args: list[str], args, log: Path):
    """`tlearn extract` of one backbone: (cache, its command, seconds)."""
    # One cache per (set, model, extract arguments): before/after runs with other extract
    # arguments never share a cache, and a re-run with the same ones reuses it.
    key = hashlib.sha256(json.dumps([model, extract_args]).encode()).hexdigest()[:10]
    cache = Path(args.work) / "cache" / f"{name}--{model}--{key}"
    cmd = [str(Path(args.tlearn)), "extract", "-q", "--model", model, *extract_args, str(data),
           "--out", str(cache)]
    print(f"[{name}] extract -> {cache}", file=sys.stderr, flush=True)
    return cache, cmd, run(cmd, log)


def bench_set(name: str, seeds: list[int], args, log: Path) -> dict:
    data = ROOT / "data" / name
    if not data.is_dir():
        raise BenchError(f"{data}: data set missing (run `make data DATASETS={name}`)")
    train_args = shlex.split(args.train_args)
    cache, extract_cmd, extract_s = extract(name, data, args.model,
                                            shlex.split(args.extract_args), args, log)
    caches = [str(cache)]
    extract2_cmd, extract2_s = None, None
    if args.model2 not in ("", "none"):
        cache2, extract2_cmd, extract2_s = extract(name, data, args.model2,
                                                   shlex.split(args.extract2_args), args, log)
        caches.append(str(cache2))
    runs = Path(args.work) / "runs" / args.label / name
    tlearn = str(Path(args.tlearn))
    per_seed = []
    for seed in seeds:
        out = runs / f"seed-{seed}"
        train_cmd = [tlearn, "train", *caches, "--seed", str(seed), "--test-size", TEST_SIZE,
                     *train_args, "--out", str(out)]
        train_s = run(train_cmd, log)
        eval_cmd = [tlearn, "eval", "--head", str(out / "head.json"), *caches, "--out", str(out)]
        run(eval_cmd, log)
        report = json.loads((out / "report.json").read_text())
        cv = json.loads((out / "cv.json").read_text())
        acc = report["metrics"]["accuracy"]
        per_seed.append({
            "seed": seed,
            "accuracy": acc,
            "balanced_accuracy": report["metrics"].get("balanced_accuracy"),
            "held_out": report["metrics"].get("n"),
            "chosen": chosen_of(cv),
            "train_seconds": round(train_s, 2),
        })
        print(f"[{name}] seed {seed}: held-out accuracy {acc:.4f} ({train_s:.1f} s train)",
              file=sys.stderr, flush=True)
    accs = [s["accuracy"] for s in per_seed]
    return {
        "set": name,
        "seeds": seeds,
        "test_size": float(TEST_SIZE),
        "extract_command": shlex.join(extract_cmd),
        "extract2_command": extract2_cmd and shlex.join(extract2_cmd),
        "train_command": shlex.join([tlearn, "train", *caches, "--seed", "S", "--test-size",
                                     TEST_SIZE, *train_args, "--out", str(runs / "seed-S")]),
        "extract_seconds": round(extract_s, 1),
        "extract2_seconds": extract2_s and round(extract2_s, 1),
        "mean": statistics.fmean(accs),
        "std": statistics.pstdev(accs),
        "goal": GOALS.get(name),
        "per_seed": per_seed,
    }


def fmt_row(label: str, r: dict) -> str:
    goal = r.get("goal")
    mark = "" if goal is None else ("  meets goal" if r["mean"] >= goal else f"  goal {goal}")
    return (f"| {r['set']:<13} | {label:<20} | {r['mean']:.4f} ± {r['std']:.4f} "
            f"| {len(r['seeds']):>5} |{mark}")


def main(argv: list[str]) -> int:
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", nargs="+", default=env("TLEARN_BENCH_SETS", "tuxpaint fashion-mnist mnist").split())
    p.add_argument("--seeds", action="append", default=[], metavar="SET=SPEC",
                   help="seeds of one set, e.g. tuxpaint=0-9 or mnist=0,1 (default: tuxpaint=0-9, the others 0-2)")
    p.add_argument("--model", default=env("TLEARN_BENCH_MODEL", "efficientnet-lite0"))
    p.add_argument("--extract-args", default=env("TLEARN_BENCH_EXTRACT_ARGS", "--layer all"),
                   help="extra `tlearn extract` arguments, one shell-quoted string (default "
                        "`--layer all`, as `make demo`: every registry cut, train choosing)")
    p.add_argument("--model2", default=env("TLEARN_BENCH_MODEL2", "mobilenetv2"),
                   help="second backbone (make demo's MODEL2); none: one backbone")
    p.add_argument("--extract2-args", default=env("TLEARN_BENCH_EXTRACT2_ARGS", "--layer features"),
                   help="extra `tlearn extract` arguments of the second backbone")
    p.add_argument("--train-args", default=env("TLEARN_BENCH_TRAIN_ARGS", ""),
                   help="extra `tlearn train` arguments, one shell-quoted string")
    p.add_argument("--label", default=env("TLEARN_BENCH_LABEL", "default"),
                   help="name of this configuration in accuracy.json (before / after)")
    p.add_argument("--tlearn", default=str(ROOT / "target/release/tlearn"))
    p.add_argument("--work", default=str(ROOT / "runs/bench-accuracy"),
                   help="caches and runs go here (default runs/bench-accuracy)")
    p.add_argument("--out", default=str(ROOT / "bench-out/accuracy.json"))
    args = p.parse_args(argv)

    seeds = dict(DEFAULT_SEEDS)
    for spec in args.seeds:
        name, _, s = spec.partition("=")
        if not s:
            p.error(f"--seeds {spec!r}: expected SET=SPEC, e.g. tuxpaint=0-9")
        seeds[name] = s
    if not Path(args.tlearn).is_file():
        p.error(f"{args.tlearn}: no tlearn binary (run `cargo build --release`)")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    log = Path(args.work) / f"{args.label}.log"
    log.write_text("")
    results = []
    try:
        for name in args.sets:
            results.append(bench_set(name, parse_seeds(seeds.get(name, "0-2")), args, log))
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    doc = json.loads(out.read_text()) if out.exists() else {"runs": []}
    entry = {
        "label": args.label,
        "model": args.model,
        "extract_args": args.extract_args,
        "model2": args.model2,
        "extract2_args": args.extract2_args,
        "train_args": args.train_args,
        "tlearn": args.tlearn,
        "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True).stdout.strip(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sets": results,
    }
    # Same label: merge per set, so one set can be re-run without losing the others.
    old = next((r for r in doc["runs"] if r["label"] == args.label), None)
    if old is not None and old.get("extract_args") == entry["extract_args"] \
            and old.get("train_args") == entry["train_args"] and old.get("model") == entry["model"] \
            and old.get("model2") == entry["model2"] \
            and old.get("extract2_args") == entry["extract2_args"]:
        done = {r["set"] for r in results}
        entry["sets"] = [r for r in old["sets"] if r["set"] not in done] + results
    doc["runs"] = [r for r in doc["runs"] if r["label"] != args.label] + [entry]
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(out)

    print(f"\nheld-out accuracy, mean ± std over seeds (test size {TEST_SIZE}); {out}")
    print("| set           | configuration        | accuracy        | seeds |")
    print("|---|---|---|---|")
    for name in args.sets:
        for run_ in doc["runs"]:
            for r in run_["sets"]:
                if r["set"] == name:
                    print(fmt_row(run_["label"], r))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
