"""Stand-ins for FLAME master images on sandbox nodes: one small virtualenv per image.

A node whose policy says ``image_environments = true`` runs each analysis with the Python of
the image's stand-in, so that an analysis importing a package its chosen image lacks fails
in the sandbox as it would on a real node (``ModuleNotFoundError``), before any hospital
sees it. A stand-in costs no downloads: it is a virtualenv without pip whose start-up gate
(gate.py) lets analysis code import only the image's packages, found in this machine's own
site-packages. Built lazily on first use, cached under ``<sandbox>/images/`` and rebuilt when
the image's list, the catalog or this Python changes.

What it does not do: where this machine lacks a package the image has, or has another
version than the image pins, the stand-in cannot make up the difference; ``notes`` says so,
and the node logs it with each run.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as metadata
import json
import os
import shutil
import site
import sys
import sysconfig
import tempfile
import venv
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

import flame_lab
from flame_lab.images import catalog as catalogs
from flame_lab.images.capture import distributions
from flame_lab.images.catalog import Catalog

GATE_NAME = "_flame_lab_image_gate"
ALWAYS = ("flame", "flamesdk")  # every FLAME image has the SDK (flame_lab stands in for it)

try:  # one builder at a time per cache folder, across the node agents
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


@dataclass(frozen=True)
class ImageEnvironment:
    """A built stand-in: its interpreter, its root (to expose read-only) and what differs."""

    image: str
    root: Path
    notes: tuple[str, ...]

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"


def _host_sites() -> list[str]:
    """The site folders of the interpreter running the node (venv, user and system)."""
    folders = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    with contextlib.suppress(AttributeError):
        folders += site.getsitepackages()
    return list(dict.fromkeys(f for f in folders if os.path.isdir(f)))


def plan(image_path: str, catalog: Catalog) -> dict:
    """What the stand-in of ``image_path`` lets analyses import, and what it cannot match."""
    image = catalog.get(image_path)
    pins = catalog.provided(image)
    by_dist: dict[str, set[str]] = {}
    for module, dists in distributions().items():
        for dist in dists:
            by_dist.setdefault(canonicalize_name(dist), set()).add(module)
    sdk = {canonicalize_name(Requirement(r).name) for r in catalog.sdk_requirements}
    named = {canonicalize_name(r.name) for r in image.requirements} - sdk
    allowed, notes = set(ALWAYS), []
    for dist, pin in sorted(pins.items()):
        allowed.update(catalog.modules_of(dist))
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            if dist in named:  # the image's own list; the SDK's internals are not the point
                notes.append(f"{dist}{pin or ''} is in {image.path} but not installed here")
            continue
        allowed.update(by_dist.get(dist, ()))
        with contextlib.suppress(InvalidVersion):
            if dist in named and str(pin) and Version(version) not in pin:
                notes.append(f"{dist}: {image.path} pins {pin}, this sandbox has {version}")
    return {
        "image": image.path,
        "allowed": sorted(allowed),
        "host_sites": _host_sites(),
        "trusted": [str(Path(flame_lab.__file__).resolve().parent)],
        "notes": notes,
        "catalog": catalog.source.get("commit", ""),
        "python": sys.version,
        "base": sys.base_prefix,
        "flame_lab": flame_lab.__version__,
    }


def _site_packages(root: Path) -> Path:
    return root / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"


def _slug(image_path: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in image_path)


def _build(root: Path, spec: dict) -> None:
    """A fresh virtualenv (no pip) with the gate, its .pth and image.json, built beside the
    target and moved into place, so that a crash never leaves half a stand-in."""
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=root.parent))
    try:
        venv.EnvBuilder(with_pip=False, symlinks=True, clear=True).create(staging)
        packages = _site_packages(staging)
        packages.mkdir(parents=True, exist_ok=True)
        gate = Path(__file__).with_name("gate.py").read_text(encoding="utf-8")
        (packages / f"{GATE_NAME}.py").write_text(gate, encoding="utf-8")
        (packages / f"{GATE_NAME}.pth").write_text(f"import {GATE_NAME}\n", encoding="utf-8")
        (packages / "image.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
        # a venv's pyvenv.cfg names the staging folder nowhere; moving it is safe
        staging.chmod(0o755)
        if root.exists():
            shutil.rmtree(root)
        staging.rename(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def environment_for(
    image_path: str, cache: Path, catalog: Catalog | None = None
) -> ImageEnvironment:
    """The stand-in of an image, built once and reused while nothing it depends on changed."""
    catalog = catalog or catalogs.load(with_user=False)
    spec = plan(image_path, catalog)
    cache.mkdir(parents=True, exist_ok=True)
    root = cache / _slug(spec["image"])
    with open(cache / ".lock", "a+") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        stored = _site_packages(root) / "image.json"
        try:
            current = json.loads(stored.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            current = None
        if current != spec or not (root / "bin" / "python").exists():
            _build(root, spec)
    return ImageEnvironment(spec["image"], root, tuple(spec["notes"]))
