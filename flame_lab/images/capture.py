"""What a draft needs from the Python it runs in: its imports, resolved in this kernel.

Each top-level module a draft imports (its own modules and the standard library aside) is
traced to the distribution that provides it here and that distribution's version, so that
flame_lab can say which master image has it and write a requirements file for a custom one.
"""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util
import os
import sys
from dataclasses import dataclass

from packaging.utils import canonicalize_name

from flame_lab.draft import ALWAYS_AVAILABLE, Draft
from flame_lab.errors import DraftError
from flame_lab.images.catalog import Catalog


@dataclass(frozen=True)
class Need:
    """A module the draft imports, the distribution providing it here, and its version."""

    module: str
    distribution: str | None
    version: str | None
    where: tuple[str, ...]

    @property
    def requirement(self) -> str:
        name = self.distribution or self.module
        return f"{name}=={self.version}" if self.version else name

    def __str__(self) -> str:
        shown = self.module
        if self.distribution and canonicalize_name(self.module) != self.distribution:
            shown += f" (distribution {self.distribution})"
        return shown + (f" {self.version}" if self.version else "")


@dataclass(frozen=True)
class Environment:
    """The draft's third-party needs, its standard-library imports and this kernel's Python."""

    needs: tuple[Need, ...]
    stdlib: dict[str, tuple[str, ...]]
    python: tuple[int, int]

    def requirements(self) -> list[str]:
        """``name==version`` for each distribution, sorted, once each."""
        return sorted({n.requirement for n in self.needs}, key=str.lower)


_cache: dict[tuple, dict[str, list[str]]] = {}


def _fingerprint() -> tuple:
    """sys.path and its folders' modification times: an install or removal changes it."""
    stamps = []
    for entry in sys.path:
        try:
            stamps.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            stamps.append((entry, None))
    return tuple(stamps)


def distributions() -> dict[str, list[str]]:
    """Top-level module -> the distributions providing it here; scanning every installed
    distribution takes a large environment a good part of a second, so it is kept until
    sys.path or one of its folders changes (``%pip install`` changes a folder)."""
    key = _fingerprint()
    if key not in _cache:
        try:
            found = metadata.packages_distributions()
        except Exception:  # a broken distribution's metadata must not break a check
            found = {}
        _cache.clear()
        _cache[key] = found
    return _cache[key]


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def capture(draft: Draft, catalog: Catalog, *, strict: bool = True) -> Environment:
    """The draft's needs; with ``strict`` an import this kernel cannot resolve is a DraftError."""
    places: dict[str, list[str]] = {}
    stdlib: dict[str, list[str]] = {}
    for use in draft.imports():
        if use.module in ALWAYS_AVAILABLE:
            continue
        target = stdlib if use.module in sys.stdlib_module_names else places
        target.setdefault(use.module, []).append(use.where)
    providers = distributions() if places else {}
    by_module = {m: d for d in catalog.import_names for m in catalog.modules_of(d)}
    needs = []
    for module, where in sorted(places.items()):
        names = sorted(providers.get(module, []))
        if names:
            dist = canonicalize_name(names[0])
            version = _version(names[0])
        elif importlib.util.find_spec(module) is not None:
            dist, version = by_module.get(module), None  # e.g. a folder on sys.path
        elif strict:
            raise DraftError(
                f"{where[0]}: module {module!r} is not available in this kernel",
                hint="Install it here (`%pip install NAME`) so flame_lab can check it against "
                "the master images, or add your own module to the draft.",
            )
        else:
            dist, version = by_module.get(module), None
        needs.append(Need(module, dist, version, tuple(where)))
    return Environment(
        needs=tuple(needs),
        stdlib={m: tuple(w) for m, w in sorted(stdlib.items())},
        python=sys.version_info[:2],
    )
