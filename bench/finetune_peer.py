#!/usr/bin/env python3
"""The PyTorch peer of `tlearn train --head finetune`: the same layers after the cut, read from the
same ONNX file, trained from the same cached cut maps (a `tlearn extract --pool flatten` cache) with
the same recipe per joint epoch (AdamW with a low learning rate for the pretrained layers and a
higher one for the new classifier, weight decay, mini-batches of 64, dropout on the pooled
features, cross-entropy), on as many threads as asked. Prints one JSON line: seconds per epoch.

    python bench/finetune_peer.py CACHE --model models/efficientnet-lite0.onnx --cut block14 \
        --rows 3780 --epochs 3 --threads 2

Needs torch, numpy and onnx (PyPI). Timing only: it reports the loss, not a held-out accuracy.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper


class Top(torch.nn.Module):
    """The ONNX nodes from the cut tensor to the global average pool, as torch layers."""

    def __init__(self, graph: onnx.GraphProto, cut: str, classes: int):
        super().__init__()
        inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        producer = {o: n for n in graph.node for o in n.output}
        keep, stack, seen = set(), ["features"], set()
        while stack:
            t = stack.pop()
            if t == cut or t in seen or t in inits:
                continue
            seen.add(t)
            n = producer[t]
            keep.add(id(n))
            stack.extend(i for i in n.input if i)
        self.steps = []
        self.convs = torch.nn.ModuleList()
        for n in graph.node:
            if id(n) not in keep or n.op_type in ("GlobalAveragePool", "Flatten"):
                continue
            ins = [i for i in n.input if i and i not in inits]
            if n.op_type == "Conv":
                w = torch.from_numpy(inits[n.input[1]].copy())
                b = torch.from_numpy(inits[n.input[2]].copy())
                a = {x.name: x for x in n.attribute}
                g = a["group"].i if "group" in a else 1
                p = list(a["pads"].ints) if "pads" in a else [0, 0, 0, 0]
                if p[0] != p[2] or p[1] != p[3]:
                    raise SystemExit(f"{n.output[0]}: asymmetric pads {p} not supported by this peer")
                conv = torch.nn.Conv2d(w.shape[1] * g, w.shape[0], w.shape[2:], padding=(p[0], p[1]), groups=g)
                conv.weight.data.copy_(w)
                conv.bias.data.copy_(b)
                self.convs.append(conv)
                self.steps.append(("conv", len(self.convs) - 1, ins, n.output[0]))
            elif n.op_type == "Clip":
                self.steps.append(("relu6", None, ins, n.output[0]))
            elif n.op_type == "Relu":
                self.steps.append(("relu", None, ins, n.output[0]))
            elif n.op_type == "Add":
                self.steps.append(("add", None, ins, n.output[0]))
            else:
                raise SystemExit(f"operator {n.op_type} not supported by this peer")
        self.cut = cut
        feats = self.convs[-1].out_channels
        self.classifier = torch.nn.Linear(feats, classes)
        torch.nn.init.zeros_(self.classifier.weight)
        torch.nn.init.zeros_(self.classifier.bias)
        self.dropout = torch.nn.Dropout(0.2)

    def forward(self, x):
        v = {self.cut: x}
        last = x
        for kind, i, ins, out in self.steps:
            a = v[ins[0]]
            if kind == "conv":
                last = self.convs[i](a)
            elif kind == "relu6":
                last = torch.nn.functional.relu6(a)
            elif kind == "relu":
                last = torch.relu(a)
            else:
                last = a + v[ins[1]]
            v[out] = last
        return self.classifier(self.dropout(last.mean(dim=(2, 3))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache", type=Path)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--cut", required=True, help="the ONNX tensor the cache was cut at (block14 for lite0 stage6)")
    ap.add_argument("--rows", type=int, default=3780, help="training rows per epoch")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    meta = json.loads((a.cache / "meta.json").read_text())
    x = np.load(a.cache / "features.npy", mmap_mode="r")
    labels = [l.split(",")[1] for l in (a.cache / "index.csv").read_text().splitlines()[1:]]
    classes = sorted(set(labels))
    y = np.array([classes.index(l) for l in labels])
    g = onnx.load(str(a.model)).graph
    net = Top(g, a.cut, len(classes))
    c = net.convs[0].in_channels
    hw = int(round((meta["dim"] / c) ** 0.5))
    rng = np.random.default_rng(a.seed)
    rows = np.sort(rng.choice(len(y), size=min(a.rows, len(y)), replace=False))
    xt = torch.from_numpy(np.ascontiguousarray(x[rows]).reshape(-1, c, hw, hw))
    yt = torch.from_numpy(y[rows])
    opt = torch.optim.AdamW([
        {"params": net.convs.parameters(), "lr": 1e-4},
        {"params": net.classifier.parameters(), "lr": 1e-3},
    ], weight_decay=1e-2)
    net.train()
    secs = []
    for _ in range(a.epochs):
        t0 = time.perf_counter()
        perm = torch.from_numpy(rng.permutation(len(rows)))
        total = 0.0
        for i in range(0, len(rows), a.batch):
            idx = perm[i:i + a.batch]
            loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        secs.append(time.perf_counter() - t0)
    print(json.dumps({"engine": "pytorch", "torch": torch.__version__, "threads": a.threads, "rows": len(rows),
                      "epoch_seconds": secs, "last_loss": total / len(rows)}))


if __name__ == "__main__":
    main()
