#!/usr/bin/env python3
"""Decoding alone, one thread, per image: what each side does to a file before the network sees
it, on the same files, pinned to the same core, alternating.

- tlearn: `crates/tlearn-extract/examples/decode_bench.rs` (read, decode in the backbone's
  mode: `reduced` = libjpeg-turbo at the smallest DCT scale that keeps the resize target,
  `full` = every pixel; resize, centre crop, tensor), the code path of `tlearn extract`;
- PIL: the savvy script's per-image function (`prep` of ../shared/peers/ort_extract.py with
  `draft=True`: PIL `Image.draft` then convert, resize, crop, normalise), and the serial
  script's (`draft=False`).

Why it exists: on 12-megapixel JPEGs the extraction is bounded by this part, which both sides
pay in the same library (libjpeg-turbo's entropy decoding runs in full at every DCT scale). With
D ms of decoding and I ms of inference per image and core, 2 cores give at most
2000 / (D + I) images/s: this bench and `bench/infer_bench.py` give D and I for each side, so
the best ratio tlearn can reach against the savvy script follows from them.

Usage: .venv/bin/python bench/decode_bench.py [--dir DIR | --count 40] [--n 40] [--passes 3]
       [--rounds 3] [--cpu 1] [--out bench-out/decode.json]
(default DIR: the bench's generated 12-MP JPEG set, as `bench/extract_bench.py` makes it)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "target/release/examples/decode_bench"


def pil_prep(path: str, draft: bool, crop: int = 224):
    """../shared/peers/ort_extract.py `prep` (the peers' preprocessing), kept identical."""
    import numpy as np
    from PIL import Image

    target = crop * 256 / 224
    short = round(target)
    img = Image.open(path)
    if draft and img.format == "JPEG":
        img.draft("RGB", (short, short))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGB", img.size, (255, 255, 255))
        bg.paste(rgba, mask=rgba.split()[3])
        img = bg
    else:
        img = img.convert("RGB")
    w, h = img.size
    nw, nh = (short, round(h * target / w)) if w <= h else (round(w * target / h), short)
    img = img.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - crop) // 2, (nh - crop) // 2
    x = (np.asarray(img.crop((left, top, left + crop, top + crop)), dtype=np.float32) - 127.0) / 128.0
    return x.transpose(2, 0, 1)


def files_of(root: Path) -> list[str]:
    """DIR/<class>/<image>, sorted like the peers' scripts list them (hidden files left out)."""
    return [str(root / c / f) for c in sorted(os.listdir(root)) if (root / c).is_dir()
            for f in sorted(os.listdir(root / c)) if not f.startswith(".")]


def pil_child(root: Path, n: int, passes: int, draft: bool) -> None:
    files = files_of(root)[:n]
    for f in files:  # warm-up, as the Rust side does
        pil_prep(f, draft)
    ms = []
    for _ in range(passes):
        t0 = time.perf_counter()
        for f in files:
            pil_prep(f, draft)
        ms.append((time.perf_counter() - t0) * 1e3 / len(files))
    print(json.dumps({"side": "pil", "draft": draft, "n": len(files), "ms": ms,
                      "median_ms": statistics.median(ms)}))


def run(cmd: list[str]) -> dict:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", help="image folder DIR/<class>/<image> (default: the 12-MP JPEG set)")
    ap.add_argument("--count", type=int, default=40, help="images in the generated 12-MP set")
    ap.add_argument("--n", type=int, default=40, help="images timed per pass")
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cpu", default="1", help="the one core every side is pinned to")
    ap.add_argument("--out", default=str(ROOT / "bench-out/decode.json"))
    ap.add_argument("--pil-child", nargs=4, metavar=("DIR", "N", "PASSES", "DRAFT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.pil_child:
        d, n, passes, draft = a.pil_child
        pil_child(Path(d), int(n), int(passes), draft == "1")
        return
    if a.dir:
        root = Path(a.dir).resolve()
    else:
        sys.path.insert(0, str(ROOT / "bench"))
        from extract_bench import resolve_set  # the same generated set as the extraction bench
        root = resolve_set("jpeg12", a.count)[1]
    if not EXAMPLE.exists():
        sys.exit(f"{EXAMPLE} missing: cargo build --release -p tlearn-extract --example decode_bench")
    pin = ["taskset", "-c", a.cpu]
    sides = {
        "tlearn-reduced": pin + [str(EXAMPLE), str(root), str(a.n), str(a.passes), "reduced"],
        "tlearn-full": pin + [str(EXAMPLE), str(root), str(a.n), str(a.passes), "full"],
        "pil-draft": pin + [sys.executable, __file__, "--pil-child", str(root), str(a.n), str(a.passes), "1"],
        "pil-full": pin + [sys.executable, __file__, "--pil-child", str(root), str(a.n), str(a.passes), "0"],
    }
    names = list(sides)
    rounds = []
    for r in range(a.rounds):
        order = names[r % len(names):] + names[:r % len(names)]  # rotate who goes first
        got = {}
        for name in order:
            load = loadavg()
            got[name] = {"median_ms": run(sides[name])["median_ms"], "load": load}
        rounds.append(got)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v['median_ms']:.1f} ms" for k, v in got.items())
              + f" (load {loadavg():.1f})", file=sys.stderr)
    med = {k: statistics.median(rd[k]["median_ms"] for rd in rounds) for k in names}
    ratio = statistics.median(rd["pil-draft"]["median_ms"] / rd["tlearn-reduced"]["median_ms"] for rd in rounds)
    res = {"dir": str(root), "n": a.n, "passes": a.passes, "cpu": a.cpu, "rounds": rounds,
           "median_ms": med, "median_pair_ratio_pil_draft_over_tlearn_reduced": ratio}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    print(f"\ndecode + preprocess, ms per image on one core (cpu {a.cpu}), median of {a.rounds} alternating rounds")
    for k in names:
        print(f"  {k:<15} {med[k]:7.2f}")
    print(f"  PIL draft / tlearn reduced (median pair ratio): {ratio:.2f}; written {a.out}")


if __name__ == "__main__":
    main()
