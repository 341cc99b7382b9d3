"""A scripted browser for OAuth logins: follows redirects, keeps cookies, fills the login form."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from urllib.parse import urljoin

import requests

_NONCE = re.compile(r'name="nonce" value="([^"]+)"')
_ACTION = re.compile(r'<form method="post" action="([^"]+)"')


def login_form(page: requests.Response) -> tuple[str, str]:
    """The nonce and the action URL path of the sandbox's login form on ``page``."""
    nonce, action = _NONCE.search(page.text), _ACTION.search(page.text)
    assert nonce and action, f"no login form at {page.url}: {page.text[:300]}"
    return html.unescape(nonce.group(1)), html.unescape(action.group(1))


def fill_login_form(
    session: requests.Session, page: requests.Response, username: str, password: str
) -> requests.Response:
    """Post the sandbox's login form shown on ``page`` and follow where it sends us."""
    nonce, action = login_form(page)
    return session.post(
        urljoin(page.url, action),
        data={"nonce": nonce, "username": username, "password": password},
        timeout=30,
    )


def wait_for(what: str, check: Callable[[], object], timeout: float) -> object:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.2)
