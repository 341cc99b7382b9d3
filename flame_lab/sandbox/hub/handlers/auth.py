"""The one auth route the clients' flows call: ``POST /auth/token`` (JSON or form body)."""

from __future__ import annotations

import json

from tornado.ioloop import IOLoop

from flame_lab.sandbox.hub.handlers.base import HubHandler
from flame_lab.sandbox.hub.limits import MAX_TOKEN_BYTES
from flame_lab.sandbox.hub.wire import ApiError


class TokenHandler(HubHandler):
    """Password checks cost ~0.3 s of Argon2id by design: they run on a worker thread so the
    hub's loop keeps serving nodes meanwhile."""

    public = True
    body_limit = MAX_TOKEN_BYTES

    def token_body(self) -> dict:
        content_type = self.request.headers.get("Content-Type", "")
        if content_type.startswith("application/x-www-form-urlencoded"):
            return self.form_body()
        body = self.json_body()
        if not isinstance(body, dict):
            raise ApiError(400, "the token request must be a JSON object")
        return body

    async def grant(self, body: dict) -> None:
        answer = await IOLoop.current().run_in_executor(
            None, self.hub.auth.grant, body, self.request.remote_ip or ""
        )
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(answer))

    async def post(self) -> None:
        await self.grant(self.token_body())
