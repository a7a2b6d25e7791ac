#!/usr/bin/env python3
"""Fine-tuning as a candidate of `train --head auto`, paired with the frozen defaults.

    .venv/bin/python bench/finetune_contest.py --set tuxpaint --seeds 0-19 --min-images 0

The frozen defaults are `bench/accuracy.py`'s (EfficientNet-Lite0 `extract --layer all` and
MobileNetV2 `--layer features`, `train` choosing); the spatial map is Lite0's `extract --layer
stage6 --pool flatten` of the same images. Per seed: `tlearn train CACHES --finetune-on MAPS
--finetune-min-images N --seed S --test-size 0.3`, then `tlearn eval --head RUN/head.json` on
CACHES, or on MAPS where CV kept the fine-tuned network. Where CV kept the frozen head, that head is the frozen defaults'
own (the frozen selection runs first and is seeded), so its held-out accuracy is the frozen
figure; where it kept the fine-tuned network, the frozen defaults are trained and evaluated
apart on the same split. Paired: the held-out accuracy of what the contest kept minus the
frozen defaults', mean ± standard error over the seeds.

Writes bench-out/finetune_contest-SET.json and prints a table per seed and the paired summary.
"""
from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy  # noqa: E402  (the same extraction, run helper and seed parser)

ROOT = accuracy.ROOT


def train_eval(tlearn: str, caches: list[str], maps: str | None, seed: int, extra: list[str],
               out: Path, log: Path) -> tuple[dict, dict, float]:
    """train, then eval of whichever head it kept (a fine-tuned one reads MAPS);
    (report.json, cv.json, train seconds)."""
    cmd = [tlearn, "train", *caches, "--seed", str(seed), "--test-size", accuracy.TEST_SIZE,
           *extra, "--out", str(out)]
    seconds = accuracy.run(cmd, log)
    cv = json.loads((out / "cv.json").read_text())
    kept = (cv.get("finetune") or {}).get("chosen", False)
    accuracy.run([tlearn, "eval", "--head", str(out / "head.json"),
                  *([maps] if kept else caches), "--out", str(out)], log)
    return json.loads((out / "report.json").read_text()), cv, seconds


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", default="tuxpaint")
    p.add_argument("--seeds", default="0-19")
    p.add_argument("--min-images", type=int, default=1000,
                   help="train --finetune-min-images (0: fine-tuning competes on any set)")
    p.add_argument("--ft-args", default="", help="extra --ft-* flags for the fine-tuning")
    p.add_argument("--tlearn", default=str(ROOT / "target" / "release" / "tlearn"))
    p.add_argument("--work", default=str(ROOT / "bench-out"))
    args = p.parse_args(argv)
    # accuracy.extract reads these attributes.
    args.model, args.model2 = "efficientnet-lite0", "mobilenetv2"
    seeds = accuracy.parse_seeds(args.seeds)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    log = work / "finetune_contest.log"
    data = ROOT / "data" / args.set
    if not data.is_dir():
        raise SystemExit(f"{data}: data set missing (run `make data DATASETS={args.set}`)")
    cache, _, _ = accuracy.extract(args.set, data, args.model, ["--layer", "all"], args, log)
    cache2, _, _ = accuracy.extract(args.set, data, args.model2, ["--layer", "features"], args, log)
    maps, _, _ = accuracy.extract(args.set, data, args.model,
                                  ["--layer", "stage6", "--pool", "flatten"], args, log)
    caches = [str(cache), str(cache2)]
    contest_args = ["--finetune-on", str(maps), "--finetune-min-images", str(args.min_images),
                    *shlex.split(args.ft_args)]
    runs = work / "runs" / "finetune-contest" / args.set
    rows = []
    for seed in seeds:
        rep, cv, seconds = train_eval(args.tlearn, caches, str(maps), seed,
                                      contest_args, runs / f"seed-{seed}", log)
        ft = cv.get("finetune")
        kept = bool(ft and ft["chosen"])
        acc = rep["metrics"]["accuracy"]
        if kept:
            frozen_rep, _, _ = train_eval(args.tlearn, caches, None, seed, [],
                                          runs / f"seed-{seed}-frozen", log)
            frozen = frozen_rep["metrics"]["accuracy"]
        else:
            frozen = acc
        row = {
            "seed": seed,
            "kept": "fine-tuned" if kept else "frozen",
            "accuracy": acc,
            "frozen_accuracy": frozen,
            "finetune_cv": ft and ft["mean_accuracy"],
            "frozen_cv": cv["candidates"][cv["chosen"]]["mean_accuracy"],
            "cv_difference": ft and ft["difference"],
            "cv_standard_error": ft and ft["standard_error"],
            "finetune_seconds": ft and ft["seconds"],
            "train_seconds": round(seconds, 1),
        }
        rows.append(row)
        print(f"[{args.set}] seed {seed}: kept {row['kept']}, held-out {acc:.4f} (frozen "
              f"{frozen:.4f}); CV fine-tuned {row['finetune_cv'] or float('nan'):.4f} vs frozen "
              f"{row['frozen_cv']:.4f} ({seconds:.0f} s)", file=sys.stderr, flush=True)
    d = [r["accuracy"] - r["frozen_accuracy"] for r in rows]
    mean = statistics.fmean(d)
    se = statistics.stdev(d) / len(d) ** 0.5 if len(d) > 1 else float("nan")
    summary = {
        "set": args.set,
        "seeds": seeds,
        "train_command": shlex.join([args.tlearn, "train", *caches, "--seed", "S", "--test-size",
                                     accuracy.TEST_SIZE, *contest_args, "--out", "RUN"]),
        "kept_finetuned": sum(r["kept"] == "fine-tuned" for r in rows),
        "mean_accuracy": statistics.fmean(r["accuracy"] for r in rows),
        "mean_frozen_accuracy": statistics.fmean(r["frozen_accuracy"] for r in rows),
        "paired_difference": mean,
        "paired_standard_error": se,
        "per_seed": rows,
    }
    (work / f"finetune_contest-{args.set}.json").write_text(json.dumps(summary, indent=2))
    print("| seed | kept | held-out | frozen defaults | CV fine-tuned | CV frozen | paired CV diff |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        cvd = ("—" if r["cv_difference"] is None
               else f"{r['cv_difference']:+.4f} ± {r['cv_standard_error']:.4f}")
        ftcv = "—" if r["finetune_cv"] is None else f"{r['finetune_cv']:.4f}"
        print(f"| {r['seed']} | {r['kept']} | {r['accuracy']:.4f} | {r['frozen_accuracy']:.4f} | "
              f"{ftcv} | {r['frozen_cv']:.4f} | {cvd} |")
    print(f"\n{args.set}, {len(rows)} seeds: kept fine-tuned {summary['kept_finetuned']} times; "
          f"held-out {summary['mean_accuracy']:.4f} vs frozen defaults "
          f"{summary['mean_frozen_accuracy']:.4f}, paired {100 * mean:+.2f} ± {100 * se:.2f} points")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
