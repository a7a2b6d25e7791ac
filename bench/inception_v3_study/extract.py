"""CNN codes of every image in a DIR/<class>/<image> tree, onnxruntime on one thread.

Views per backbone (rows in sorted class / sorted file order, as shared/peers/ort_extract.py):
  inception (bench/inception_v3_study/fid_inception.py's graph, input (v - 128) / 128, RGB, 299):
    inc_crop   short side round(299*256/224) = 342 (PIL bilinear), centre crop 299  [registry convention]
    inc_plain  plain resize to 299x299 (the images are square, so no crop)         [fid-helper's own]
    (+ their horizontal flips, for flip averaging)
    cuts: features (pool3 = mean of mixed_10), mixed_9 mean, mixed_7 mean
  lite0 (models/efficientnet-lite0.onnx, short side 256, crop 224, (v - 127) / 128): features
  mobilenetv2 (models/mobilenetv2.onnx, same geometry, (v/255 - mean) / std): features

usage: python extract.py DATA INCEPTION.onnx OUT.npz
"""

import os
import sys
import time

import numpy as np
import onnxruntime as ort
from PIL import Image


def sess(p):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])


def load_rgb(p):
    img = Image.open(p)
    if img.mode in ("RGBA", "LA", "P"):
        rgba = img.convert("RGBA")
        bg = Image.new("RGB", img.size, (255, 255, 255))
        bg.paste(rgba, mask=rgba.split()[3])
        return bg
    return img.convert("RGB")


def crop_view(img, crop):
    short = round(crop * 256 / 224)
    w, h = img.size
    s = short / min(w, h)
    nw, nh = max(round(w * s), crop), max(round(h * s), crop)
    img = img.resize((nw, nh), Image.BILINEAR)
    l, t = (nw - crop) // 2, (nh - crop) // 2
    return np.asarray(img.crop((l, t, l + crop, t + crop)), dtype=np.float32)


def plain_view(img, side):
    return np.asarray(img.resize((side, side), Image.BILINEAR), dtype=np.float32)



def main():
    data, inc_path, out = sys.argv[1:4]
    root = os.path.dirname(os.path.abspath(__file__)).rsplit("/bench/", 1)[0]

    classes = sorted(d for d in os.listdir(data) if os.path.isdir(os.path.join(data, d)))
    paths, labels = [], []
    for ci, c in enumerate(classes):
        for f in sorted(os.listdir(os.path.join(data, c))):
            paths.append(os.path.join(data, c, f))
            labels.append(ci)


    inc = sess(inc_path)
    lite = sess(os.path.join(root, "models/efficientnet-lite0.onnx"))
    mnv2 = sess(os.path.join(root, "models/mobilenetv2.onnx"))
    MEAN = np.array([0.485, 0.456, 0.406], np.float32)
    STD = np.array([0.229, 0.224, 0.225], np.float32)

    res = {k: [] for k in ["inc_crop", "inc_crop_m9", "inc_crop_m7", "inc_crop_flip",
                           "inc_plain", "inc_plain_m9", "inc_plain_m7", "inc_plain_flip",
                           "lite0", "lite0_flip", "mnv2", "mnv2_flip"]}
    t0 = time.time()
    for i, p in enumerate(paths):
        img = load_rgb(p)
        for name, v in (("inc_crop", crop_view(img, 299)), ("inc_plain", plain_view(img, 299))):
            x = ((v - 128.0) / 128.0).transpose(2, 0, 1)[None]
            x = np.concatenate([x, x[..., ::-1]]).astype(np.float32)
            f, m9, m7 = inc.run(["features", "layers.mixed_9", "layers.mixed_7"], {"input": x})
            res[name].append(f[0]); res[name + "_flip"].append(f[1])
            res[name + "_m9"].append(m9[0].mean(axis=(1, 2))); res[name + "_m7"].append(m7[0].mean(axis=(1, 2)))
        v = crop_view(img, 224)
        x = ((v - 127.0) / 128.0).transpose(2, 0, 1)[None]
        x = np.concatenate([x, x[..., ::-1]]).astype(np.float32)
        f = lite.run(["features"], {"input": x})[0]
        res["lite0"].append(f[0]); res["lite0_flip"].append(f[1])
        x = ((v / 255.0 - MEAN) / STD).transpose(2, 0, 1)[None]
        x = np.concatenate([x, x[..., ::-1]]).astype(np.float32)
        f = mnv2.run(["features"], {"input": x})[0]
        res["mnv2"].append(f[0]); res["mnv2_flip"].append(f[1])
        if i % 20 == 0:
            print(f"{i}/{len(paths)} {time.time() - t0:.0f}s", flush=True)
    np.savez(out, y=np.array(labels), paths=np.array(paths), classes=np.array(classes),
             **{k: np.stack(v) for k, v in res.items()})
    print("wrote", out, {k: np.stack(v).shape for k, v in res.items()}, f"{time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
