"""Does a draft fit a master image? What is missing, and which known images would do.

``report(draft, image)`` is what ``Draft.check``, ``%flame test`` and Submit to FLAME show:
the draft's needs, the chosen image's verdict (missing packages, version differences, Python
syntax or standard-library modules the image's Python lacks) and the known images that fit.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from flame_lab.draft import Draft
from flame_lab.errors import ImageError
from flame_lab.images import catalog as catalogs
from flame_lab.images.capture import Environment, Need, capture
from flame_lab.images.catalog import Catalog, MasterImage

# Standard-library modules by the Python versions that have them (first, last): an import
# of one the image's Python lacks fails there even though this kernel has it.
STDLIB_SPAN: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "tomllib": ((3, 11), (9, 99)),
    "distutils": ((3, 0), (3, 11)),
    "imp": ((3, 0), (3, 11)),
    "asynchat": ((3, 0), (3, 11)),
    "asyncore": ((3, 0), (3, 11)),
    "smtpd": ((3, 0), (3, 11)),
    **{
        name: ((3, 0), (3, 12))
        for name in (
            "aifc audioop cgi cgitb chunk crypt imghdr mailcap msilib nis nntplib ossaudiodev "
            "pipes sndhdr spwd sunau telnetlib uu xdrlib lib2to3"
        ).split()
    },
}


@dataclass(frozen=True)
class Fit:
    """One image weighed against one draft."""

    image: MasterImage
    missing: tuple[Need, ...] = ()
    differs: tuple[tuple[Need, str], ...] = ()  # (need, the image's pin) where versions differ
    python_problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.missing and not self.python_problems

    def summary(self) -> str:
        if self.ok:
            text = f"{self.image.path} has everything the draft imports"
            if self.differs:
                text += "; versions differ: " + ", ".join(
                    f"{n.distribution} {n.version} here, {pin} there" for n, pin in self.differs
                )
            return text
        parts = []
        if self.missing:
            parts.append(
                "lacks " + ", ".join(f"{n} (imported at {n.where[0]})" for n in self.missing)
            )
        parts += list(self.python_problems)
        return f"{self.image.path} " + "; ".join(parts)


@dataclass(frozen=True)
class ImageReport:
    """A draft's needs, the verdict for the chosen image (if any), the known images that fit."""

    environment: Environment
    chosen: Fit | None = None
    fitting: tuple[str, ...] = field(default_factory=tuple)

    def summary(self, shown: int | None = 6) -> str:
        """Lines for a person; ``shown`` bounds the list of fitting images (None: all of them),
        and what it leaves out is counted, never cut with a bare "..."."""
        lines = []
        if self.environment.needs:
            lines.append("needs: " + ", ".join(str(n) for n in self.environment.needs))
        else:
            lines.append("needs only the standard library and flame")
        if self.chosen is not None:
            lines.append(("fits: " if self.chosen.ok else "does not fit: ") + self.chosen.summary())
        names = list(self.fitting if shown is None else self.fitting[:shown])
        text = ", ".join(names) if names else "none"
        if len(self.fitting) > len(names):
            text += f" (+{len(self.fitting) - len(names)} more)"
        lines.append("known images that fit: " + text)
        return "\n".join(lines)

    def to_dict(self) -> dict:
        chosen = self.chosen
        return {
            "needs": self.environment.requirements(),
            "image": chosen.image.path if chosen else None,
            "fits": chosen.ok if chosen else None,
            "missing": [n.module for n in chosen.missing] if chosen else [],
            "fitting": list(self.fitting),
            "summary": self.summary(),
        }


def _pin_differs(version: str | None, pin) -> bool:
    if version is None or not str(pin):
        return False
    try:
        return Version(version) not in pin
    except InvalidVersion:
        return False


