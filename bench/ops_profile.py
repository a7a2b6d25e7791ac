"""Where the time goes, per operator kind, tlearn against onnxruntime, one thread, same ONNX cut.

Each round runs onnxruntime's own per-node profile (`enable_profiling`, the median of RUNS
runs per node) and tlearn's (`examples/profile_ops` with `DUMP=1`: tract's plan with tlearn's
operators, the mean of RUNS runs per node), alternating, pinned to the same core. A node's
figure is its minimum over the rounds on each side, which keeps what the code costs and drops
most of what other work on the machine added. Nodes are matched by the ONNX node name (tlearn's
operators carry it with `.tlearn`, onnxruntime's NCHWc nodes with `_nchwc`) and grouped by the
kind of tlearn operator that runs them: 1×1 (`TlearnPointwise`), depthwise (`TlearnDepthwise`),
stem (`TlearnStem`). Prints the kinds and the nodes with the largest gaps; writes JSON.

Usage: .venv/bin/python bench/ops_profile.py [--model efficientnet-lite0] [--tensor features]
       [--rounds 3] [--runs 200] [--cpu 1] [--out bench-out/ops_profile-MODEL.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import infer_bench  # noqa: E402  (the same cut and the same onnxruntime session options)

REPO = Path(__file__).resolve().parent.parent
PROFILE = REPO / "target" / "release" / "examples" / "profile_ops"
KINDS = {"TlearnPointwise": "1x1", "TlearnDepthwise": "depthwise", "TlearnStem": "stem"}


def ort_nodes(cut: Path, runs: int, cpu: str) -> dict[str, float]:
    """Median ms per node over `runs` runs of onnxruntime's profile, in a pinned child."""
    out = subprocess.run(["taskset", "-c", cpu, sys.executable, __file__, "--ort-child", str(cut),
                          str(runs)], check=True, capture_output=True, text=True).stdout
    return {k.removesuffix("_nchwc"): v for k, v in json.loads(out.splitlines()[-1]).items()}


def ort_child(cut: Path, runs: int) -> None:
    """The child of [`ort_nodes`]: prints the median ms per node as JSON."""
    import numpy as np
    import onnxruntime as ort

    inp = ort.InferenceSession(str(cut), providers=["CPUExecutionProvider"]).get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    x = np.random.default_rng(0).standard_normal([4] + shape[1:]).astype(np.float32)
    nodes = infer_bench.ort_node_times(cut, x, runs)
    print(json.dumps({n: sorted(t)[len(t) // 2] for n, (_, t) in nodes.items()}))


def tlearn_nodes(model: str, tensor: str, runs: int, cpu: str
                 ) -> tuple[dict[str, float], dict[str, str]]:
    """Mean ms per node of `profile_ops` (DUMP=1, up to `tensor`), and each node's operator."""
    out = subprocess.run(["taskset", "-c", cpu, str(PROFILE), model, str(runs)], check=True,
                         capture_output=True, text=True,
                         env=dict(os.environ, DUMP="1", TENSOR=tensor)).stdout.splitlines()
    ops, times = {}, {}
    for line in out:
        parts = line.split()
        if len(parts) >= 2 and parts[1] in KINDS:
            ops[parts[0].removesuffix(".tlearn")] = parts[1]
        elif len(parts) == 2 and parts[0].endswith(".tlearn"):
            times[parts[0].removesuffix(".tlearn")] = float(parts[1])
    return times, ops


def onnx_name(tlearn_node: str) -> str:
    """The ONNX node a tlearn operator replaced: its name before tract's suffixes."""
    for suffix in (".conv.einsum", ".einsum", ".conv"):
        if tlearn_node.endswith(suffix):
            return tlearn_node[: -len(suffix)]
    return tlearn_node


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--tensor", default="features")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--cpu", default="1")
    ap.add_argument("--out")
    ap.add_argument("--ort-child", nargs=2, metavar=("CUT", "RUNS"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.ort_child:
        ort_child(Path(a.ort_child[0]), int(a.ort_child[1]))
        return
    if not PROFILE.exists():
        sys.exit(f"{PROFILE} missing: cargo build --release --workspace --examples")
    cut = infer_bench.cut_model(REPO / "models" / f"{a.model}.onnx", a.tensor,
                                Path(tempfile.mkdtemp(prefix="tlearn-ops-")) / "cut.onnx")
    best_t: dict[str, float] = {}
    best_o: dict[str, float] = {}
    ops: dict[str, str] = {}
    for r in range(a.rounds):
        for side in (("ort", "tlearn") if r % 2 == 0 else ("tlearn", "ort")):
            if side == "ort":
                for n, ms in ort_nodes(cut, a.runs, a.cpu).items():
                    best_o[n] = min(best_o.get(n, float("inf")), ms)
            else:
                times, names = tlearn_nodes(a.model, a.tensor, a.runs, a.cpu)
                ops.update(names)
                for n, ms in times.items():
                    best_t[n] = min(best_t.get(n, float("inf")), ms)
        print(f"round {r + 1} of {a.rounds} done", flush=True)
    rows = []
    for n, op in ops.items():
        o = best_o.get(onnx_name(n))
        if o is None or n not in best_t:
            continue
        rows.append({"node": onnx_name(n), "kind": KINDS[op], "tlearn_ms": best_t[n], "ort_ms": o})
    kinds: dict[str, dict[str, float]] = {}
    for row in rows:
        k = kinds.setdefault(row["kind"], {"tlearn_ms": 0.0, "ort_ms": 0.0, "nodes": 0})
        k["tlearn_ms"] += row["tlearn_ms"]
        k["ort_ms"] += row["ort_ms"]
        k["nodes"] += 1
    tt = sum(k["tlearn_ms"] for k in kinds.values())
    to = sum(k["ort_ms"] for k in kinds.values())
    print(f"\n{a.model} `{a.tensor}`, one thread on CPU {a.cpu}, min over {a.rounds} alternating "
          f"rounds of {a.runs} runs")
    print(f"{'kind':10} {'nodes':>5} {'tlearn ms':>10} {'ort ms':>8} {'ratio':>6} {'gap ms':>7}")
    for name, k in sorted(kinds.items(), key=lambda kv: -kv[1]["tlearn_ms"]):
        print(f"{name:10} {k['nodes']:5d} {k['tlearn_ms']:10.3f} {k['ort_ms']:8.3f} "
              f"{k['tlearn_ms'] / k['ort_ms']:6.2f} {k['tlearn_ms'] - k['ort_ms']:+7.3f}")
    print(f"{'matched':10} {len(rows):5d} {tt:10.3f} {to:8.3f} {tt / to:6.2f} {tt - to:+7.3f}")
    print("\nlargest gaps:")
    for row in sorted(rows, key=lambda r: r["ort_ms"] - r["tlearn_ms"])[:12]:
        print(f"  {row['node']:24} {row['kind']:10} {row['tlearn_ms']:.3f} vs {row['ort_ms']:.3f} "
              f"({row['tlearn_ms'] / row['ort_ms']:.2f})")
    out = Path(a.out or REPO / "bench-out" / f"ops_profile-{a.model}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": a.model, "tensor": a.tensor, "rounds": a.rounds,
                               "runs": a.runs, "cpu": a.cpu, "kinds": kinds, "nodes": rows},
                              indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
