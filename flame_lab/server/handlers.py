"""Thin REST handlers: parse the request, await one manager call, write JSON.

Every handler is a Jupyter ``APIHandler`` with ``@tornado.web.authenticated`` on each verb,
so Jupyter's token/cookie login and its XSRF check on POST apply unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any

from jupyter_server.base.handlers import APIHandler
from tornado import web

from flame_lab.errors import BadRequest, FlameLabError
from flame_lab.server import limits
from flame_lab.server.manager import FederationManager, error_reply

MANAGER_SETTING = "flame_lab_manager"


class FlameLabHandler(APIHandler):
    """Base of flame_lab's handlers: the manager, JSON bodies and error answers."""

    @property
    def manager(self) -> FederationManager:
        return self.settings[MANAGER_SETTING]

    def json_body(self) -> dict[str, Any]:
        """The request's JSON object within limits.py's bounds; never logged, since it may
        carry a passphrase."""
        return limits.parse_body(self.request.body)

    def query_text(self, name: str) -> str | None:
        """A short query argument (a node name, a log level), refused when too long."""
        value = self.get_query_argument(name, None)
        return limits.text_field(value, name, limits.MAX_QUERY_CHARS, name=True)

    async def answer(self, work: Awaitable[dict[str, Any]] | dict[str, Any], code: int = 200):
        """Write ``work``'s result, or the error it raised as ``{error, message, hint}``."""
        try:
            body = await work if isinstance(work, Awaitable) else work
        except Exception as exc:
            code, body = error_reply(exc)
            if isinstance(exc, FlameLabError):
                self.log.info("flame_lab %s: %s %s", self.request.path, code, body["error"])
            else:
                self.log.error("flame_lab %s failed", self.request.path, exc_info=exc)
        self.set_status(code)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def submitted(self) -> dict[str, Any] | None:
        """The POST body, or None after answering 400 for a malformed one."""
        try:
            return self.json_body()
        except BadRequest as exc:
            self.refuse(exc)
            return None

    def refuse(self, exc: BadRequest) -> None:
        """Answer a malformed request with its 400/413 and the reason."""
        code, body = error_reply(exc)
        self.set_status(code)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))


class VersionHandler(FlameLabHandler):
    @web.authenticated
    async def get(self) -> None:
        await self.answer(self.manager.version())


class StatusHandler(FlameLabHandler):
    @web.authenticated
    async def get(self) -> None:
        await self.answer(self.manager.status())


class NodesHandler(FlameLabHandler):
    @web.authenticated
    async def get(self) -> None:
        await self.answer(self.manager.nodes())


class DatasetsHandler(FlameLabHandler):
    @web.authenticated
    async def get(self) -> None:
        await self.answer(self.manager.datasets())


class AnalysesHandler(FlameLabHandler):
    @web.authenticated
    async def get(self) -> None:
        await self.answer(self.manager.analyses())

    @web.authenticated
    async def post(self) -> None:
        body = self.submitted()
        if body is not None:
            await self.answer(self.manager.submit(body), code=201)


class AnalysisHandler(FlameLabHandler):
    @web.authenticated
    async def get(self, analysis_id: str) -> None:
        await self.answer(self.manager.analysis(analysis_id))


class LogsHandler(FlameLabHandler):
    @web.authenticated
    async def get(self, analysis_id: str) -> None:
        try:
            node, level = self.query_text("node"), self.query_text("level")
        except BadRequest as exc:
            self.refuse(exc)
            return
        await self.answer(self.manager.logs(analysis_id, node, level))


class CancelHandler(FlameLabHandler):
    @web.authenticated
    async def post(self, analysis_id: str) -> None:
        await self.answer(self.manager.cancel(analysis_id), code=202)


class SandboxStartHandler(FlameLabHandler):
    @web.authenticated
    async def post(self) -> None:
        await self.answer(self.manager.sandbox_start(), code=202)


class SandboxStopHandler(FlameLabHandler):
    @web.authenticated
    async def post(self) -> None:
        await self.answer(self.manager.sandbox_stop(), code=202)
