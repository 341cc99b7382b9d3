"""The FLAME master images flame_lab knows the package lists of.

Shipped: ``data/master-images.json``, generated from PrivateAIM's master-images repository
(see refresh.py; its ``source`` names the commit). A researcher adds or overrides an image
with ``<config>/images/<virtual path>/requirements.txt`` (e.g. for a custom image their hub
offers); such a list is taken as complete and on top of the FLAME SDK.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from flame_lab import config
from flame_lab.errors import ImageError

DATA_FILE = Path(__file__).parent / "data" / "master-images.json"
DEFAULT_IMAGE = "python/base"
USER_SDK = "0.6.5"  # the SDK a researcher's own image list is taken to sit on
_NAME_LINE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*")


def parse_requirement(line: str) -> Requirement:
    """A requirements.txt line as PEP 508 (``pandas == 2.2.2``, ``pandas==2.3``, ``tqdm``)."""
    try:
        return Requirement(line)
    except InvalidRequirement as exc:
        raise ImageError(
            f"cannot read the requirement {line!r}: {exc}",
            hint="Write one package a line, such as pandas==2.2.2 or scikit-learn>=1.5.",
        ) from None


@dataclass(frozen=True)
class MasterImage:
    """One image: what it installs on top of its base, and whether that list is whole."""

    path: str
    python: str | None
    requirements: tuple[Requirement, ...] = ()
    complete: bool = True
    source: str = ""
    sdk: str | None = None

    @property
    def python_version(self) -> tuple[int, int] | None:
        if not self.python:
            return None
        major, minor = self.python.split(".")[:2]
        return int(major), int(minor)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "python": self.python,
            "sdk": self.sdk,
            "complete": self.complete,
            "requirements": [str(r) for r in self.requirements],
            "source": self.source,
        }


@dataclass(frozen=True)
class Catalog:
    """Images by virtual path, plus what flame_lab knows of packages' own dependencies."""

    images: Mapping[str, MasterImage]
    dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    import_names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    source: Mapping[str, str] = field(default_factory=dict)
    sdk_requirements: tuple[str, ...] = ()  # what the FLAME SDK brings to every image

    def get(self, name: str) -> MasterImage:
        """By virtual path (``python/ml``), or by a unique last part (``ml``, ``fedstats``)."""
        name = name.strip().strip("/")
        if name in self.images:
            return self.images[name]
        matches = [p for p in self.images if p.rsplit("/", 1)[-1] == name]
        if len(matches) == 1:
            return self.images[matches[0]]
        raise ImageError(
            f"flame_lab does not know the master image {name!r}"
            + (f" (it could be {', '.join(matches)})" if matches else ""),
            hint="`flame-lab image list` shows the known images; for one your hub adds, write "
            f"its package list to {user_images_dir()}/<group>/<name>/requirements.txt.",
        )

    def known(self, name: str) -> MasterImage | None:
        try:
            return self.get(name)
        except ImageError:
            return None

    def provided(self, image: MasterImage) -> dict[str, SpecifierSet]:
        """Every distribution the image holds (canonical name -> its pin), dependencies too."""
        if not image.complete:
            raise ImageError(
                f"the package list of master image {image.path!r} is unknown to flame_lab "
                "(its base image installs packages no file lists)",
                hint=f"Write what it holds to {user_images_dir()}/{image.path}/requirements.txt"
                " (e.g. `pip freeze` inside the image), or choose another image.",
            )
        pins: dict[str, SpecifierSet] = {}
        todo = list(image.requirements)
        while todo:
            req = todo.pop()
            name = canonicalize_name(req.name)
            if name in pins:
                pins[name] &= req.specifier
                continue
            pins[name] = SpecifierSet(str(req.specifier))
            todo += [Requirement(dep) for dep in self.dependencies.get(name, ())]
        return pins

    def modules_of(self, distribution: str) -> tuple[str, ...]:
        """Top-level import names a distribution provides (by the table, else its own name)."""
        name = canonicalize_name(distribution)
        return self.import_names.get(name, (name.replace("-", "_").replace(".", "_"),))


def _entry(path: str, raw: Mapping[str, Any], sdks: Mapping[str, Any], where: str) -> MasterImage:
    sdk = raw.get("sdk")
    chain = sdks.get(sdk, {}).get("requirements") if sdk else None
    lines = [*(chain or []), *raw.get("requirements", [])]
    return MasterImage(
        path=path,
        python=raw.get("python"),
        requirements=tuple(parse_requirement(line) for line in lines),
        complete=bool(raw.get("complete")) and chain is not None,
        source=f"{where}:{raw.get('upstream', path)}",
        sdk=sdk,
    )


def user_images_dir() -> Path:
    return config.config_dir() / "images"


def read_requirements(text: str) -> list[Requirement]:
    """The package lines of a requirements file (comments, options and blank lines skipped)."""
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-") and _NAME_LINE.match(line):
            out.append(parse_requirement(line))
    return out


@cache
def _shipped() -> dict[str, Any]:
    return json.loads(DATA_FILE.read_text(encoding="utf-8"))


def load(user_dir: Path | None = None, *, with_user: bool = True) -> Catalog:
    """The shipped catalog with the researcher's own image lists laid over it."""
    data = _shipped()
    src = data.get("source", {})
    where = f"PrivateAIM/master-images@{src.get('commit', '?')[:12]}"
    sdks = data.get("sdk", {})
    images = {p: _entry(p, raw, sdks, where) for p, raw in data.get("images", {}).items()}
    for path, raw in data.get("flame_lab_images", {}).items():  # deploy/master-image/
        images[path] = _entry(path, raw, sdks, "flame_lab")
    if with_user:
        folder = user_images_dir() if user_dir is None else user_dir
        images.update(_user_images(folder, sdks, images))
    return Catalog(
        images=images,
        dependencies={
            canonicalize_name(k): tuple(v) for k, v in data.get("dependencies", {}).items()
        },
        import_names={
            canonicalize_name(k): tuple(v) for k, v in data.get("import_names", {}).items()
        },
        source=src,
        sdk_requirements=tuple(
            line for chain in sdks.values() for line in chain.get("requirements", [])
        ),
    )


def shipped() -> Catalog:
    """The shipped catalog alone (what a sandbox hub offers), without the researcher's lists."""
    return load(with_user=False)


def _user_images(
    folder: Path, sdks: Mapping[str, Any], shipped: Mapping[str, MasterImage]
) -> dict[str, MasterImage]:
    found: dict[str, MasterImage] = {}
    if not folder.is_dir():
        return found
    chain = [parse_requirement(line) for line in sdks.get(USER_SDK, {}).get("requirements", [])]
    for file in sorted(folder.rglob("requirements.txt")):
        path = file.parent.relative_to(folder).as_posix()
        base = shipped.get(path)
        found[path] = MasterImage(
            path=path,
            python=base.python if base else None,
            requirements=(*chain, *read_requirements(file.read_text(encoding="utf-8"))),
            complete=True,
            source=str(file),
            sdk=USER_SDK,
        )
    return found


def describe(images: Iterable[MasterImage]) -> list[dict[str, Any]]:
    return [image.to_dict() for image in images]
