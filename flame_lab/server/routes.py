"""The one route table of flame_lab's REST API, below ``{base_url}flame-lab/api/``."""

from __future__ import annotations

from dataclasses import dataclass

from jupyter_server.utils import url_path_join

from flame_lab.server import handlers

API_ROOT = "flame-lab/api"
_ID = r"(?P<analysis_id>[A-Za-z0-9_-]+)"


@dataclass(frozen=True)
class Route:
    """A URL pattern, its handler, the verbs it answers and a concrete path for tests and docs."""

    pattern: str
    handler: type[handlers.FlameLabHandler]
    methods: tuple[str, ...]
    example: str


ROUTES: tuple[Route, ...] = (
    Route("version", handlers.VersionHandler, ("GET",), "version"),
    Route("status", handlers.StatusHandler, ("GET",), "status"),
    Route("nodes", handlers.NodesHandler, ("GET",), "nodes"),
    Route("datasets", handlers.DatasetsHandler, ("GET",), "datasets"),
    Route("analyses", handlers.AnalysesHandler, ("GET", "POST"), "analyses"),
    Route(f"analyses/{_ID}", handlers.AnalysisHandler, ("GET",), "analyses/a1"),
    Route(f"analyses/{_ID}/logs", handlers.LogsHandler, ("GET",), "analyses/a1/logs"),
    Route(f"analyses/{_ID}/cancel", handlers.CancelHandler, ("POST",), "analyses/a1/cancel"),
    Route("sandbox/start", handlers.SandboxStartHandler, ("POST",), "sandbox/start"),
    Route("sandbox/stop", handlers.SandboxStopHandler, ("POST",), "sandbox/stop"),
)


def handler_specs() -> list[tuple[str, type[handlers.FlameLabHandler]]]:
    """(pattern, handler) pairs for ExtensionApp.handlers; Jupyter prepends its base_url."""
    return [(url_path_join(API_ROOT, route.pattern), route.handler) for route in ROUTES]
