"""End-to-end extraction benchmark: `tlearn extract` against the two onnxruntime + PIL pipelines
of `../shared/peers/ort_extract.py` (the serial loop a Python user writes first, and the savvy
version: PIL `Image.draft` for JPEGs, a 2-process decoding pool, batches of 16), same ONNX, same
threads, same cores, on one or more image sets:

- `tuxpaint`: the Tux Paint photos (PNGs of a few hundred pixels), `data/tuxpaint`;
- `jpeg12`: 12-megapixel camera-like JPEGs (4032×3024, quality 90, EXIF orientation 6 on every
  fourth) generated here, deterministically, from the registry photos (`data/smoke` and
  `data/tuxpaint`) into `$TLEARN_CACHE/bench/` (see `make_jpeg12`);
- any folder laid out as DIR/<class>/<image>.

Every side runs in its own child process, pinned with `taskset -c CPUS` (default 0,1; the same
cores for every side), and the sides alternate (tlearn, serial, savvy, then the next round with
the order rotated), so that a slow spell of the machine hits all of them. Reported per side:
the median wall images/s (process start, model load and extraction: what a user waits for) and
peak RSS (os.wait4 of that child; the savvy script's pool workers are separate processes and not
counted in it), plus tlearn's own extraction-loop images/s; per round the ratios tlearn/serial
and tlearn/savvy, and their medians. Output: `bench-out/extract.json` and a table. `--planar`
adds a fourth side, the same binary with `TLEARN_OPS=planar` (tlearn's operators with planar maps
between them), and the per-round ratio tlearn/planar: what the channel-blocked maps bring end to
end.

Usage: .venv/bin/python bench/extract_bench.py [--sets tuxpaint jpeg12 DIR...] [--repeat 5]
       [--cpus 0,1] [--threads 2] [--tlearn target/release/tlearn] [--model efficientnet-lite0]
       [--extra ARGS...] [--peers ../shared/peers/ort_extract.py] [--planar]
       .venv/bin/python bench/extract_bench.py --make-jpeg12 DIR [--count N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
JPEG12_VERSION = 1  # bump when make_jpeg12 changes what it writes


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, float, str, str]:
    """Run cmd as a child, reap it with os.wait4 to get its own peak RSS (MiB)."""
    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe, text=True, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read(), fe.read()
    if p.returncode != 0:
        sys.exit(f"command failed ({p.returncode}): {' '.join(cmd)}\n{out}\n{err}")
    return wall, ru.ru_maxrss / 1024.0, out, err


def _sources() -> list[tuple[str, Path]]:
    """(class, photo) pairs from the registry photo sets, interleaved across classes."""
    per_class: list[list[tuple[str, Path]]] = []
    for root in (REPO / "data" / "smoke", REPO / "data" / "tuxpaint"):
        if not (root / "MANIFEST.json").exists():
            sys.exit(f"{root} missing: run `make data DATASETS='smoke tuxpaint'` (make bench does)")
        for cls in sorted(p for p in root.iterdir() if p.is_dir()):
            per_class.append([(cls.name, f) for f in sorted(cls.iterdir()) if f.is_file()])
    out, i = [], 0
    while any(per_class):
        for files in per_class:
            if len(files) > i:
                out.append(files[i])
        i += 1
        per_class = [f for f in per_class if len(f) > i]
    return out


def make_jpeg12(dest: Path, count: int) -> Path:
    """Write `count` 4032×3024 JPEGs (quality 90) made from the registry photos into dest/<class>/.

    Each photo is composited on white, resized to 4032×3024 (bicubic) and given a fixed-seed
    sensor-like grain (Gaussian, sigma 6 grey levels): an upscaled small photo alone is so smooth
    that it compresses to a third of a real 12 MP photo's size, and entropy decoding, which no
    decoder can skip, scales with the compressed size. Every fourth image is stored rotated
    (3024×4032) with EXIF orientation 6, as phones do. Deterministic: same inputs, same bytes
    (each image has its own seed, so the worker pool's order does not matter). `count` 0 means
    every photo once.
    """
    from multiprocessing import Pool

    srcs = _sources()
    if count:
        srcs = (srcs * (count // len(srcs) + 1))[:count]
    stamp = dest / f".done-v{JPEG12_VERSION}-{len(srcs)}"
    if stamp.exists():
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    jobs = [(i, cls, src, dest) for i, (cls, src) in enumerate(srcs)]
    with Pool(min(len(jobs), os.cpu_count() or 1)) as pool:
        pool.map(_write_jpeg12, jobs, chunksize=1)
    stamp.write_text("")
    return dest


def _write_jpeg12(job: tuple[int, str, Path, Path]) -> None:
    import numpy as np
    from PIL import Image

    i, cls, src, dest = job
    img = Image.open(src)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.new("RGB", img.size, (255, 255, 255))
        img.paste(rgba, mask=rgba.split()[3])
    img = img.convert("RGB").resize((4032, 3024), Image.BICUBIC)
    grain = np.random.default_rng(i).normal(0.0, 6.0, (3024, 4032, 3)).astype(np.float32)
    img = Image.fromarray(np.clip(np.asarray(img, np.float32) + grain, 0, 255).astype(np.uint8))
    exif = Image.Exif()
    if i % 4 == 3:
        img = img.transpose(Image.Transpose.ROTATE_90)  # shown upright after orientation 6
        exif[0x0112] = 6
    out = dest / cls / f"{i:04d}-{src.stem}.jpg"
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out, quality=90, exif=exif.tobytes())


def resolve_set(name: str, count: int) -> tuple[str, Path]:
    if name == "jpeg12":
        cache = Path(os.environ.get("TLEARN_CACHE", Path.home() / ".cache" / "tlearn"))
        return name, make_jpeg12(cache / "bench" / f"jpeg12-{count}", count)
    p = REPO / "data" / name if not Path(name).exists() else Path(name)
    if not p.is_dir():
        sys.exit(f"{p}: no such image folder (run `make data DATASETS={name}`)")
    return p.name, p.resolve()


def pin(cpus: str) -> list[str]:
    if not cpus:
        return []
    if shutil.which("taskset") is None:
        sys.exit("taskset not found (Debian: util-linux); give --cpus '' to run unpinned")
    return ["taskset", "-c", cpus]


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def bench_set(args, name: str, data: Path, work: Path) -> dict:
    onnx = REPO / "models" / f"{args.model}.onnx"
    images = sum(1 for c in data.iterdir() if c.is_dir() for f in c.iterdir() if f.is_file())
    sides = ["tlearn", "serial", "savvy"] + (["planar"] if args.planar else [])
    runs: dict[str, list[dict]] = {s: [] for s in sides}
    for i in range(args.repeat):
        order = sides[i % len(sides):] + sides[: i % len(sides)]
        for side in order:
            if side in ("tlearn", "planar"):
                cache, report = work / f"{name}-{side}-cache{i}", work / f"{name}-{side}-summary{i}.json"
                cmd = [*pin(args.cpus), args.tlearn, "extract", "--model", args.model, "--layer", "features",
                       "--pool", "avg", str(data), "--out", str(cache), "--threads", str(args.threads),
                       "--quiet", "--report", str(report), *args.extra]
                env = {**os.environ, "CI": "1", **({"TLEARN_OPS": "planar"} if side == "planar" else {})}
                wall, rss, _, _ = run_measured(cmd, env=env)
                s = json.loads(report.read_text())
                runs[side].append({"images": s["extracted"], "skipped": len(s["skipped"]), "wall_s": wall,
                                   "images_per_s": s["extracted"] / wall,
                                   "loop_images_per_s": s["extracted"] / s["seconds"], "peak_rss_mib": rss})
                if i > 0:
                    shutil.rmtree(cache, ignore_errors=True)
            else:
                out = work / f"{name}-{side}{i}.npy"
                cmd = [*pin(args.cpus), sys.executable, str(args.peers), str(data), str(onnx), str(out),
                       "--threads", str(args.threads), "--crop", str(args.crop),
                       *(["--strong"] if side == "savvy" else [])]
                wall, rss, _, _ = run_measured(cmd)
                runs[side].append({"images": images, "wall_s": wall, "images_per_s": images / wall,
                                   "peak_rss_mib": rss})
            print(f"  {name} round {i + 1}/{args.repeat} {side:7} {runs[side][-1]['images_per_s']:7.1f} img/s "
                  f"{runs[side][-1]['peak_rss_mib']:5.0f} MiB", flush=True)
    res: dict = {"data": str(data), "images": images, "runs": runs}
    for side in sides:
        res[side] = {"median_images_per_s": median([r["images_per_s"] for r in runs[side]]),
                     "median_wall_s": median([r["wall_s"] for r in runs[side]]),
                     "median_peak_rss_mib": median([r["peak_rss_mib"] for r in runs[side]])}
    for side in ("tlearn", "planar")[: 1 + args.planar]:
        res[side]["median_loop_images_per_s"] = median([r["loop_images_per_s"] for r in runs[side]])
    for peer in ("serial", "savvy", "planar")[: 2 + args.planar]:
        pairs = [t["images_per_s"] / o["images_per_s"] for t, o in zip(runs["tlearn"], runs[peer])]
        res[f"pair_ratios_vs_{peer}"] = [round(r, 3) for r in pairs]
        res[f"median_ratio_vs_{peer}"] = round(median(pairs), 3)
    # How close are the codes? (rows sorted by relative path on every side.)
    try:
        import numpy as np

        a = np.load(work / f"{name}-tlearn-cache0" / "features.npy")
        for peer in ("serial", "savvy"):
            b = np.load(work / f"{name}-{peer}0.npy")
            if a.shape == b.shape:
                cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
                res[f"codes_vs_{peer}"] = {"max_abs_diff": float(np.abs(a - b).max()),
                                           "min_cosine": float(cos.min()), "mean_cosine": float(cos.mean())}
    except Exception as e:  # noqa: BLE001 - informational only
        res["codes_error"] = str(e)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=["tuxpaint", "jpeg12"])
    ap.add_argument("--count", type=int, default=80, help="images in the jpeg12 set (0: one per photo)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cpus", default="0,1", help="taskset CPU list for every side ('' = unpinned)")
    ap.add_argument("--repeat", type=int, default=5, help="alternating rounds; medians are reported")
    ap.add_argument("--tlearn", default=str(REPO / "target" / "release" / "tlearn"))
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--peers", default=str(REPO.parent / "shared" / "peers" / "ort_extract.py"))
    ap.add_argument("--out", default=str(REPO / "bench-out" / "extract.json"))
    ap.add_argument("--extra", nargs="*", default=[], help="extra tlearn extract arguments")
    ap.add_argument("--planar", action="store_true",
                    help="a fourth side: tlearn with TLEARN_OPS=planar (no channel-blocked maps)")
    ap.add_argument("--make-jpeg12", metavar="DIR", help="only write the jpeg12 set into DIR")
    args = ap.parse_args()

    if args.make_jpeg12:
        print(make_jpeg12(Path(args.make_jpeg12), args.count))
        return
    if not Path(args.peers).is_file():
        sys.exit(f"{args.peers} missing: the peers come with ../shared (see its README)")
    if not (REPO / "models" / f"{args.model}.onnx").exists():
        sys.exit(f"models/{args.model}.onnx missing: run `make models MODELS={args.model}`")
    results: dict = {"model": args.model, "threads": args.threads, "cpus": args.cpus,
                     "repeat": args.repeat, "extra": args.extra, "sets": {}}
    work = Path(tempfile.mkdtemp(prefix="tlearn-bench-"))
    try:
        for s in args.sets:
            name, data = resolve_set(s, args.count)
            results["sets"][name] = bench_set(args, name, data, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{args.threads} threads, cpus {args.cpus or 'any'}, median of {args.repeat} alternating rounds "
          "(wall images/s: process start + model load + extraction)")
    print(f"{'set':10} {'side':8} {'images/s':>9} {'peak MiB':>9} {'tlearn ×':>9}")
    for name, r in results["sets"].items():
        for side in ("tlearn", "serial", "savvy", "planar")[: 3 + args.planar]:
            ratio = "" if side == "tlearn" else f"{r[f'median_ratio_vs_{side}']:9.2f}"
            print(f"{name:10} {side:8} {r[side]['median_images_per_s']:9.1f} "
                  f"{r[side]['median_peak_rss_mib']:9.0f} {ratio:>9}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
