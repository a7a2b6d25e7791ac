"""Inference alone, one thread, per image: tlearn's backbone (tract with tlearn's operators)
against onnxruntime (intra_op_num_threads=1, sequential) on the same ONNX cut at the same
tensor, the same preprocessed input tensors of N real images, pinned to the same core.

The Rust side is `crates/tlearn-extract/examples/infer_bench.rs` (it loads the backbone as
`tlearn extract` does, decodes and preprocesses the first N images of DIR, and times PASSES
passes over them after one warm-up pass); it also writes the input tensors, which the
onnxruntime side (this script, `--ort-child`) reads, so both run exactly the same numbers.
The sides alternate, the order rotating every round, each a fresh process under
`taskset -c CPU`; per round each side's median ms per image and the ratio tlearn/onnxruntime,
then the medians of those. The load average before each run is kept: on a shared machine only
the ratios of alternating rounds mean anything. Also reported: the largest |difference|
between the two sides' codes.

`--before PATH` adds a side `before:all`: another build of the same example (say the previous
commit's `target/release/examples/infer_bench`, copied aside), run in the same rounds, so a
change is quoted as a before/after pair ratio of alternating runs, not as two separate runs.

Usage: .venv/bin/python bench/infer_bench.py [--dir data/tuxpaint] [--n 32] [--passes 5]
       [--rounds 5] [--cpu 1] [--variants all tract] [--model efficientnet-lite0]
       [--out bench-out/infer.json] [--before PATH]
       .venv/bin/python bench/infer_bench.py --ort-profile   (onnxruntime's op-by-op profile)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "target" / "release" / "examples" / "infer_bench"


def cut_model(model: Path, tensor: str, dest: Path) -> Path:
    """The ONNX cut at `tensor`: only the nodes it needs, it the only output (onnxruntime runs
    every node of a graph, even those no requested output needs)."""
    import onnx
    import onnx.utils

    m = onnx.load(str(model))
    inputs = [i.name for i in m.graph.input if i.name not in {t.name for t in m.graph.initializer}]
    cut = onnx.utils.Extractor(m).extract_model(inputs, [tensor])
    onnx.save(cut, str(dest))
    return dest


def ort_session(model: Path, profile: str | None = None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if profile:
        so.enable_profiling = True
        so.profile_file_prefix = profile
    return ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])


def ort_child(model: Path, inputs: Path, passes: int, codes: Path | None) -> None:
    import numpy as np

    x = np.load(inputs)
    sess = ort_session(model)
    name = sess.get_inputs()[0].name
    out = [sess.run(None, {name: x[i : i + 1]})[0][0] for i in range(len(x))]  # warm-up
    ms = []
    for _ in range(passes):
        t0 = time.perf_counter()
        for i in range(len(x)):
            sess.run(None, {name: x[i : i + 1]})
        ms.append((time.perf_counter() - t0) * 1e3 / len(x))
    if codes:
        np.save(codes, np.stack(out))
    print(json.dumps({"side": "onnxruntime", "n": len(x), "ms": ms,
                      "median_ms": statistics.median(ms)}))


def ort_node_times(model: Path, x, runs: int) -> dict[str, tuple[str, list[float]]]:
    """onnxruntime's own profile of `runs` single-image runs over the images of `x`: per node,
    its op type and its kernel time in ms at each run."""
    with tempfile.TemporaryDirectory() as tmp:
        sess = ort_session(model, profile=str(Path(tmp) / "ort"))
        name = sess.get_inputs()[0].name
        for i in range(runs):
            sess.run(None, {name: x[i % len(x) : i % len(x) + 1]})
        events = json.loads(Path(sess.end_profiling()).read_text())
    nodes: dict[str, tuple[str, list[float]]] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            node = e["name"][: -len("_kernel_time")]
            nodes.setdefault(node, (e["args"].get("op_name", "?"), []))[1].append(e["dur"] / 1e3)
    return nodes


def ort_profile(model: Path, inputs: Path, runs: int) -> None:
    """onnxruntime's own per-node profile, summed by op type, ms per image."""
    import numpy as np

    by_op: dict[str, float] = {}
    by_node: dict[str, float] = {}
    for node, (op, times) in ort_node_times(model, np.load(inputs), runs).items():
        by_op[op] = by_op.get(op, 0.0) + sum(times) / runs
        by_node[node] = by_node.get(node, 0.0) + sum(times) / runs
    total = sum(by_op.values())
    print(f"onnxruntime, 1 thread: {total:.2f} ms/image in kernels over {runs} runs")
    for op, ms in sorted(by_op.items(), key=lambda kv: -kv[1]):
        print(f"{op:28} {ms:8.3f} {100 * ms / total:6.1f}%")
    # EfficientNet-Lite's convolutions by role (the converter's node names): depthwise `dw`,
    # the 3x3 `stem`, every other Conv a 1x1 (expand, project, head): what tlearn's
    # operators replace, side by side with `examples/profile_ops.rs`.
    roles: dict[str, float] = {}
    for node, ms in by_node.items():
        role = "depthwise" if ".dw" in node else "stem" if node.startswith("stem") else \
            "other" if not node.endswith("_nchwc") else "1x1"
        roles[role] = roles.get(role, 0.0) + ms
    print("by role: " + ", ".join(f"{r} {ms:.2f} ms ({100 * ms / total:.0f}%)"
                                  for r, ms in sorted(roles.items(), key=lambda kv: -kv[1])))
    print("slowest nodes:")
    for node, ms in sorted(by_node.items(), key=lambda kv: -kv[1])[:25]:
        print(f"{node:50} {ms:8.3f}")


