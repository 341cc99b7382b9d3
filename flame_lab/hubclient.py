"""PrivateAIM's flame_hub client, set up for one hub, with its errors turned into ours.

The researcher's workflow and the sandbox's node agents both talk to hubs through this, so
that "unreachable", "not allowed" and "not found" read the same everywhere. Every wait on the
network has a named limit: a request that gets no answer ends after REQUEST_TIMEOUT, and calls
that must survive a hub restart are retried with backoff (``patiently``) up to a named
``Patience``, after which the error says what was waited for, how long, and which limit ended it.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx2 as httpx

with warnings.catch_warnings():  # flame_hub turns on every DeprecationWarning process-wide
    from flame_hub import CoreClient, HubAPIError, StorageClient
    from flame_hub.auth import ClientAuth, PasswordAuth, StaticAuth

from flame_lab.clock import SYSTEM, Clock, seconds_from_env
from flame_lab.errors import (
    HubAuthError,
    HubError,
    HubStorageFull,
    HubUnreachable,
    NotFound,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

# The named limits of every wait on a hub (README, "Timeouts"). FLAME_LAB_HUB_TIMEOUT: one
# request without an answer (connect, read, write). FLAME_LAB_HUB_OUTAGE: how long a node keeps
# retrying one call of a running analysis (a message, progress, the result upload) while the
# hub does not answer, before the run fails naming the outage.
REQUEST_TIMEOUT_VAR = "FLAME_LAB_HUB_TIMEOUT"
HUB_OUTAGE_VAR = "FLAME_LAB_HUB_OUTAGE"
DEFAULT_REQUEST_TIMEOUT = 30.0
DEFAULT_HUB_OUTAGE = 120.0


def request_timeout() -> float:
    """FLAME_LAB_HUB_TIMEOUT (default 30 s): the longest one request waits for an answer."""
    return seconds_from_env(REQUEST_TIMEOUT_VAR, DEFAULT_REQUEST_TIMEOUT)


@dataclass(frozen=True)
class Patience:
    """How long to keep retrying one kind of hub call while the hub does not answer, and how
    to space the tries (exponential backoff from ``first_delay`` up to ``max_delay``)."""

    name: str  # the limit's name, as errors and the README call it
    limit: float
    first_delay: float = 0.25
    max_delay: float = 5.0

    def delay(self, attempt: int) -> float:
        return min(self.max_delay, self.first_delay * 2 ** min(attempt, 16))


def hub_outage() -> Patience:
    """The patience of a node's calls during a run (FLAME_LAB_HUB_OUTAGE, default 120 s)."""
    return Patience(HUB_OUTAGE_VAR, seconds_from_env(HUB_OUTAGE_VAR, DEFAULT_HUB_OUTAGE))


class HubOutage(HubUnreachable):
    """The hub did not answer within a named limit; ``waited`` seconds were spent retrying."""

    def __init__(self, message: str, hint: str | None = None, waited: float = 0.0) -> None:
        super().__init__(message, hint)
        self.waited = waited


@dataclass(frozen=True, repr=False)
class HubEndpoints:
    """A hub's three APIs; a self-hosted hub (and the sandbox) serves them under one host."""

    core_url: str
    auth_url: str
    storage_url: str
    timeout: float = field(default_factory=request_timeout)

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


def long_poll_timeout(clients: HubClients, wait: float) -> float:
    """A long-polled request's timeout: the hub holds it ``wait`` seconds, then has
    FLAME_LAB_HUB_TIMEOUT to answer like any request."""
    return clients.endpoints.timeout + wait


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
    for code in (400, 401, 403, 404, 409, 413, 502, 503, 504, 507):
        if str(code) in text:
            return code
    return None


def _login_problem(detail: str) -> bool:
    """Authup answers a bad token or password with 400 (not 401): "The JWT is invalid"."""
    text = detail.lower()
    return "jwt" in text or "credentials are invalid" in text or "token is invalid" in text


def _raise_for(status: int | None, doing: str, where: str, detail: str, fallback: str) -> None:
    """The FlameLabError for a hub's error answer (shared by flame_hub calls and raw ones)."""
    suffix = f": {detail}" if detail else fallback
    if status == 401 or (status == 400 and _login_problem(detail)):
        raise HubAuthError(f"the hub{where} did not accept our login while trying to {doing}")
    if status == 404:
        raise NotFound(f"the hub refused to {doing}{suffix}")
    if status == 507:
        raise HubStorageFull(f"the hub{where} has no room to {doing}{suffix}")
    if status in (502, 503, 504):
        raise HubUnreachable(
            f"the hub{where} is temporarily unable to {doing} ({status}{suffix})",
            hint="It may be restarting, overloaded or short of disk; try again shortly.",
        )
    raise HubError(f"the hub refused to {doing}{suffix}")


