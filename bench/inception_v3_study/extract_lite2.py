"""EfficientNet-Lite2 `features` codes (and flips) of a DIR/<class>/<image> tree, in extract.py's row
order: short side round(260*256/224) = 297, centre crop 260, (v - 127) / 128, onnxruntime 1 thread.

usage: python extract_lite2.py DATA OUT.npz
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from extract import crop_view, load_rgb, sess  # noqa: E402

data, out = sys.argv[1:3]
root = os.path.dirname(os.path.abspath(__file__)).rsplit("/bench/", 1)[0]
classes = sorted(d for d in os.listdir(data) if os.path.isdir(os.path.join(data, d)))
paths = [os.path.join(data, c, f) for c in classes for f in sorted(os.listdir(os.path.join(data, c)))]
s = sess(os.path.join(root, "models/efficientnet-lite2.onnx"))
a, b = [], []
for p in paths:
    v = crop_view(load_rgb(p), 260)
    x = ((v - 127.0) / 128.0).transpose(2, 0, 1)[None]
    x = np.concatenate([x, x[..., ::-1]]).astype(np.float32)
    f = s.run(["features"], {"input": x})[0]
    a.append(f[0]); b.append(f[1])
np.savez(out, paths=np.array(paths), lite2=np.stack(a), lite2_flip=np.stack(b))
print("wrote", out, np.stack(a).shape)
