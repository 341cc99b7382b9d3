"""`%flame` and `%%flame`: the notebook face of flame_lab.

Each verb parses its arguments, calls the workflow layer (federation, draft, localtest) and
renders; nothing else. Errors flame_lab raises on purpose are shown as one short red block,
message and hint, never a traceback (see :func:`show_flame_error`).
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from flame_lab import __version__, config
from flame_lab.draft import CELL_MAGIC, Draft, Source, parse_cell_header
from flame_lab.errors import (
    AnalysisFailed,
    FlameLabError,
    HubUnreachable,
    KeyFileExists,
    SandboxError,
)
from flame_lab.textsafe import shown

VERBS = {
    "help": ("%flame help", "this text (also %flame?)"),
    "connect": (
        "%flame connect [sandbox | URL] [--user NAME] [--token-env VAR] [--project P]",
        "choose the federation",
    ),
    "nodes": ("%flame nodes", "the federation's nodes"),
    "data": ("%flame data [NODE]", "what each node holds: tables, columns, codes"),
    "test": (
        "%flame test [--nodes N] [--image IMG]",
        "run the draft locally on mock nodes; which master image fits",
    ),
    "submit": (
        "%flame submit [--nodes a,b] [--name NAME] [--image IMG] [--sealed] "
        "[--recipient KEYFILE ...] [--wait]",
        "sign and submit the draft",
    ),
    "status": ("%flame status [ID]", "your analyses, or one analysis"),
    "watch": ("%flame watch ID [--wait]", "the live monitor of an analysis"),
    "logs": ("%flame logs ID [--node NAME] [--level L]", "every node's log lines"),
    "result": (
        "%flame result ID [--frame] [--trust CLASS ...]",
        "decrypt the result (also returned); --trust: classes a pickled result may hold",
    ),
    "cancel": ("%flame cancel ID", "stop an analysis"),
    "keys": ("%flame keys [init [--if-missing]]", "your identity key (init creates one)"),
    "approve": ("%flame approve ID --node NAME [--reason TEXT]", "sandbox: as the node's admin"),
    "reject": ("%flame reject ID --node NAME [--reason TEXT]", "sandbox: as the node's admin"),
}


def _help_line(usage: str, text: str) -> str:
    return f"  {usage:<34} {text}" if len(usage) <= 34 else f"  {usage}\n  {'':<34} {text}"


HELP = (
    "flame_lab magics: draft, test, submit and follow federated analyses.\n\n"
    "Cells:\n"
    "  %%flame                          this cell is the analysis entrypoint (analysis.py)\n"
    "  %%flame file helpers.py          this cell is an extra module of the analysis\n"
    "  Running such a cell checks it and registers it in the draft; it does not submit.\n\n"
    "Verbs:\n" + "\n".join(_help_line(*entry) for entry in VERBS.values()) + "\n"
)
RED = "\x1b[31m"
RESET = "\x1b[0m"


# -- errors ------------------------------------------------------------------------------------
def error_text(error: FlameLabError) -> str:
    """What the user sees for a flame_lab error: its kind, message and hint."""
    text = f"{type(error).__name__}: {error.message}"
    if error.hint:
        text += f"\nHint: {error.hint}"
    return text


def show_flame_error(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset=None):
    """IPython custom exception handler: a FlameLabError is a red message + hint, no traceback."""
    stb = [f"{RED}{error_text(value)}{RESET}"]
    shell._showtraceback(etype, value, stb)  # the kernel sends it as the cell's error
    return stb


class _Parser(argparse.ArgumentParser):
    """argparse that raises IPython's UsageError (with the verb's usage) instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}\nUsage: {self.usage}")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        raise UsageError(message or self.usage or "")


def _parser(verb: str) -> _Parser:
    return _Parser(prog=f"%flame {verb}", usage=VERBS[verb][0], add_help=False)


def _analysis_id(parser: _Parser) -> None:
    parser.add_argument("analysis_id", metavar="ID")


# -- the kernel's state ------------------------------------------------------------------------
@dataclass
class KernelSession:
    """What one kernel remembers: the current draft, the federation, the monitors shown."""

    draft: Draft = field(default_factory=Draft)
    federation: Any = None
    monitors: list[Any] = field(default_factory=list)
    finder: Any = None

    def connected(self) -> Any:
        if self.federation is None:
            from flame_lab.federation import connect

            self.federation = connect()
        return self.federation