def _python_problems(draft: Draft, env: Environment, version: tuple[int, int] | None) -> list[str]:
    if version is None:
        return []
    problems = []
    for module, where in env.stdlib.items():
        span = STDLIB_SPAN.get(module)
        if span and not span[0] <= version <= span[1]:
            problems.append(
                f"its Python {version[0]}.{version[1]} has no standard module {module!r} "
                f"(imported at {where[0]})"
            )
    if version < env.python:
        for src in draft.sources.values():
            try:
                ast.parse(src.text, filename=src.path, feature_version=version)
            except SyntaxError as exc:
                problems.append(
                    f"{src.where(exc.lineno)} is not Python {version[0]}.{version[1]} "
                    f"syntax ({exc.msg})"
                )
    return problems


def weigh(draft: Draft, env: Environment, image: MasterImage, catalog: Catalog) -> Fit:
    """Raises ImageError if the image's package list is unknown."""
    pins = catalog.provided(image)
    modules = {m for dist in pins for m in catalog.modules_of(dist)}
    missing, differs = [], []
    for need in env.needs:
        dist = need.distribution and canonicalize_name(need.distribution)
        if dist in pins:
            if _pin_differs(need.version, pins[dist]):
                differs.append((need, str(pins[dist])))
        elif need.module not in modules:
            missing.append(need)
    return Fit(
        image,
        tuple(missing),
        tuple(differs),
        tuple(_python_problems(draft, env, image.python_version)),
    )


def fitting(
    draft: Draft, env: Environment, catalog: Catalog, offered: Iterable[str] | None = None
) -> list[str]:
    """Known images with a complete list that fit, python/base first, then smallest first."""
    found = []
    allowed = None if offered is None else set(offered)
    for image in catalog.images.values():
        if allowed is not None and image.path not in allowed:
            continue
        if image.complete and "/test/" not in image.path and weigh(draft, env, image, catalog).ok:
            found.append(
                (
                    image.path != catalogs.DEFAULT_IMAGE,
                    "/use-cases/" in image.path,  # general images before one study's
                    len(image.requirements),
                    image.path,
                )
            )
    return [path for *_, path in sorted(found)]


def report(
    draft: Draft,
    image: str | MasterImage | None = None,
    catalog: Catalog | None = None,
    *,
    offered: Iterable[str] | None = None,
) -> ImageReport:
    """The draft against ``image`` (if given) and every known image; raises ImageError when
    the chosen image is unknown, its package list is unknown, or it lacks a needed module."""
    catalog = catalog or catalogs.load()
    env = capture(draft, catalog)
    chosen = None
    if image is not None:
        known = image if isinstance(image, MasterImage) else catalog.get(image)
        chosen = weigh(draft, env, known, catalog)
    fits = fitting(draft, env, catalog, offered)
    if chosen is not None and not chosen.ok:
        raise ImageError(
            f"the draft does not fit master image {chosen.image.path}: "
            + chosen.summary().removeprefix(chosen.image.path + " "),
            hint=(
                "Choose an image that has it: " + ", ".join(fits[:5])
                if fits
                else "No known image has it: build your own (`flame-lab image requirements "
                "DRAFT` writes its requirements.txt; see deploy/master-image/)"
            )
            + ", or change the analysis to use what the image has.",
        )
    return ImageReport(env, chosen, tuple(fits))


def requirements_txt(draft: Draft, base: str = catalogs.DEFAULT_IMAGE) -> str:
    """A requirements file for a custom image built on ``base``: what the draft needs beyond it."""
    catalog = catalogs.load()
    env = capture(draft, catalog)
    image = catalog.get(base)
    fit = weigh(draft, env, image, catalog)
    src = catalog.source
    lines = [
        "# Requirements of a flame_lab draft, for a FLAME master image built on "
        f"{image.path} (from {image.source}).",
        f"# Captured from this kernel (Python {env.python[0]}.{env.python[1]}); "
        f"catalog: {src.get('repository', '?')} at {src.get('commit', '?')[:12]}.",
    ]
    extra = {n.requirement for n in fit.missing}
    lines += sorted(extra, key=str.lower)
    if not extra:
        lines.append(f"# nothing beyond {image.path}: the draft runs on it as it is")
    return "\n".join(lines) + "\n"
