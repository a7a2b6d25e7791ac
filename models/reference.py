"""Numpy reference outputs of the offline backbones (squeezenet1.1, mobilenetv2, xception,
inception-v3, resnet152), computed in float64 straight from the packaged weights (pickle, legacy
.pt, Keras archive, TorchScript archive, zip .pt; via the pip cache), not from the converted ONNX.
Xception's follows the Keras archive's own config.json graph. Used by models/test_convert.py (against onnxruntime) and by
crates/tlearn-extract/tests/reference_backbones.rs (against tract).

    python models/reference.py MODEL OUT_DIR PHOTO...

writes OUT_DIR/input.npy (float32 [N,3,S,S], the photos preprocessed with PIL as the registry
entry says) and, for every registry cut of MODEL, OUT_DIR/<cut>.npy: float64 [N, dim], the cut's
tensor average-pooled over space (as `--pool avg`), computed from input.npy.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tools"))

import fetch  # noqa: E402


def preprocess(path: Path, pp: dict) -> np.ndarray:
    """One photo -> float32 [3,S,S] per a registry `[model.preprocess]` (PIL bilinear resize)."""
    from PIL import Image

    crop = pp["crop"]
    short = round(crop * pp["resize_ratio"])
    im = Image.open(path).convert("RGB")
    w, h = im.size
    r = short / min(w, h)
    im = im.resize((max(short, round(w * r)), max(short, round(h * r))), Image.BILINEAR)
    w, h = im.size
    left, top = (w - crop) // 2, (h - crop) // 2
    a = np.asarray(im.crop((left, top, left + crop, top + crop)), dtype=np.float32)
    a = (a * np.float32(pp["value_scale"]) - np.array(pp["mean"], np.float32)) / np.array(pp["std"], np.float32)
    if pp["channels"] == "BGR":
        a = a[:, :, ::-1]
    return np.ascontiguousarray(a.transpose(2, 0, 1))


def reference(name: str, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every named tensor of the model's reference forward pass on NCHW input x (float64)."""
    entry = fetch.registry()[name]
    weights = fetch.source_weights(entry)
    converter = entry["source"]["converter"]
    if converter == "squeezenet":
        import convert_squeezenet as conv

        return conv.reference(conv.load_weights(weights), x)
    if converter == "mobilenetv2":
        import convert_mobilenetv2 as conv

        return conv.reference(conv.load_legacy_pth(weights), x)
    if converter == "inception-v3":
        import convert_inception_v3 as conv

        return conv.reference(conv.load(weights), x)
    if converter == "resnet":
        import convert_resnet as conv

        return conv.reference(conv.load_weights(weights), entry["source"].get("prefix", ""), x)
    if converter == "keras":
        import convert_keras as conv

        w = conv.load(weights, entry["source"]["architecture"])
        if w.config is not None:
            return conv.reference_from_config(w, x)
        return conv.reference(entry["source"]["architecture"], w, x)
    raise SystemExit(f"{name}: no numpy reference (converter {converter!r})")


def pooled(t: np.ndarray) -> np.ndarray:
    return t.mean(axis=(2, 3)) if t.ndim == 4 else t


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    name, out, photos = argv[0], Path(argv[1]), [Path(p) for p in argv[2:]]
    entry = fetch.registry()[name]
    x = np.stack([preprocess(p, entry["preprocess"]) for p in photos])
    ref = reference(name, x)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "input.npy", x)
    for cut in entry["cut"]:
        np.save(out / f"{cut['name']}.npy", pooled(ref[cut["node"]]))
    print(f"{name}: {len(photos)} photos, cuts {[c['name'] for c in entry['cut']]} -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
