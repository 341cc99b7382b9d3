"""The import gate of a master image's stand-in: copied into its virtualenv, run at start-up.

A ``.pth`` line in the stand-in's site-packages imports this module as
``_flame_lab_image_gate`` before anything else. It reads ``image.json`` beside it, adds the
node's own site folders (where the packages the image shares with this machine, and flame_lab,
are installed) and puts a finder first on ``sys.meta_path``: a top-level module that analysis
code imports (not the standard library, not flame_lab's runtime, not a library importing its
own dependencies) is found only if the image has it. Otherwise the import fails exactly as on
the node: ``ModuleNotFoundError: No module named 'pandas'``. Standard library only.
"""

from __future__ import annotations

import json
import os
import site
import sys
from importlib.machinery import PathFinder

_HERE = os.path.dirname(os.path.abspath(__file__))
_SKIP = ("<frozen importlib", os.path.dirname(os.__file__) + os.sep + "importlib" + os.sep)


class ImageGate:
    """Refuses analysis imports of host packages the image does not list."""

    def __init__(self, image: str, allowed: set[str], host_paths: list[str], trusted: list[str]):
        self.image = image
        self.allowed = allowed
        self.host_paths = host_paths
        self.trusted = tuple(p.rstrip(os.sep) + os.sep for p in trusted)

    def _importer_is_analysis(self) -> bool:
        frame = sys._getframe(2)
        while frame is not None and frame.f_code.co_filename.startswith(_SKIP):
            frame = frame.f_back
        if frame is None or frame.f_code.co_filename.startswith("<frozen "):
            return False  # frozen modules are the standard library's (runpy, for -m)
        return not os.path.abspath(frame.f_code.co_filename).startswith(self.trusted)

    def find_spec(self, name, path=None, target=None):  # the MetaPathFinder protocol
        if path is not None or name in self.allowed or name in sys.stdlib_module_names:
            return None
        if not self._importer_is_analysis():
            return None
        if PathFinder.find_spec(name, self.host_paths) is None:
            return None  # the analysis's own module, or nowhere: the normal import decides
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    def invalidate_caches(self) -> None:
        return None


def install() -> ImageGate:
    with open(os.path.join(_HERE, "image.json"), encoding="utf-8") as file:
        spec = json.load(file)
    before = list(sys.path)
    for folder in spec["host_sites"]:
        site.addsitedir(folder)
    host_paths = [p for p in sys.path if p not in before]
    trusted = [*host_paths, os.path.dirname(os.__file__), *spec.get("trusted", [])]
    gate = ImageGate(spec["image"], set(spec["allowed"]), host_paths, trusted)
    sys.meta_path.insert(0, gate)
    return gate


if __name__ == "_flame_lab_image_gate":
    install()
