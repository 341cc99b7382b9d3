"""flame_lab's Jupyter server extension: the REST API behind the JupyterLab panel.

``flame_lab/__init__.py`` delegates its ``_jupyter_server_extension_points`` here, so the
extension is enabled as ``flame_lab``; tests may enable ``flame_lab.server`` directly.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from flame_lab.server.app import FlameLab

    return [{"module": "flame_lab.server.app", "app": FlameLab}]
