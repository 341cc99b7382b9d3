"""Make ``import flame.star`` (and ``flamesdk``) work where PrivateAIM's SDK is not installed.

flame_lab/_compat/ holds tiny ``flame`` and ``flamesdk`` packages that re-export flame_lab.star
under the module paths of PrivateAIM's packages. The folder is put on sys.path (at the end)
only when no ``flame`` is importable, so a real installation always wins. An unrelated package
that happens to be called ``flame`` (there is one on the package index) would hide both; it is
recognised by having no ``star`` module, and reported with what to do instead of failing later
with a bare ``No module named 'flame.star'``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from flame_lab.errors import StarError

COMPAT_DIR = Path(__file__).resolve().parent.parent / "_compat"


def _has_star(locations: list[str]) -> bool:
    """True if a ``flame`` package at these folders has a ``star`` module (without importing)."""
    for folder in locations:
        base = Path(folder)
        if (base / "star" / "__init__.py").is_file() or (base / "star.py").is_file():
            return True
        if (base / "star").is_dir():  # a namespace package
            return True
    return False


def _distribution_of(package: str) -> str | None:
    import importlib.metadata  # here: it pulls in email and socket, which star never needs

    try:
        names = importlib.metadata.packages_distributions().get(package) or []
    except Exception:  # a broken metadata entry elsewhere must not hide the real problem
        return None
    return names[0] if names else None


def foreign_flame() -> StarError | None:
    """The error to raise when the importable ``flame`` is not PrivateAIM's, else None."""
    try:
        spec = importlib.util.find_spec("flame")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    locations = list(spec.submodule_search_locations or [])
    if any(str(loc).startswith(str(COMPAT_DIR)) for loc in locations):
        return None
    if locations and _has_star(locations):
        return None
    where = locations[0] if locations else (spec.origin or "an unknown place")
    dist = _distribution_of("flame")
    named = f" (distribution {dist!r})" if dist else ""
    return StarError(
        f"The package `flame` installed at {where}{named} is not PrivateAIM's FLAME SDK: it "
        "has no `flame.star`, and it hides flame_lab's stand-in, so `import flame.star` fails.",
        hint=(f"Uninstall it: `pip uninstall {dist}`" if dist else "Remove it from sys.path")
        + ", or use a separate environment for FLAME analyses. flame_lab then provides "
        "`flame.star` itself (or install PrivateAIM's SDK from its git repository).",
    )


def ensure_importable() -> bool:
    """Let analysis code ``import flame.star``; True if this call added flame_lab's copy.

    Raises StarError when an unrelated ``flame`` package is in the way.
    """
    foreign = foreign_flame()
    if foreign is not None:
        raise foreign
    try:
        if importlib.util.find_spec("flame") is not None:
            return False
    except (ImportError, ValueError):  # a broken or spec-less ``flame`` is still someone's
        return False
    folder = str(COMPAT_DIR)
    if folder not in sys.path:
        sys.path.append(folder)
    importlib.invalidate_caches()
    return True