def federation_label() -> str:
    """The active federation as one phrase, from configuration only (no network)."""
    try:
        profile = config.active_profile()
    except FlameLabError as error:
        return f"configuration problem ({error.message})"
    if profile.is_sandbox:
        return f"federation '{profile.name}' (local)"
    return f"federation '{profile.name}' ({profile.core_url})"


@magics_class
class FlameMagics(Magics):
    """The `%flame` line magic and the `%%flame` cell magic."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.session = KernelSession()

    @line_cell_magic
    def flame(self, line: str, cell: str | None = None) -> Any:
        """Draft, test, submit and follow FLAME federated analyses from a notebook.

        Cells:
          %%flame                     the cell is the analysis entrypoint (analysis.py)
          %%flame file helpers.py     the cell is an extra module of the analysis
          Running such a cell checks it, registers it in the kernel's draft (running it again
          replaces it) and defines its classes in the notebook; it never submits.

        Verbs:
          %flame help                 this text
          %flame connect [sandbox | URL] [--user NAME] [--token-env VAR] [--project P]
                                      choose the federation (default: the active profile)
          %flame nodes                the federation's nodes
          %flame data [NODE]          the data dictionary: each node's tables, columns, types,
                                      units, FHIR resources and codes, count bands (no rows)
          %flame test [--nodes N] [--image IMG]
                                      run the draft locally on N mock nodes with synthetic
                                      data and the nodes' disclosure rules; nothing leaves;
                                      says which FLAME master image has what it imports
          %flame submit [--nodes a,b] [--name NAME] [--image IMG] [--sealed]
                        [--recipient KEYFILE ...] [--wait]
                                      sign and submit the draft to run in master image IMG
                                      (default python/base); --sealed: the analysis seals
                                      its result itself (for real FLAME nodes); shows the
                                      live monitor; the handle is bound to `_flame`
          %flame status [ID]          a table of your analyses, or one analysis's state
          %flame watch ID [--wait]    the live monitor (also after a kernel restart)
          %flame logs ID [--node NAME] [--level L]
                                      every node's log lines, merged by time
          %flame result ID [--frame]  verify and decrypt the result here; returns it
                                      (--frame: as a pandas DataFrame)
          %flame cancel ID            stop the analysis
          %flame keys                 your key id and key file (how to create one)
          %flame keys init [--if-missing]
                                      create your identity (asks for a passphrase)
          %flame approve ID --node NAME [--reason TEXT]
          %flame reject ID --node NAME [--reason TEXT]
                                      sandbox only: decide as that node's admin
        """
        if cell is not None:
            return self._cell(line, cell)
        words = self._split(line)
        if not words:
            raise UsageError("%flame needs a verb.\n" + HELP)
        verb, args = words[0], words[1:]
        handler = getattr(self, f"_verb_{verb}", None)
        if verb not in VERBS or handler is None:
            raise UsageError(f"unknown verb {verb!r} for %flame.\n" + HELP)
        try:
            return handler(args)
        except HubUnreachable:
            if not self._reconnect():
                raise
        return handler(args)

    def _reconnect(self) -> bool:
        """A sandbox that restarted (on a new port) is found again, once, by itself."""
        fed = self.session.federation
        if fed is None or not getattr(fed, "is_sandbox", False):
            return False
        from flame_lab.federation import connect

        try:
            self.session.federation = connect(start=False)  # never start one unasked
        except FlameLabError:
            return False
        if self.session.federation.hub_url == fed.hub_url:
            return False
        print(f"(The sandbox moved: reconnected to {self.session.federation.hub_url}.)")
        return True

    @staticmethod
    def _split(line: str) -> list[str]:
        try:
            return shlex.split(line)
        except ValueError as error:
            raise UsageError(f"cannot read the arguments: {error}") from None

    # -- cells -----------------------------------------------------------------------------
    def _cell(self, line: str, cell: str) -> None:
        from flame_lab import localtest

        header_line = f"{CELL_MAGIC} {line}".strip()
        # while a cell runs, IPython's count is already the next cell's (as ipykernel knows)
        number = max(1, int(getattr(self.shell, "execution_count", 1) or 1) - 1)
        label = f"cell [{number}]"
        header = parse_cell_header(header_line)
        origin = f"{header.path} ({label})"
        draft = self.session.draft
        try:
            localtest.compile_source(Source(header.path, cell, origin, 1))  # the cell's own lines
        except FlameLabError as error:
            if draft.sources.pop(header.path, None) is not None:  # never a stale version
                error.hint = (
                    f"The earlier version of {header.path} was taken out of the draft. "
                    + (error.hint or "Fix the cell and run it again.")
                )
            raise
        draft.add_cell(header_line, cell, origin=origin)
        source = draft.sources[header.path]
        self._install_finder()
        self.session.finder.forget()
        files = len(draft.sources)
        if not header.is_entrypoint:
            print(f"Registered {header.path} in the draft ({files} file(s)).")
            return
        from flame_lab.star.compat import ensure_importable

        ensure_importable()
        try:
            reached = localtest.define(source, self.shell.user_ns)
        except Exception as error:
            from flame_lab.errors import DraftError

            raise DraftError(
                "the cell is registered, but running its definitions failed:\n"
                + localtest.user_traceback(error, draft),
                hint="Fix the cell and run it again; `%flame test` runs the whole analysis.",
            ) from None
        note = "" if reached else " (it never reached StarModel(...): add it before submitting)"
        print(
            f"Registered {header.path} as the entrypoint ({files} file(s) in the draft){note}. "
            "Next: `%flame test`, then `%flame submit`."
        )

    def _install_finder(self) -> None:
        from flame_lab.localtest import DraftFinder

        if self.session.finder is None:
            self.session.finder = DraftFinder(self.session.draft)
        self.session.finder.draft = self.session.draft
        self.session.finder.install()

    # -- verbs -----------------------------------------------------------------------------
    def _verb_help(self, args: list[str]) -> None:
        print(HELP)

    def _verb_connect(self, args: list[str]) -> None:
        import os

        from flame_lab.federation import connect

        parser = _parser("connect")
        parser.add_argument("target", nargs="?", default=None)
        parser.add_argument("--user", default=None)
        parser.add_argument("--token-env", default=None, metavar="VAR")
        parser.add_argument("--project", default=None)
        ns = parser.parse_args(args)
        token = None
        if ns.token_env:
            token = os.environ.get(ns.token_env)
            if not token:
                raise UsageError(f"the environment variable {ns.token_env} holds no token")
        self.session.federation = connect(ns.target, token=token, user=ns.user, project=ns.project)
        fed = self.session.federation
        nodes = fed.nodes()
        print(f"Connected to federation '{fed.name}' at {fed.hub_url}: {len(nodes)} node(s).")

    def _verb_nodes(self, args: list[str]) -> None:
        _parser("nodes").parse_args(args)
        fed = self.session.connected()
        rows = [(n.name, n.type, "online" if n.online else "offline") for n in fed.nodes()]
        print(f"Nodes of federation '{fed.name}':")
        print(_table(("node", "type", "state"), rows))

    def _verb_data(self, args: list[str]) -> None:
        from IPython.display import display

        parser = _parser("data")
        parser.add_argument("node", nargs="?", default=None, metavar="NODE")
        ns = parser.parse_args(args)
        display(self.session.connected().datasets(ns.node))

    def _verb_test(self, args: list[str]) -> Any:
        from flame_lab import localtest
        from flame_lab.errors import StarError

        parser = _parser("test")
        parser.add_argument("--nodes", type=int, default=None, metavar="N")
        parser.add_argument("--image", default=None, metavar="MASTER_IMAGE")
        ns = parser.parse_args(args)
        images = self.session.draft.check(image=ns.image)  # what the image lacks fails here
        report = localtest.run_local_test(self.session.draft, ns.nodes)
        print("Local test on mock nodes (synthetic data, each node's profile and rules):")
        print(report.to_text())
        print("Master image: " + images.summary().replace("\n", "\n  "))
        if report.lint:
            print(
                f"Privacy lint: {len(report.lint)} release(s) above would be refused by a "
                "strict node (rule and value path given); a flame node lets them leave."
            )
        self.shell.user_ns["_flame_test"] = report
        if not report.ok:
            raise StarError(
                f"the local test failed: {report.failure}",
                hint="Read the node reports above; fix the %%flame cells and test again.",
            )

    def _verb_submit(self, args: list[str]) -> None:
        from flame_lab.security.keys import PublicIdentity, read_public

        parser = _parser("submit")
        parser.add_argument("--nodes", default=None)
        parser.add_argument("--name", default=None)
        parser.add_argument("--recipient", action="append", default=[], metavar="KEYFILE")
        parser.add_argument("--image", default=None, metavar="MASTER_IMAGE")
        parser.add_argument("--sealed", action="store_true")
        parser.add_argument("--wait", action="store_true")
        ns = parser.parse_args(args)
        recipients = []
        for path in ns.recipient:
            public = read_public(Path(path).expanduser())
            if not isinstance(public, PublicIdentity):
                raise UsageError(f"{path} is a node key, not a researcher's public identity")
            recipients.append(public)
        fed = self.session.connected()
        nodes = ns.nodes.split(",") if ns.nodes else None
        analysis = fed.submit(
            self.session.draft,
            nodes=nodes,
            name=ns.name,
            recipients=recipients,
            master_image=ns.image,
            sealed=ns.sealed,
        )
        self.shell.user_ns["_flame"] = analysis
        self._provenance_submission(analysis)
        self._show(analysis, wait=ns.wait)

    def _verb_status(self, args: list[str]) -> None:
        from flame_lab.kernel import widgets

        parser = _parser("status")
        parser.add_argument("analysis_id", nargs="?", default=None, metavar="ID")
        ns = parser.parse_args(args)
        fed = self.session.connected()
        if ns.analysis_id:
            view = widgets.text_view(fed.attach(ns.analysis_id), fed.name)
            from flame_lab.rendering import render_text

            print(render_text(view))
            return
        rows = []
        for analysis in fed.analyses():
            try:
                state = analysis.status(advance=False).overall
            except FlameLabError as error:
                state = f"? ({error.message})"
            rows.append((analysis.id, analysis.name, analysis.record.submitted_at, state))
        if not rows:
            print(f"No analyses submitted to '{fed.name}' from this account yet.")
            return
        print(_table(("id", "name", "submitted", "status"), rows))

    def _verb_watch(self, args: list[str]) -> None:
        parser = _parser("watch")
        _analysis_id(parser)
        parser.add_argument("--wait", action="store_true")
        ns = parser.parse_args(args)
        analysis = self.session.connected().attach(ns.analysis_id)
        self._show(analysis, wait=ns.wait)

    def _verb_logs(self, args: list[str]) -> None:
        from flame_lab.rendering import clock_time

        parser = _parser("logs")
        _analysis_id(parser)
        parser.add_argument("--node", default=None)
        parser.add_argument("--level", default=None)
        ns = parser.parse_args(args)
        analysis = self.session.connected().attach(ns.analysis_id)
        lines = analysis.logs(node=ns.node, level=ns.level, unlock=True)
        if not lines:
            print(f"No log lines for analysis {analysis.id} yet.")
        for ln in lines:
            print(
                f"{clock_time(ln.time)} [{shown(ln.node_name, multiline=False)}] "
                f"{shown(ln.level, multiline=False)}: {shown(ln.message)}"
            )

    def _verb_result(self, args: list[str]) -> Any:
        from flame_lab.kernel.widgets import result_variable

        parser = _parser("result")
        _analysis_id(parser)
        parser.add_argument("--frame", action="store_true")
        parser.add_argument("--trust", action="append", default=[], metavar="CLASS")
        ns = parser.parse_args(args)
        analysis = self.session.connected().attach(ns.analysis_id)
        value = analysis.result(trusted=ns.trust)
        if ns.frame:
            from flame_lab.frames import as_frame

            value = as_frame(value)
        name = result_variable(analysis.id)
        self.shell.user_ns[name] = value
        for monitor in self.session.monitors:  # their Decrypt buttons give way to a note
            if monitor.analysis.id == analysis.id:
                monitor.show_opened(name)
        self._provenance_result(analysis, name)
        return value

    def _verb_cancel(self, args: list[str]) -> None:
        parser = _parser("cancel")
        _analysis_id(parser)
        ns = parser.parse_args(args)
        analysis = self.session.connected().attach(ns.analysis_id)
        analysis.cancel()
        print(f"Cancelled analysis {analysis.id}.")

    def _verb_keys(self, args: list[str]) -> None:
        from flame_lab.security.keyid import display
        from flame_lab.security.keys import (
            Identity,
            read_public,
            save_identity,
        )

        parser = _parser("keys")
        parser.add_argument("action", nargs="?", choices=("init",), default=None)
        parser.add_argument("--if-missing", action="store_true")
        ns = parser.parse_args(args)
        path = config.identity_file()
        if ns.action == "init" and ns.if_missing and path.exists():
            ns.action = None  # keep the identity there is, and show it
        if ns.action == "init":
            if path.exists() or path.is_symlink():
                raise KeyFileExists(f"a key file already exists at {path}; it was left untouched")
            from flame_lab.newpassphrase import new_passphrase

            passphrase = new_passphrase()
            identity = Identity.generate()
            save_identity(path, identity, passphrase)
            print(f"Created identity {display(identity.key_id)}\nKey file: {path}")
            return
        if not path.exists():
            print(
                f"No identity yet (expected at {path}).\n"
                "Create one with `%flame keys init` (or `flame-lab keys init` in a terminal)."
            )
            return
        public = read_public(path)
        print(f"Key id:   {display(public.key_id)}\nKey file: {path}")

    def _verb_approve(self, args: list[str]) -> None:
        self._decide("approve", args, True)

    def _verb_reject(self, args: list[str]) -> None:
        self._decide("reject", args, False)

    def _decide(self, verb: str, args: list[str], approve: bool) -> None:
        parser = _parser(verb)
        _analysis_id(parser)
        parser.add_argument("--node", required=True)
        parser.add_argument("--reason", default=None)
        ns = parser.parse_args(args)
        fed = self.session.connected()
        if not fed.is_sandbox:
            raise SandboxError(
                f"`%flame {verb}` acts as a sandbox node's admin; '{fed.name}' is a real hub",
                hint="On a real hub the node's own admin decides, in the node's UI.",
            )
        try:
            from flame_lab.sandbox.admin import decide
        except ImportError:
            raise SandboxError(
                "this flame_lab has no sandbox node administration yet",
                hint="Upgrade flame_lab.",
            ) from None
        decide(ns.analysis_id, ns.node, approve, ns.reason, home=fed.sandbox_home)
        done = "approved" if approve else "rejected"
        print(f"{ns.node} {done} analysis {ns.analysis_id}.")

    # -- showing ---------------------------------------------------------------------------
    def _show(self, analysis: Any, *, wait: bool) -> None:
        from flame_lab.kernel.widgets import show_monitor

        monitor = show_monitor(
            analysis, federation=self.session.connected().name, shell=self.shell, wait=wait
        )
        if monitor is not None:
            self.session.monitors.append(monitor)
        if wait:
            status = analysis.status(advance=False)
            if status.overall != "executed":
                where = f" at {status.failure[0]}: {status.failure[1]}" if status.failure else ""
                raise AnalysisFailed(f"analysis {analysis.id} {status.overall}{where}")

    def _provenance_submission(self, analysis: Any) -> None:
        from IPython.display import display

        record = analysis.record
        data = {
            "analysisId": record.analysis_id,
            "name": record.name,
            "hubUrl": record.hub_url,
            "bundleHash": record.bundle_hash,
            "nodes": sorted(record.nodes.values()),
            "submittedAt": record.submitted_at,
            "files": list(record.files),
            "signer": record.signer,
        }
        text = (
            f"Submitted analysis {record.analysis_id} ({record.name}) to {record.hub_url}\n"
            f"bundle {record.bundle_hash[:16]}..., nodes: {', '.join(data['nodes'])}"
        )
        display({"text/plain": text}, raw=True, metadata={"flame_lab": {"submission": data}})

    def _provenance_result(self, analysis: Any, name: str) -> None:
        from IPython.display import display

        record = analysis.record
        data = {
            "analysisId": record.analysis_id,
            "hubUrl": record.hub_url,
            "bundleHash": record.bundle_hash,
            "resultHashes": list(record.result_hashes),
            "openedAt": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        hashes = ", ".join(h[:16] + "..." for h in record.result_hashes) or "-"
        text = f"Result of analysis {record.analysis_id} decrypted into `{name}` (sha256 {hashes})"
        display({"text/plain": text}, raw=True, metadata={"flame_lab": {"result": data}})


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    cells = [
        tuple(str(c) for c in header),
        *[tuple(shown(c, multiline=False) for c in r) for r in rows],
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext flame_lab`: register the magics, make flame.star importable, say one line."""
    from flame_lab.star.compat import ensure_importable

    ensure_importable()
    ipython.register_magics(FlameMagics)
    if not ipython.custom_exceptions:
        ipython.set_custom_exc((FlameLabError,), show_flame_error)
    print(f"flame_lab {__version__}: {federation_label()} - %flame help")


def unload_ipython_extension(ipython: Any) -> None:
    if ipython.custom_exceptions == (FlameLabError,):
        ipython.set_custom_exc((), None)


__all__ = [
    "HELP",
    "FlameMagics",
    "KernelSession",
    "error_text",
    "load_ipython_extension",
    "show_flame_error",
    "unload_ipython_extension",
]
