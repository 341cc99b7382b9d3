"""flame_lab: a Jupyter workbench for federated analysis on PrivateAIM's FLAME platform.

``import flame_lab as fl`` stays cheap: the workflow API loads on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "connect": "flame_lab.federation",
    "attach": "flame_lab.federation",
    "Federation": "flame_lab.federation",
    "Analysis": "flame_lab.federation",
    "Draft": "flame_lab.draft",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'flame_lab' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext flame_lab`: the %flame magics, and flame.star importable in the kernel."""
    from flame_lab.kernel.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from flame_lab.kernel.magics import unload_ipython_extension as unload

    unload(ipython)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Jupyter loads the REST API behind the Lab panel from flame_lab.server."""
    from flame_lab.server import _jupyter_server_extension_points as points

    return points()


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab extension shipped in flame_lab/labextension/."""
    return [{"src": "labextension", "dest": "flame-lab"}]
