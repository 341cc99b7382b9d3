"""The engine behind the REST handlers: one cached Federation, blocking calls off the IO loop.

Handlers stay thin: they parse the request, await one coroutine here and write its answer.
Every domain error becomes an HTTP status and a ``{error, message, hint}`` body in
``error_reply``, the one place that mapping lives. The server never opens results: it has no
code path that calls ``Analysis.result()``; it only reports that one is available.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from tornado.ioloop import IOLoop

from flame_lab import __version__, config
from flame_lab.draft import Draft
from flame_lab.errors import (
    BadRequest,
    ConfigError,
    DraftError,
    FlameLabError,
    HubAuthError,
    HubError,
    HubUnreachable,
    KeyFileMissing,
    NotFound,
    PassphraseRequired,
    SandboxError,
)
from flame_lab.federation import Analysis, AnalysisStatus, Federation, connect, researcher_identity
from flame_lab.records import SubmissionStore
from flame_lab.sandbox import daemon
from flame_lab.security.keys import (
    PASSPHRASE_ENV,
    Identity,
    PublicIdentity,
    load_identity,
    read_public,
)
from flame_lab.server import hubtoken, limits, wire

T = TypeVar("T")

# First match wins, so subclasses come before their bases.
STATUS_BY_ERROR: tuple[tuple[type[FlameLabError], int], ...] = (
    (PassphraseRequired, 409),
    (DraftError, 400),
    (limits.RequestTooLarge, 413),
    (BadRequest, 400),
    (NotFound, 404),
    (HubUnreachable, 503),
    (HubError, 502),
    (SandboxError, 503),
    (ConfigError, 500),
    (FlameLabError, 400),
)
INTERNAL_ERROR = {
    "error": "InternalError",
    "message": "the flame_lab server extension failed unexpectedly",
    "hint": "Read the Jupyter server log for the cause, then retry.",
}


def error_reply(exc: BaseException) -> tuple[int, dict[str, str]]:
    """The HTTP status and JSON body for any exception a manager call raised."""
    if isinstance(exc, FlameLabError):
        for cls, code in STATUS_BY_ERROR:
            if isinstance(exc, cls):
                return code, exc.to_dict()
    return 500, dict(INTERNAL_ERROR)


@dataclass(frozen=True)
class ServerSettings:
    """Where the server's federation is, as the admin configured it (``c.FlameLab.*``)."""

    profile: str = ""
    core_url: str = ""
    auth_url: str = ""
    storage_url: str = ""
    project: str = ""
    sandbox_autostart: bool = True
    sandbox_home: str = ""
    token_env: str = "FLAME_LAB_HUB_TOKEN"  # noqa: S105 (the name of a variable)
    jupyterhub_auth_state: bool = True  # under JupyterHub, take the token from auth_state

    def check(self) -> None:
        """Refuse a half-configured hub at start-up rather than on the first request."""
        urls = {
            "core_url": self.core_url,
            "auth_url": self.auth_url,
            "storage_url": self.storage_url,
        }
        missing = [k for k, v in urls.items() if not v]
        if any(urls.values()) and missing:
            raise ConfigError(
                "c.FlameLab needs all three hub URLs; missing " + ", ".join(missing),
                hint="Set c.FlameLab.core_url, auth_url and storage_url (or none of them).",
            )

    def environment(self) -> dict[str, str]:
        """The FLAME_LAB_* variables that make kernels started by this server agree with it."""
        env = {
            "FLAME_LAB_PROFILE": self.profile,
            "FLAME_LAB_CORE_URL": self.core_url,
            "FLAME_LAB_AUTH_URL": self.auth_url,
            "FLAME_LAB_STORAGE_URL": self.storage_url,
            "FLAME_LAB_SANDBOX_DIR": self.sandbox_home,
        }
        return {k: v for k, v in env.items() if v}