@contextlib.contextmanager
def hub_errors(doing: str, url: str = "") -> Iterator[None]:
    """Run hub calls; any failure becomes a FlameLabError naming what was being done."""
    where = f" at {url}" if url else ""
    try:
        yield
    except HubAPIError as exc:
        detail = exc.error_response.message if exc.error_response else ""
        _raise_for(_status(exc), doing, where, detail, f" ({exc})")
    except httpx.TimeoutException as exc:
        error = HubUnreachable(
            f"the hub{where} did not answer within {REQUEST_TIMEOUT_VAR}="
            f"{request_timeout():g} s while trying to {doing} ({type(exc).__name__})",
            hint="The hub may be stalled or overloaded; for the sandbox see "
            "`flame-lab sandbox status` and its hub.log.",
        )
        error.maybe_done = not isinstance(exc, httpx.ConnectTimeout)
        raise error from None
    except httpx.TransportError as exc:
        error = HubUnreachable(
            f"cannot reach the hub{where} to {doing}: {type(exc).__name__}",
            hint="Check the hub URL and your network; for the sandbox run `flame-lab sandbox up`.",
        )
        # refused or unresolvable: nothing was sent; a connection lost later may have been
        error.maybe_done = not isinstance(exc, httpx.ConnectError)
        raise error from None


def checked(response: httpx.Response, doing: str, url: str = "") -> httpx.Response:
    """A raw response (a route flame_hub has no method for) whose error status is raised as
    hub_errors raises it: 502-504 retryable, 507 disk full, 401, 404, the rest refusals."""
    if response.status_code < 400:
        return response
    try:
        detail = str(response.json().get("message", ""))
    except (ValueError, AttributeError):
        detail = ""
    where = f" at {url}" if url else ""
    _raise_for(response.status_code, doing, where, detail, f" ({response.status_code})")
    return response  # not reached


def patiently(
    doing: str,
    call: Callable[[], T],
    patience: Patience,
    *,
    url: str = "",
    stop: Callable[[], bool] | None = None,
    clock: Clock = SYSTEM,
    hint: str | None = None,
    reconcile: Callable[[], T | None] | None = None,
) -> T:
    """``call()`` under hub_errors, retried with backoff while the hub does not answer (only
    HubUnreachable: a refusal or a full disk is final at once) up to ``patience.limit``
    seconds; then a HubOutage naming what was waited for, for how long, and the limit.

    Safe as it stands only for idempotent calls: a retry may repeat a request whose answer
    was lost. For a call that creates something, pass ``reconcile``: after a try that may
    have reached the hub (``HubUnreachable.maybe_done``), it is asked first (a read) and
    what it finds is the answer; only if it finds nothing is the call tried again."""
    started = clock.monotonic()
    attempt = 0
    ambiguous = False
    while True:
        try:
            with hub_errors(doing, url):
                if ambiguous and reconcile is not None:
                    found = reconcile()
                    if found is not None:
                        return found
                    ambiguous = False
                return call()
        except HubOutage:
            raise
        except HubUnreachable as exc:
            ambiguous = ambiguous or exc.maybe_done
            waited = clock.monotonic() - started
            delay = patience.delay(attempt)
            if waited + delay > patience.limit or (stop is not None and stop()):
                where = f" at {url}" if url else ""
                raise HubOutage(
                    f"the hub{where} was unreachable for {waited:.0f} s while trying to "
                    f"{doing} ({attempt + 1} tries, limit {patience.name}={patience.limit:g} s; "
                    f"last: {exc.message})",
                    hint=hint
                    or "Start the hub again (sandbox: `flame-lab sandbox up`); a longer "
                    f"{patience.name} lets runs outlast longer outages.",
                    waited=waited,
                ) from None
            if attempt == 0:
                log.warning("%s; retrying for up to %g s", exc.message, patience.limit)
            clock.sleep(delay)
            attempt += 1


PAGE = 50  # the largest page a FLAME Hub serves


def every(find: Callable[..., list[T]], **params: Any) -> list[T]:
    """All records of a flame_hub ``find_*``/``get_*`` call, page by page (hubs cap pages at 50)."""
    found: list[T] = []
    while True:
        page = find(page={"limit": PAGE, "offset": len(found)}, **params)
        found.extend(page)
        if len(page) < PAGE:
            return found
