"""One route table, every route behind Jupyter's login, XSRF on cookie-authenticated POSTs."""

from __future__ import annotations

import ast
import json
import re
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

import flame_lab.server
from flame_lab.server import routes
from flame_lab.server.app import FlameLab

# Jupyter warns at start-up about any handler without an auth decorator: make that fatal here.
pytestmark = pytest.mark.filterwarnings("error::jupyter_server.utils.JupyterServerAuthWarning")
SERVER_SOURCE = Path(flame_lab.server.__file__).parent


def _url(base_url: str, route: routes.Route) -> str:
    return url_path_join(base_url, routes.API_ROOT, route.example)


def _cookies(response) -> dict[str, str]:
    jar = SimpleCookie()
    for header in response.headers.get_list("Set-Cookie"):
        jar.load(header)
    return {name: morsel.value for name, morsel in jar.items()}


def test_every_route_pattern_matches_its_example_path():
    for route in routes.ROUTES:
        assert re.fullmatch(route.pattern, route.example), route


def test_every_verb_of_every_route_is_an_authenticated_api_handler():
    for route in routes.ROUTES:
        assert issubclass(route.handler, APIHandler), route
        for method in route.methods:
            verb = getattr(route.handler, method.lower())
            # tornado.web.authenticated wraps the verb (functools.wraps sets __wrapped__)
            assert getattr(verb, "__wrapped__", None) is not None, (route.example, method)


def test_the_route_table_has_no_result_endpoint():
    """The server never decrypts: results open only in the researcher's kernel."""
    assert not [r for r in routes.ROUTES if "result" in r.pattern]


def test_server_code_never_opens_a_result():
    """No call of ``.result()`` nor of the envelope code anywhere in flame_lab/server."""
    for path in SERVER_SOURCE.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                assert node.func.attr not in ("result", "open_sealed", "_open"), (path, node.lineno)
            if isinstance(node, ast.ImportFrom):
                assert "envelope" not in (node.module or ""), path
                assert "envelope" not in {a.name for a in node.names}, path


def test_extension_points_name_the_flamelab_app():
    (point,) = flame_lab.server._jupyter_server_extension_points()
    assert point["app"] is FlameLab and point["module"] == "flame_lab.server.app"


async def test_every_route_refuses_requests_without_credentials(
    jp_serverapp, http_server_client, jp_base_url
):
    assert jp_serverapp.web_app.settings["allow_unauthenticated_access"] is False
    for route in routes.ROUTES:
        for method in route.methods:
            response = await http_server_client.fetch(
                _url(jp_base_url, route),
                method=method,
                body="{}" if method == "POST" else None,
                raise_error=False,
                follow_redirects=False,
            )
            assert response.code in (401, 403), (method, route.example, response.code)


async def test_every_route_answers_with_the_token(api):
    """The same table, authenticated: no route is missing from the server (404)."""
    for route in routes.ROUTES:
        for method in route.methods:
            if route.example.startswith("sandbox/"):
                continue  # starting a federation is tested on its own, in test_handlers
            code, body = await api.request(method, route.example)
            assert code not in (401, 403, 404, 405) or body.get("error") == "NotFound", (
                method,
                route.example,
                code,
                body,
            )


async def _login(http_server_client, jp_base_url, token: str) -> dict[str, str]:
    """Log in as a browser does: the login page's _xsrf cookie, then the login form."""
    page = await http_server_client.fetch(url_path_join(jp_base_url, "login"), raise_error=False)
    cookies = _cookies(page)
    xsrf = cookies["_xsrf"]
    form = await http_server_client.fetch(
        url_path_join(jp_base_url, "login"),
        method="POST",
        body=f"password={token}&_xsrf={xsrf}",
        headers={"Cookie": f"_xsrf={xsrf}"},
        follow_redirects=False,
        raise_error=False,
    )
    assert form.code == 302, form.code
    cookies.update(_cookies(form))
    assert len(cookies) >= 2, cookies  # the login cookie besides _xsrf
    return cookies


@pytest.mark.parametrize("path", ["analyses", "analyses/a1/cancel", "sandbox/stop"])
async def test_cookie_authenticated_post_without_xsrf_token_is_refused(
    jp_serverapp, http_server_client, jp_base_url, path
):
    cookies = await _login(http_server_client, jp_base_url, jp_serverapp.identity_provider.token)
    header = "; ".join(f"{k}={v}" for k, v in cookies.items())
    url = url_path_join(jp_base_url, routes.API_ROOT, path)
    refused = await http_server_client.fetch(
        url, method="POST", body="{}", headers={"Cookie": header}, raise_error=False
    )
    assert refused.code == 403
    assert b"xsrf" in refused.body.lower()


async def test_cookie_authenticated_post_with_xsrf_token_is_let_through(
    jp_serverapp, http_server_client, jp_base_url
):
    cookies = await _login(http_server_client, jp_base_url, jp_serverapp.identity_provider.token)
    header = "; ".join(f"{k}={v}" for k, v in cookies.items())
    accepted = await http_server_client.fetch(
        url_path_join(jp_base_url, routes.API_ROOT, "analyses"),
        method="POST",
        body=json.dumps({"notebook": {"cells": []}}),
        headers={"Cookie": header, "X-XSRFToken": cookies["_xsrf"]},
        raise_error=False,
    )
    assert accepted.code == 400  # past Jupyter's checks, refused by flame_lab: no %%flame cells
    assert json.loads(accepted.body)["error"] == "DraftError"


async def test_token_authenticated_post_needs_no_xsrf_token(api):
    """Jupyter exempts token requests from XSRF by design: a token is not sent by browsers."""
    code, body = await api.post("analyses", {"notebook": {"cells": []}})
    assert code == 400 and body["error"] == "DraftError"