def _notebook(value: Any) -> dict[str, Any]:
    """The notebook of a submission, sent as a JSON object (or as its text)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, dict):
        raise DraftError(
            "the request holds no notebook (nbformat JSON)", hint="Submit from an open notebook."
        )
    return value


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


class FederationManager:
    """Holds the federation the Lab panel talks to; connects lazily and reconnects when lost."""

    def __init__(
        self,
        settings: ServerSettings | None = None,
        *,
        executor: Executor | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.settings = settings or ServerSettings()
        self.settings.check()
        self.log = log or logging.getLogger(__name__)
        self._executor = executor or ThreadPoolExecutor(4, thread_name_prefix="flame-lab")
        self._federation: Federation | None = None
        self._connect_lock = threading.Lock()
        self._lifecycle_lock = threading.Lock()  # status() may send build/distribution commands
        self._stopped_by_user = False

    def __repr__(self) -> str:
        return f"FederationManager({self._profile_name()!r})"

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await IOLoop.current().run_in_executor(self._executor, fn, *args)

    # -- where the federation is --------------------------------------------------------------
    @property
    def sandbox_home(self) -> Path:
        return daemon.home_dir(self.settings.sandbox_home or None)

    def _profile(self) -> config.Profile:
        s = self.settings
        if s.core_url:
            return config.Profile(s.profile or "hub", s.core_url, s.auth_url, s.storage_url)
        profile = (
            config.active_profile()
        )  # FlameLab exports c.FlameLab.profile as FLAME_LAB_PROFILE
        if s.profile and profile.name != s.profile:
            raise ConfigError(
                f"c.FlameLab.profile is {s.profile!r} but flame_lab's configuration selects "
                f"{profile.name!r}",
                hint="Keep c.FlameLab.export_environment on, or set FLAME_LAB_PROFILE to match.",
            )
        return profile

    def _profile_name(self) -> str:
        try:
            return self._profile().name
        except FlameLabError:
            return "unknown"

    def federation(self) -> Federation:
        """The cached federation, connecting (and maybe starting the sandbox) the first time."""
        with self._connect_lock:
            if self._federation is None:
                self._federation = self._connect()
            return self._federation

    def forget(self) -> None:
        """Drop the cached federation: the next call connects afresh."""
        with self._connect_lock:
            self._federation = None

    def _connect(self) -> Federation:
        profile = self._profile()
        if profile.is_sandbox:
            start = self.settings.sandbox_autostart and not self._stopped_by_user
            return connect(config.SANDBOX, sandbox_home=self.sandbox_home, start=start)
        token = self._hub_token() or profile.extra.get("token")
        user = profile.extra.get("user")
        if not token and user:
            raise HubAuthError(
                f"the Jupyter server cannot type the hub password of {user!r}",
                hint=f"Give the server a hub token: set {self.settings.token_env} in its "
                "environment (JupyterHub can pass it) or `token` in the profile.",
            )
        return connect(
            core_url=profile.core_url,
            auth_url=profile.auth_url,
            storage_url=profile.storage_url,
            token=token,
            project=self.settings.project or profile.extra.get("project"),
        )

    def _hub_token(self) -> str | None:
        """Each connect asks JupyterHub afresh (it refreshes tokens), else the environment."""
        if self.settings.jupyterhub_auth_state:
            token = hubtoken.hub_token()
            if token:
                return token
        return os.environ.get(self.settings.token_env) or None

    def _with_federation(self, work: Callable[[Federation], T], *, retry: bool = True) -> T:
        """Run ``work``; a lost hub (restarted sandbox, expired login) gets one reconnect."""
        try:
            return work(self.federation())
        except (HubUnreachable, HubAuthError):
            self.forget()
            if not retry:
                raise
        return work(self.federation())

    def _status_of(self, analysis: Analysis) -> AnalysisStatus:
        with self._lifecycle_lock:
            return analysis.status()

    # -- the REST answers, computed in worker threads ------------------------------------------
    def version(self) -> dict[str, Any]:
        return {"version": __version__, "api": wire.API_VERSION}

    async def status(self) -> dict[str, Any]:
        return await self._run(self._status)

    async def nodes(self) -> dict[str, Any]:
        return await self._run(self._nodes)

    async def datasets(self) -> dict[str, Any]:
        return await self._run(self._datasets)

    async def analyses(self) -> dict[str, Any]:
        return await self._run(self._analyses)

    async def analysis(self, analysis_id: str) -> dict[str, Any]:
        return await self._run(self._analysis, analysis_id)

    async def logs(
        self, analysis_id: str, node: str | None = None, level: str | None = None
    ) -> dict[str, Any]:
        return await self._run(self._logs, analysis_id, node, level)

    async def submit(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``body`` is the POST's JSON; a passphrase in it unlocks the key for this call only."""
        return await self._run(self._submit, body)

    async def cancel(self, analysis_id: str) -> dict[str, Any]:
        return await self._run(self._cancel, analysis_id)

    async def sandbox_start(self) -> dict[str, Any]:
        return await self._run(self._sandbox_start)

    async def sandbox_stop(self) -> dict[str, Any]:
        return await self._run(self._sandbox_stop)

    # -- implementations ---------------------------------------------------------------------
    def _status(self) -> dict[str, Any]:
        error: FlameLabError | None = None
        profile: config.Profile | None = None
        core_url = ""
        try:
            profile = self._profile()
        except FlameLabError as exc:
            error = exc
        is_sandbox = profile is None or profile.is_sandbox
        if profile is not None and profile.is_sandbox:
            running = daemon.running(self.sandbox_home)
            core_url = f"{running.url}/core" if running else ""
            if running is None:
                error = SandboxError(
                    "the sandbox federation is not running",
                    hint="Start it from the panel, or with `flame-lab sandbox up` in a terminal.",
                )
        elif profile is not None:
            core_url = profile.core_url or ""
        if error is None:
            try:
                self._with_federation(lambda fed: fed.nodes())
            except FlameLabError as exc:
                error = exc
        key_id, key_hint = self._key()
        return {
            "federation": {
                "name": profile.name if profile else "unknown",
                "kind": "sandbox" if is_sandbox else "hub",
                "coreUrl": core_url,
            },
            "reachable": error is None,
            "error": wire.error_info(error),
            "keyId": key_id,
            "keyFile": str(config.identity_file()),
            "keyHint": key_hint,
            "versions": {
                "flameLab": __version__,
                "flameHubClient": _package_version("flame-hub-client"),
            },
        }

    @staticmethod
    def _key() -> tuple[str | None, str | None]:
        """The researcher's key id from the key file's header (no passphrase needed)."""
        path = config.identity_file()
        if not path.exists():
            return (
                None,
                "You have no flame_lab identity yet: run `flame-lab keys init` in a terminal.",
            )
        try:
            public = read_public(path)
        except FlameLabError as exc:
            return None, f"{exc.message} {exc.hint}".strip()
        if not isinstance(public, PublicIdentity):
            return None, f"{path} holds a node's key, not a researcher identity."
        return public.key_id, None

    def _nodes(self) -> dict[str, Any]:
        found = self._with_federation(lambda fed: fed.nodes())
        return {"nodes": [wire.node(n) for n in found]}

    def _datasets(self) -> dict[str, Any]:
        found = self._with_federation(lambda fed: fed.datasets())
        return {"nodes": [wire.dataset(d) for d in found], "missing": list(found.missing)}

    def _analyses(self) -> dict[str, Any]:
        def summaries(fed: Federation) -> list[dict[str, Any]]:
            rows = []
            for analysis in fed.analyses():
                try:
                    status = self._status_of(analysis)
                except NotFound:
                    self.log.info("flame_lab: the hub no longer knows analysis %s", analysis.id)
                    continue
                rows.append(wire.summary(status, analysis.record))
            return rows

        return {"analyses": self._with_federation(summaries)}

    @staticmethod
    def _known(analysis_id: str) -> None:
        """An id without a submission record here is 404 at once, hub or no hub."""
        SubmissionStore().load(analysis_id)

    def _analysis(self, analysis_id: str) -> dict[str, Any]:
        self._known(analysis_id)

        def detail(fed: Federation) -> dict[str, Any]:
            analysis = fed.attach(analysis_id)
            return wire.detail(self._status_of(analysis), analysis.record)

        return self._with_federation(detail)

    def _logs(self, analysis_id: str, node: str | None, level: str | None) -> dict[str, Any]:
        self._known(analysis_id)

        def lines(fed: Federation) -> list[dict[str, Any]]:
            # one look (the panel asks again): a worker thread is not held through an outage
            found = fed.attach(analysis_id).logs(
                node=node or None, level=level or None, patient=False
            )
            return [wire.log_line(line) for line in found]

        return {"logs": self._with_federation(lines)}

    def _submit(self, body: Mapping[str, Any]) -> dict[str, Any]:
        nodes = limits.name_list(body.get("nodes"), "nodes")
        name = limits.text_field(body.get("name"), "name", limits.MAX_NAME_CHARS, name=True)
        passphrase = limits.text_field(
            body.get("passphrase"), "passphrase", limits.MAX_PASSPHRASE_CHARS
        )
        image = limits.text_field(
            body.get("masterImage"), "masterImage", limits.MAX_NAME_CHARS, name=True
        )
        sealed = body.get("sealed", False)
        if not isinstance(sealed, bool):
            raise BadRequest("`sealed` must be true or false")
        draft = Draft.from_notebook(_notebook(body.get("notebook")))
        # a faulty draft, or one the chosen image cannot run, is reported before anyone is
        # asked for a passphrase
        draft.check(image=image)
        identity = self._identity(passphrase or None)

        def submit(fed: Federation) -> Analysis:
            return fed.submit(
                draft,
                nodes=nodes or None,
                name=name or None,
                identity=identity,
                master_image=image or None,
                sealed=sealed,
            )

        analysis = self._with_federation(submit, retry=False)
        try:
            status = self._status_of(analysis)
        except FlameLabError as exc:  # submitted all the same: never invite a second submission
            self.log.warning("flame_lab: status of new analysis %s: %s", analysis.id, exc.message)
            status = AnalysisStatus(analysis.id, analysis.name, "pending", 0, ())
        return {
            "analysis": wire.summary(status, analysis.record),
            "provenance": wire.provenance(analysis.record),
        }

    @staticmethod
    def _identity(passphrase: str | None) -> Identity:
        """Unlock the researcher's key: with the request's passphrase (not kept) or the env's."""
        path = config.identity_file()
        if not path.exists():
            raise KeyFileMissing(
                f"no flame_lab identity at {path}",
                hint="Create one with `flame-lab keys init` in a terminal, then submit again.",
            )
        if passphrase is not None:
            return load_identity(path, passphrase)
        if os.environ.get(PASSPHRASE_ENV):
            return researcher_identity(path)
        raise PassphraseRequired(f"your flame_lab identity at {path} is locked")

    def _cancel(self, analysis_id: str) -> dict[str, Any]:
        self._known(analysis_id)

        def cancel(fed: Federation) -> dict[str, Any]:
            analysis = fed.attach(analysis_id)
            analysis.cancel()
            return wire.summary(self._status_of(analysis), analysis.record)

        return {"analysis": self._with_federation(cancel)}

    def _require_sandbox(self) -> None:
        profile = self._profile()
        if not profile.is_sandbox:
            raise SandboxError(
                f"this Jupyter server works with the hub {profile.name!r}, not the sandbox",
                hint="Use `flame-lab sandbox up` in a terminal for a local sandbox.",
            )

    def _sandbox_start(self) -> dict[str, Any]:
        self._require_sandbox()
        daemon.up(self.sandbox_home)
        self._stopped_by_user = False
        self.forget()
        return {"status": self._status()}

    def _sandbox_stop(self) -> dict[str, Any]:
        self._require_sandbox()
        self._stopped_by_user = True  # the panel's polling must not start it again
        daemon.down(self.sandbox_home)
        self.forget()
        return {"status": self._status()}