def run(cmd: list[str], env: dict | None = None) -> dict:
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=str(REPO / "data" / "tuxpaint"))
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cpu", default="1")
    ap.add_argument("--variants", nargs="+", default=["all"],
                    help="TLEARN_OPS values to run as tlearn sides (all, planar, gemm, depthwise, tract)")
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--tensor", default="features")
    ap.add_argument("--out", default=str(REPO / "bench-out" / "infer.json"))
    ap.add_argument("--ort-profile", action="store_true")
    ap.add_argument("--before", help="another build of examples/infer_bench, run as side before:all")
    ap.add_argument("--ort-child", nargs=3, metavar=("MODEL", "INPUTS", "PASSES"))
    ap.add_argument("--codes")
    a = ap.parse_args()
    if a.ort_child:
        ort_child(Path(a.ort_child[0]), Path(a.ort_child[1]), int(a.ort_child[2]),
                  Path(a.codes) if a.codes else None)
        return
    if a.before and "all" not in a.variants:
        sys.exit("--before compares with the variant all: add it to --variants")
    if not EXAMPLE.exists():
        sys.exit(f"{EXAMPLE} missing: cargo build --release -p tlearn-extract --example infer_bench")
    model = REPO / "models" / f"{a.model}.onnx"
    tmp = Path(tempfile.mkdtemp(prefix="tlearn-infer-"))
    cut = cut_model(model, a.tensor, tmp / "cut.onnx")
    inputs, codes_t, codes_o = tmp / "inputs.npy", tmp / "codes-tlearn.npy", tmp / "codes-ort.npy"
    env = dict(os.environ, MODEL=a.model)
    pin = ["taskset", "-c", a.cpu]
    # Inputs (and tract's codes) once, outside the timed rounds.
    run(pin + [str(EXAMPLE), a.dir, str(a.n), "1", str(inputs), str(codes_t)],
        dict(env, TLEARN_OPS="tract"))
    if a.ort_profile:
        ort_profile(cut, inputs, 50)
        return
    run(pin + [sys.executable, __file__, "--ort-child", str(cut), str(inputs), "1",
               "--codes", str(codes_o)])
    import numpy as np

    diff = float(np.abs(np.load(codes_t) - np.load(codes_o)).max())

    sides = [f"tlearn:{v}" for v in a.variants] + (["before:all"] if a.before else []) \
        + ["onnxruntime"]
    rounds = []
    for r in range(a.rounds):
        order = sides[r % len(sides):] + sides[: r % len(sides)]
        rec = {}
        for side in order:
            load = os.getloadavg()[0]
            if side == "onnxruntime":
                res = run(pin + [sys.executable, __file__, "--ort-child", str(cut), str(inputs),
                                 str(a.passes)])
            else:
                v = side.split(":", 1)[1]
                exe = a.before if side.startswith("before:") else str(EXAMPLE)
                res = run(pin + [exe, a.dir, str(a.n), str(a.passes)], dict(env, TLEARN_OPS=v))
            res["load_before"] = load
            rec[side] = res
        for v in a.variants:
            rec[f"ratio:{v}"] = rec[f"tlearn:{v}"]["median_ms"] / rec["onnxruntime"]["median_ms"]
        if a.before:
            rec["ratio:before"] = rec["before:all"]["median_ms"] / rec["onnxruntime"]["median_ms"]
            rec["after/before"] = rec["tlearn:all"]["median_ms"] / rec["before:all"]["median_ms"]
        rounds.append(rec)
        print(f"round {r + 1}: " + ", ".join(
            f"{s} {rec[s]['median_ms']:.2f} ms (load {rec[s]['load_before']:.1f})" for s in sides)
            + ", " + ", ".join(f"{v}/ort {rec[f'ratio:{v}']:.2f}" for v in a.variants)
            + (f", before/ort {rec['ratio:before']:.2f}, after/before {rec['after/before']:.3f}"
               if a.before else ""), flush=True)
    summary = {s: statistics.median(r[s]["median_ms"] for r in rounds) for s in sides}
    ratios = {v: statistics.median(r[f"ratio:{v}"] for r in rounds) for v in a.variants}
    if a.before:
        ratios["before"] = statistics.median(r["ratio:before"] for r in rounds)
        ratios["after/before"] = statistics.median(r["after/before"] for r in rounds)
    out = {"model": a.model, "tensor": a.tensor, "dir": a.dir, "n": a.n, "passes": a.passes,
           "cpu": a.cpu, "rounds": rounds, "median_ms": summary, "median_ratio": ratios,
           "max_abs_code_diff_tract_vs_ort": diff}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print("median ms/image: " + ", ".join(f"{s} {ms:.2f}" for s, ms in summary.items()))
    print("median pair ratio tlearn/onnxruntime: "
          + ", ".join(f"{v} {x:.2f}" for v, x in ratios.items() if v != "after/before"))
    if a.before:
        print(f"median pair ratio after/before: {ratios['after/before']:.3f}")
    print(f"max |code difference| tract vs onnxruntime: {diff:.2e}; written {a.out}")


if __name__ == "__main__":
    main()
