"""Regenerate the shipped master-image catalog from a checkout of PrivateAIM's master-images.

``python -m flame_lab.images.refresh /path/to/master-images [--commit SHA]`` rewrites
``flame_lab/images/data/master-images.json``: per image folder under ``data/`` its virtual
path, Python version (from the ``FROM`` line), FLAME SDK reference and requirement lines.
Images whose base brings packages no file lists (Anaconda, NVIDIA's TensorFlow, conda
environments, R) are kept with ``"complete": false``: flame_lab then cannot check them.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from flame_lab.images.catalog import DATA_FILE

REPOSITORY = "https://github.com/PrivateAIM/master-images"
# The Python a base image brings, where its FROM line does not say python:3.X.
_BASE_PYTHON = {
    "nvidia/cuda:13.3.1-cudnn-runtime-ubuntu26.04": "3.14",
    "nvidia/cuda:12.1.1-runtime-ubuntu22.04": "3.10",
    "nvidia/cuda:11.8.0-runtime-ubuntu22.04": "3.10",
}
# Bases that install packages of their own that no requirements file names.
_OPAQUE_BASES = ("continuumio/", "nvcr.io/", "rocker/")
# pip lines that install what the catalog already accounts for (requirements.txt, the SDK).
_INSTALL = re.compile(r"\bpip3? install\b")
_KNOWN_INSTALLS = (
    "-r /tmp/requirements.txt",
    "python-sdk",
    "--upgrade pip",
    "install uv",
    "--ignore-installed pip",
)
_SDK = re.compile(r"python-sdk-patterns\.git@([\w.\-]+)")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def _python(base: str) -> str | None:
    found = re.fullmatch(r"python:(\d+\.\d+)(?:[.\-].*)?", base)
    return found.group(1) if found else _BASE_PYTHON.get(base)


def read_image(repo: Path, ref: str, folder: str, names: set[str]) -> dict:
    """One image folder (relative to the repository) as a catalog entry."""
    dockerfile = _git(repo, "show", f"{ref}:{folder}/Dockerfile")
    base = next(
        (ln.split()[1] for ln in dockerfile.splitlines() if ln.upper().startswith("FROM ")), ""
    )
    requirements, unlisted = [], []
    if f"{folder}/requirements.txt" in names:
        for line in _git(repo, "show", f"{ref}:{folder}/requirements.txt").splitlines():
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            (unlisted if text.startswith("-") else requirements).append(text)
    sdk = _SDK.search(dockerfile)
    extra_installs = [
        ln
        for ln in dockerfile.splitlines()
        if _INSTALL.search(ln) and not any(ok in ln for ok in _KNOWN_INSTALLS)
    ]
    opaque = (
        bool(extra_installs)
        or base.startswith(_OPAQUE_BASES)
        or f"{folder}/conda.yml" in names
        or not folder.startswith("data/python/")
    )
    return {
        "upstream": f"{folder}/",
        "base": base,
        "python": _python(base),
        "sdk": sdk.group(1) if sdk else None,
        "requirements": requirements,
        "unlisted": unlisted,
        "complete": not opaque and not unlisted and sdk is not None,
    }


def refresh(repo: Path, ref: str = "HEAD") -> dict:
    names = set(_git(repo, "ls-tree", "-r", ref, "--name-only").splitlines())
    commit = _git(repo, "rev-parse", ref).strip()
    folders = sorted(n.rsplit("/", 1)[0] for n in names if n.endswith("/Dockerfile"))
    images = {
        folder.removeprefix("data/"): read_image(repo, ref, folder, names)
        for folder in folders
        if folder.startswith("data/")
    }
    old = json.loads(DATA_FILE.read_text(encoding="utf-8")) if DATA_FILE.exists() else {}
    return {
        "source": {
            "repository": REPOSITORY,
            "commit": commit,
            "read": datetime.now(UTC).strftime("%Y-%m-%d"),
            "note": "Requirement lines as in each image folder's requirements.txt; python and "
            "sdk from its Dockerfile. Regenerate with python -m flame_lab.images.refresh.",
        },
        "sdk": old.get("sdk", {}),
        "dependencies": old.get("dependencies", {}),
        "import_names": old.get("import_names", {}),
        "flame_lab_images": old.get("flame_lab_images", {}),
        "images": images,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flame_lab.images.refresh")
    parser.add_argument("repo", type=Path, help="a git checkout (or bare mirror) of master-images")
    parser.add_argument("--ref", default="HEAD")
    args = parser.parse_args(argv)
    data = refresh(args.repo, args.ref)
    DATA_FILE.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(f"{len(data['images'])} images from {data['source']['commit'][:12]} -> {DATA_FILE}")


if __name__ == "__main__":
    main()
