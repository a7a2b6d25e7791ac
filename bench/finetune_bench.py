#!/usr/bin/env python3
"""Fine-tuning speed: `tlearn train --head finetune` against the PyTorch peer
(bench/finetune_peer.py) training the same layers from the same cached cut maps, in turn, each
pinned to the same cores (`taskset -c 0,1`, 2 threads), for ROUNDS rounds (the order swapped every
round). Each side runs EPOCHS joint epochs on the same number of rows (tlearn fits on the training
part of --test-size 0.3 less its 10% early-stopping rows; the peer on as many rows of the cache);
tlearn's seconds per epoch come from the head's fit history (an epoch includes scoring the
validation rows). Prints medians and the per-round ratio; writes bench-out/finetune-speed.json.

    python bench/finetune_bench.py   # a Python with torch, numpy and onnx (PyPI) runs/cache/fashion-mnist-6000--lite0--stage6--flatten \
        --model models/efficientnet-lite0.onnx --cut block14 --epochs 2 --rounds 3

The full default run (linear probe, then joint epochs with early stopping) is timed too with
--total: `fit.seconds` of head.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tlearn_epochs(tlearn: str, cache: Path, test_size: float, cores: str, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = ["taskset", "-c", cores, tlearn, "train", str(cache), "--head", "finetune", "--seed", "0",
               "--test-size", str(test_size), *extra, "--out", out]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={"RAYON_NUM_THREADS": "2", "CI": "1", "PATH": "/usr/bin:/bin"})
        head = json.loads((Path(out) / "head.json").read_text())
    joint = [e["seconds"] for e in head["fit"]["history"] if e["phase"] == "joint"]
    return {"epoch_seconds": joint, "rows": head["fit"]["train_rows"], "total_seconds": head["fit"]["seconds"],
            "command": " ".join(cmd[:-2])}


def peer_epochs(python: str, cache: Path, model: Path, cut: str, rows: int, epochs: int, cores: str) -> dict:
    cmd = ["taskset", "-c", cores, python, str(ROOT / "bench/finetune_peer.py"), str(cache), "--model", str(model),
           "--cut", cut, "--rows", str(rows), "--epochs", str(epochs), "--threads", "2"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache", type=Path)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--cut", required=True)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--test-size", type=float, default=0.3,
                    help="tlearn's held-out fraction: the rows per epoch (0.3 of 6,000: 3,780 fitted rows)")
    ap.add_argument("--cores", default="0,1")
    ap.add_argument("--tlearn", default=str(ROOT / "target/release/tlearn"))
    ap.add_argument("--peer-python", default=sys.executable)
    ap.add_argument("--total", action="store_true", help="also time one default run (probe + early stopping)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out/finetune-speed.json")
    a = ap.parse_args()
    fixed = ["--ft-probe-epochs", "0", "--ft-epochs", str(a.epochs), "--ft-patience", str(a.epochs + 1)]
    rounds = []
    for r in range(a.rounds):
        sides = ["tlearn", "pytorch"] if r % 2 == 0 else ["pytorch", "tlearn"]
        got = {}
        for s in sides:
            if s == "tlearn":
                got[s] = tlearn_epochs(a.tlearn, a.cache, a.test_size, a.cores, fixed)
            else:
                rows = got["tlearn"]["rows"] if "tlearn" in got else round(6000 * (1 - a.test_size) * 0.9)
                got[s] = peer_epochs(a.peer_python, a.cache, a.model, a.cut, rows, a.epochs, a.cores)
        t = statistics.median(got["tlearn"]["epoch_seconds"])
        p = statistics.median(got["pytorch"]["epoch_seconds"])
        rounds.append({"tlearn_s_per_epoch": t, "pytorch_s_per_epoch": p, "ratio_pytorch_over_tlearn": p / t,
                       "tlearn": got["tlearn"], "pytorch": got["pytorch"]})
        print(f"round {r}: tlearn {t:.1f} s/epoch, pytorch {p:.1f} s/epoch, pytorch/tlearn {p / t:.2f}", flush=True)
    res = {
        "cache": str(a.cache), "cores": a.cores, "epochs": a.epochs, "rounds": rounds,
        "median_tlearn_s_per_epoch": statistics.median(r["tlearn_s_per_epoch"] for r in rounds),
        "median_pytorch_s_per_epoch": statistics.median(r["pytorch_s_per_epoch"] for r in rounds),
        "median_ratio": statistics.median(r["ratio_pytorch_over_tlearn"] for r in rounds),
    }
    if a.total:
        full = tlearn_epochs(a.tlearn, a.cache, a.test_size, a.cores, [])
        res["default_run"] = full
        print(f"default run: {full['total_seconds']:.0f} s ({len(full['epoch_seconds'])} joint epochs)")
    print(f"median: tlearn {res['median_tlearn_s_per_epoch']:.1f} s/epoch, pytorch "
          f"{res['median_pytorch_s_per_epoch']:.1f} s/epoch, ratio {res['median_ratio']:.2f}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
