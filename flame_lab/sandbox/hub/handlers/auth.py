"""The one auth route the clients' flows call: ``POST /auth/token`` (JSON or form body)."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from flame_lab.sandbox.hub.handlers.base import HubHandler
from flame_lab.sandbox.hub.wire import ApiError


class TokenHandler(HubHandler):
    public = True

    def post(self) -> None:
        content_type = self.request.headers.get("Content-Type", "")
        if content_type.startswith("application/x-www-form-urlencoded"):
            body = dict(parse_qsl(self.request.body.decode("utf-8")))
        else:
            body = self.json_body()
            if not isinstance(body, dict):
                raise ApiError(400, "the token request must be a JSON object")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(self.hub.auth.grant(body)))
