"""PrivateAIM's flame_hub client, set up for one hub, with its errors turned into ours.

The researcher's workflow and the sandbox's node agents both talk to hubs through this, so
that "unreachable", "not allowed" and "not found" read the same everywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx2 as httpx
from flame_hub import CoreClient, HubAPIError, StorageClient
from flame_hub.auth import ClientAuth, PasswordAuth, StaticAuth

from flame_lab.errors import HubAuthError, HubError, HubUnreachable, NotFound

T = TypeVar("T")


@dataclass(frozen=True, repr=False)
class HubEndpoints:
    """A hub's three APIs; a self-hosted hub (and the sandbox) serves them under one host."""

    core_url: str
    auth_url: str
    storage_url: str
    timeout: float = field(default=30.0)

    @classmethod
    def under(cls, base_url: str) -> HubEndpoints:
        base = base_url.rstrip("/")
        return cls(f"{base}/core", f"{base}/auth", f"{base}/storage")

    def __repr__(self) -> str:
        return f"HubEndpoints(core_url={self.core_url!r})"


@dataclass(repr=False)
class HubClients:
    """Core and storage clients sharing one authentication flow."""

    endpoints: HubEndpoints
    core: CoreClient
    storage: StorageClient
    core_http: httpx.Client  # the same session, for routes flame_hub has no method for
    storage_http: httpx.Client

    def __repr__(self) -> str:
        return f"HubClients({self.endpoints.core_url!r})"


def _clients(endpoints: HubEndpoints, auth: httpx.Auth) -> HubClients:
    timeout = httpx.Timeout(endpoints.timeout)
    core_http = httpx.Client(base_url=endpoints.core_url, auth=auth, timeout=timeout)
    storage_http = httpx.Client(base_url=endpoints.storage_url, auth=auth, timeout=timeout)
    core = CoreClient(endpoints.core_url, client=core_http)
    storage = StorageClient(endpoints.storage_url, client=storage_http)
    return HubClients(endpoints, core, storage, core_http, storage_http)


def with_password(endpoints: HubEndpoints, username: str, password: str) -> HubClients:
    client = httpx.Client(base_url=endpoints.auth_url, timeout=endpoints.timeout)
    return _clients(endpoints, PasswordAuth(username, password, client=client))


def with_client_credentials(endpoints: HubEndpoints, client_id: str, secret: str) -> HubClients:
    client = httpx.Client(base_url=endpoints.auth_url, timeout=endpoints.timeout)
    return _clients(endpoints, ClientAuth(client_id, secret, client=client))


def with_token(endpoints: HubEndpoints, token: str) -> HubClients:
    return _clients(endpoints, StaticAuth(token))


def _status(exc: HubAPIError) -> int | None:
    response = exc.error_response
    if response is not None and response.status_code:
        return response.status_code
    text = str(exc)
    for code in (400, 401, 403, 404, 409, 413):
        if str(code) in text:
            return code
    return None


@contextlib.contextmanager
def hub_errors(doing: str, url: str = "") -> Iterator[None]:
    """Run hub calls; any failure becomes a FlameLabError naming what was being done."""
    where = f" at {url}" if url else ""
    try:
        yield
    except HubAPIError as exc:
        status = _status(exc)
        detail = exc.error_response.message if exc.error_response else ""
        message = f"the hub refused to {doing}" + (f": {detail}" if detail else f" ({exc})")
        if status == 401:
            raise HubAuthError(
                f"the hub{where} did not accept our login while trying to {doing}"
            ) from None
        if status == 404:
            raise NotFound(message) from None
        raise HubError(message) from None
    except httpx.TransportError as exc:
        raise HubUnreachable(
            f"cannot reach the hub{where} to {doing}: {type(exc).__name__}",
            hint="Check the hub URL and your network; for the sandbox run `flame-lab sandbox up`.",
        ) from None


PAGE = 50  # the largest page a FLAME Hub serves


def every(find: Callable[..., list[T]], **params: Any) -> list[T]:
    """All records of a flame_hub ``find_*``/``get_*`` call, page by page (hubs cap pages at 50)."""
    found: list[T] = []
    while True:
        page = find(page={"limit": PAGE, "offset": len(found)}, **params)
        found.extend(page)
        if len(page) < PAGE:
            return found
