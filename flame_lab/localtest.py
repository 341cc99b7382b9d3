"""Try a draft on this machine, on mock nodes shaped like the sandbox's, before submitting it.

Each mock node is a sandbox ``NodeService`` (the very code a sandbox node answers an analysis
with: its data, its release channel under the node's profile and rules) over an in-memory
switchboard; the draft's entrypoint runs once per node in a thread, as ``__main__``, with
``flame.star`` bound to that node. A ``strict`` node refuses as it would in the sandbox; for a
``flame`` node the strict checks run as a lint and the report lists what a strict node would
refuse (rule and value path). Nothing leaves the machine; no hub, no keys, no crypto.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.abc
import importlib.util
import io
import json
import sys
import threading
import traceback
import types
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import CodeType, ModuleType
from typing import Any

from flame_lab import config
from flame_lab.draft import Draft, Source
from flame_lab.errors import DraftError, FlameLabError, PolicyRefused, StarError
from flame_lab.privacy import NodePolicy, load_policy
from flame_lab.star.runtime import FinalSubmission, Message, use_runtime

DEFAULT_TIMEOUT = 120.0
FINISHED_CATEGORY = "analysis_finished"
AGGREGATOR = "aggregator"


# -- compiling draft files with the author's own line numbers --------------------------------
def code_filename(source: Source) -> str:
    """The file name tracebacks show for a draft file: where the author wrote it."""
    origin = source.origin or source.path
    return f"<flame {origin}>" if origin != source.path else f"<flame {source.path}>"


def compile_source(source: Source) -> CodeType:
    """Compile one draft file so that line numbers count as in its cell (magic line included)."""
    text = "\n" * source.line_offset + source.text
    try:
        return compile(text, code_filename(source), "exec")
    except SyntaxError as exc:
        line = (exc.text or "").rstrip()
        raise DraftError(
            f"syntax error in {source.origin or source.path}, line {exc.lineno}: {exc.msg}"
            + (f"\n    {line}" if line else ""),
            hint="Fix the line and run the cell again.",
        ) from None


def user_traceback(error: BaseException, draft: Draft) -> str:
    """The error with only the frames of the draft's own files (never flame_lab's)."""
    names = {code_filename(s) for s in draft.sources.values()}
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename in names]
    lines = [f"  {f.filename[7:-1]}, line {f.lineno}, in {f.name}" for f in frames]
    message = error.message if isinstance(error, FlameLabError) else str(error)
    lines.append(f"{type(error).__name__}: {message}")
    return "\n".join(lines)


# -- draft modules importable by name ---------------------------------------------------------
class DraftFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves a draft's extra files as modules (``helpers.py`` -> ``import helpers``).

    On a node the code folder is first on sys.path; here the draft's files come first too.
    """

    def __init__(self, draft: Draft) -> None:
        self.draft = draft

    def _lookup(self, fullname: str) -> tuple[Source | None, bool]:
        parts = fullname.split(".")
        base = "/".join(parts)
        sources = self.draft.sources
        if f"{base}.py" in sources and f"{base}.py" != self.draft.entrypoint:
            return sources[f"{base}.py"], False
        if f"{base}/__init__.py" in sources:
            return sources[f"{base}/__init__.py"], True
        if any(path.startswith(base + "/") for path in sources):
            return None, True  # a folder of draft files: a namespace-like package
        raise KeyError(fullname)

    def module_names(self) -> set[str]:
        names = set()
        for path in self.draft.sources:
            if path == self.draft.entrypoint:
                continue
            parts = list(PurePosixPath(path).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            for i in range(1, len(parts) + 1):
                names.add(".".join(parts[:i]))
        return names

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        try:
            source, is_package = self._lookup(fullname)
        except KeyError:
            return None
        spec = importlib.util.spec_from_loader(fullname, self, is_package=is_package)
        if spec is not None:
            spec.loader_state = source
        return spec

    def create_module(self, spec: Any) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        source = module.__spec__.loader_state if module.__spec__ else None
        if module.__spec__ is not None and module.__spec__.submodule_search_locations is not None:
            module.__path__ = []
        if source is not None:
            module.__file__ = code_filename(source)
            exec(compile_source(source), module.__dict__)  # noqa: S102 - the researcher's code

    def forget(self, names: set[str] | None = None) -> None:
        """Drop imported draft modules so the next import sees the newest cell."""
        for name in names if names is not None else self.module_names():
            sys.modules.pop(name, None)

    def install(self) -> None:
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def remove(self) -> None:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)


@contextlib.contextmanager
def draft_modules(draft: Draft) -> Iterator[DraftFinder]:
    """The draft's extra files importable for the duration of the block, fresh each time."""
    finder = DraftFinder(draft)
    names = finder.module_names()
    saved = {n: sys.modules.pop(n) for n in names if n in sys.modules}
    finder.install()
    try:
        yield finder
    finally:
        finder.remove()
        finder.forget(names)
        sys.modules.update(saved)


# -- defining a cell's classes without running the analysis -----------------------------------
class ModelReached(BaseException):
    """Raised where StarModel first asks for its node: the cell's definitions are done."""


class _DefinitionRuntime:
    """A runtime that answers nothing: StarModel stops at its first question."""

    def __getattr__(self, name: str) -> Any:
        def stop(*args: Any, **kwargs: Any) -> Any:
            raise ModelReached

        return stop


def define(source: Source, namespace: dict[str, Any]) -> bool:
    """Run a draft file in ``namespace`` up to its StarModel; True if StarModel was reached.

    The analyzer and aggregator classes become usable in the kernel; the analysis itself runs
    only under ``run_local_test`` or on nodes.
    """
    code = compile_source(source)
    with use_runtime(_DefinitionRuntime()):  # type: ignore[arg-type]
        try:
            exec(code, namespace)  # noqa: S102 - the researcher's code
        except ModelReached:
            return True
    return False


# -- mock nodes ------------------------------------------------------------------------------
@dataclass(frozen=True)
class MockNode:
    """One simulated node: its name, hub id, role, data (data nodes) and policy (profile, rules)."""

    name: str
    role: str  # "default" | "aggregator"
    policy: NodePolicy
    data: Any = None  # NodeData for data nodes
    node_id: str = ""  # what the analysis's get_id() answers, as a real node's hub id

    @property
    def record_count(self) -> int:
        return self.data.record_count if self.data is not None else 0


@functools.lru_cache(maxsize=16)
def _site_data(name: str) -> Any:
    from flame_lab.sandbox.node.datasets import NodeData
    from flame_lab.sandbox.node.synthetic import generate

    return NodeData.from_site(generate(name))


def _sandbox_nodes(home: Path) -> list[tuple[str, str, str]]:
    """(name, type, hub id) of the sandbox's nodes; the id is empty where the file has none."""
    try:
        info = json.loads((home / "sandbox.json").read_text(encoding="utf-8"))
        return [(str(n["name"]), str(n["type"]), str(n.get("id", ""))) for n in info["nodes"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []


def mock_node_id(name: str) -> str:
    """A stable UUID for a mock node without a sandbox id: real nodes answer hub ids, not names."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"flame-lab:local-test:{name}"))


def _node_policy(home: Path | None, name: str) -> NodePolicy:
    if home is not None:
        for file_name in ("policy.toml", "policy.json"):
            path = home / "nodes" / name / file_name
            if path.is_file():
                return load_policy(path)
    return NodePolicy()


def mock_nodes(count: int | None = None, home: Path | str | None = None) -> list[MockNode]:
    """Data nodes named (and ruled) like the sandbox's, plus one aggregator, with synthetic data.

    ``count`` data nodes if given, else as many as the sandbox has (reading its files only).
    """
    from flame_lab.sandbox.hub.provision import node_names

    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise StarError(
            f"a local test needs at least one data node, not {count!r}",
            hint="Use `--nodes 2` or more.",
        )
    folder = Path(home) if home is not None else config.sandbox_dir()
    sandbox = _sandbox_nodes(folder)
    ids = {name: node_id for name, _, node_id in sandbox if node_id}
    known = [name for name, kind, _ in sandbox if kind == "default"]
    if count is None:
        count = len(known) or 2
    names = known[:count]
    for seed in node_names(count + 1 + len(known)):
        if len(names) >= count:
            break
        if seed.type == "default" and seed.name not in names:
            names.append(seed.name)
    nodes = [
        MockNode(
            n, "default", _node_policy(folder, n), _site_data(n), ids.get(n) or mock_node_id(n)
        )
        for n in names
    ]
    aggregator_id = ids.get(AGGREGATOR) or mock_node_id(AGGREGATOR)
    nodes.append(
        MockNode(AGGREGATOR, "aggregator", _node_policy(folder, AGGREGATOR), None, aggregator_id)
    )
    return nodes


# -- the run ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LogRecord:
    """One log line of one mock node, at the hub's level names."""

    node: str
    level: str
    message: str


@dataclass
class NodeOutcome:
    """What one mock node let leave: each released message or result, and any refusal."""

    name: str
    role: str
    records: int
    profile: str = "flame"
    node_id: str = ""  # the id the analysis saw (get_id, senders, participants)
    released: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    refused: str | None = None
    error: str | None = None
    lint: list[str] = field(default_factory=list)  # what a strict node would refuse
    epsilon: float = 0.0  # DP epsilon this node would charge


@dataclass
class LocalTestReport:
    """Everything the local test learned; ``result`` is what the researcher would receive."""

    nodes: list[NodeOutcome]
    logs: list[LogRecord]
    result: Any = None
    has_result: bool = False
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.has_result and self.failure is None

    @property
    def lint(self) -> list[str]:
        """Every finding of the privacy lint: what strict nodes would refuse."""
        return [line for node in self.nodes for line in node.lint]

    def to_text(self) -> str:
        """A plain-text summary: per node what it would release, then the result."""
        lines = []
        for node in self.nodes:
            head = f"{node.name} ({node.node_id})" if node.node_id else node.name
            head += (
                ": aggregator"
                if node.role == "aggregator"
                else f": data node, {node.records} records"
            )
            lines.append(head + f", profile {node.profile}")
            if node.refused:
                lines.append(f"  REFUSED: {node.refused}")
            if node.error:
                lines.append("  FAILED: " + node.error.replace("\n", "\n  "))
            for value in node.released:
                lines.append(f"  releases: {shown_value(value)}")
            for note in node.notes:
                lines.append(f"  note: {note}")
            if node.epsilon:
                lines.append(f"  charges epsilon {node.epsilon:g} to your budget here")
            shown = [] if node.profile == "strict" else node.lint  # strict: REFUSED above
            for finding in shown[:20]:
                lines.append(f"  a strict node would refuse {finding}")
            if len(shown) > 20:
                lines.append(f"  ... and {len(shown) - 20} more lint findings")
        if self.failure:
            lines.append(f"Local test failed: {self.failure}")
        if self.has_result:
            lines.append(f"Result: {shown_value(self.result, items=100)}")
        return "\n".join(lines)


def shown_value(value: Any, items: int = 20, chars: int = 200, depth: int = 4) -> str:
    """``value`` as its repr, whole where small; a long list, dict or string shows its first
    ``items`` entries (``chars`` characters) and says how much it leaves out, never a bare cut."""

    def inner(v: Any) -> str:
        return shown_value(v, items, chars, depth - 1)

    if type(value) in (list, tuple, dict) and value:  # subclasses keep their own repr
        opening, closing = (
            "{}" if isinstance(value, dict) else "()" if isinstance(value, tuple) else "[]"
        )
        if depth <= 0:
            return f"{opening}({len(value)} items){closing}"
        if isinstance(value, dict):
            parts = [f"{inner(k)}: {inner(v)}" for k, v in list(value.items())[:items]]
        else:
            parts = [inner(v) for v in list(value)[:items]]
        if len(value) > items:
            parts.append(f"(+{len(value) - items} more items)")
        trailing = "," if isinstance(value, tuple) and len(value) == 1 else ""
        return opening + ", ".join(parts) + trailing + closing
    if isinstance(value, (str, bytes)) and len(value) > chars:
        return f"{value[:chars]!r} (+{len(value) - chars} more characters)"
    text = repr(value)
    limit = chars * 10  # e.g. a frame or an array: its own repr, bounded
    return text if len(text) <= limit else f"{text[:limit]} (+{len(text) - limit} more characters)"


class _Transport:
    """A switchboard end that also records what its node sent (after the disclosure check)."""

    def __init__(self, inner: Any, outcome: NodeOutcome) -> None:
        self.inner = inner
        self.outcome = outcome

    def send(self, receiver_ids: list[str], category: str, body: bytes) -> list[str]:
        from flame_lab.sandbox.node.service import decode_body

        if category != FINISHED_CATEGORY:
            self.outcome.released.append(decode_body(body))
        return self.inner.send(receiver_ids, category, body)

    def receive(self, timeout: float | None) -> Message | None:
        return self.inner.receive(timeout)


def _lookup(namespace: dict[str, Any], qualname: str) -> Any:
    found: Any = namespace
    for part in qualname.split("."):
        found = found[part] if isinstance(found, dict) else getattr(found, part)
    return found


def _main_pickle(value: Any, namespace: dict[str, Any]) -> bytes:
    """Pickle as a node does, where the entrypoint is ``__main__``: here every mock node runs
    the entrypoint in its own namespace, so classes and functions of ``__main__`` travel by
    name and each receiving node finds them in its own namespace."""
    import pickle

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            if not isinstance(obj, type | types.FunctionType) or obj.__module__ != "__main__":
                return None
            try:  # only what a node could find by name, as pickle itself checks
                if _lookup(namespace, obj.__qualname__) is obj:
                    return ("__main__", obj.__qualname__)
            except (KeyError, AttributeError):
                pass
            return None

    buffer = io.BytesIO()
    Pickler(buffer).dump(value)
    return buffer.getvalue()


def _main_unpickle(data: bytes, namespace: dict[str, Any]) -> Any:
    """The value of :func:`_main_pickle`'s bytes, ``__main__`` names found in ``namespace``."""
    import pickle

    class Unpickler(pickle.Unpickler):
        def persistent_load(self, pid: Any) -> Any:
            return _lookup(namespace, str(pid[1]))

    return Unpickler(io.BytesIO(data)).load()  # made by this kernel's own draft


class _OutputRouter:
    """While a local test runs, what a mock node's thread prints goes through that node's
    service as on a node (capped, checked under strict, linted) and is still shown here."""

    def __init__(self) -> None:
        self.routes: dict[int, Any] = {}
        self._pending: dict[tuple[int, str], str] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        saved = sys.stdout, sys.stderr
        sys.stdout = _RoutedStream(self, "stdout", saved[0])  # type: ignore[assignment]
        sys.stderr = _RoutedStream(self, "stderr", saved[1])  # type: ignore[assignment]
        try:
            yield
        finally:
            sys.stdout, sys.stderr = saved

    def write(self, stream: str, text: str) -> None:
        ident = threading.get_ident()
        service = self.routes.get(ident)
        if service is None:
            return
        with self._lock:
            pending = self._pending.get((ident, stream), "") + text
            *lines, rest = pending.split("\n")
            self._pending[(ident, stream)] = rest
        for line in lines:
            service.output(stream, line)

    def flush_thread(self) -> None:
        ident = threading.get_ident()
        service = self.routes.get(ident)
        for stream in ("stdout", "stderr"):
            with self._lock:
                rest = self._pending.pop((ident, stream), "")
            if rest and service is not None:
                service.output(stream, rest)


class _RoutedStream(io.TextIOBase):
    def __init__(self, router: _OutputRouter, name: str, original: Any) -> None:
        self.router = router
        self.name = name
        self.original = original

    def write(self, text: str) -> int:
        self.router.write(self.name, text)
        return self.original.write(text)

    def flush(self) -> None:
        self.original.flush()


class ServiceRuntime:
    """A flame.star Runtime answered in-process by a sandbox NodeService."""

    adds_dp_noise = True  # as on a node: the service's release channel adds local-DP noise

    def __init__(self, service: Any, namespace: dict[str, Any] | None = None) -> None:
        self.service = service
        self.namespace = namespace if namespace is not None else {}

    def get_id(self) -> str:
        return self.service.facts.node_id

    def _dumps(self, value: Any) -> bytes:
        return _main_pickle(value, self.namespace)

    def _loads(self, data: bytes) -> Any:
        return _main_unpickle(data, self.namespace)

    def get_role(self) -> Any:
        return self.service.facts.role

    def get_participant_ids(self) -> list[str]:
        return list(self.service.facts.participant_ids)

    def get_aggregator_id(self) -> str:
        return self.service.facts.aggregator_id

    def get_analysis_id(self) -> str:
        return self.service.facts.analysis_id

    def get_project_id(self) -> str:
        return self.service.facts.project_id

    def get_data_sources(self) -> list[str]:
        return self.service.data_sources()

    def get_fhir_data(self, queries: list[str]) -> Any:
        return self.service.get_fhir_data(list(queries or []))

    def get_s3_data(self, keys: list[str]) -> Any:
        return self.service.get_s3_data(list(keys or []))

    def flame_log(self, message: str, log_type: str) -> None:
        self.service.log(message, log_type)

    def set_progress(self, progress: int) -> None:
        self.service.set_progress(progress)

    def get_progress(self) -> int:
        return self.service.get_progress()

    def declare_local_dp(self, epsilon: float, sensitivity: float) -> None:
        self.service.declare_local_dp(epsilon, sensitivity)

    def _as_a_node_reads_it(self, method: str, **params: Any) -> None:
        """Refuse a call a node would refuse from its length (limits.max_frame_bytes): the
        frame a node reads is this call as JSON, bytes in base64 (sandbox.node.ipc)."""
        import json

        from flame_lab.sandbox.node.ipc import FrameRefused, to_json

        limit = self.service.release.policy.limits.max_frame_bytes
        call = {"id": 1, "method": method, "params": params}
        size = len(json.dumps(to_json(call), allow_nan=True, separators=(",", ":")).encode())
        if size > limit:
            raise FrameRefused(size, limit)

    def send_message(self, receivers: Any, category: str, body: Any) -> tuple[list[str], list]:
        from flame_lab.sandbox.node.runtime_client import to_channel

        body = to_channel(body, pickle_unknown=True, dumps=self._dumps)
        receivers = list(receivers)
        self._as_a_node_reads_it("send_message", receivers=receivers, category=category, body=body)
        acked, missed = self.service.send_message(receivers, category, body)
        return acked, missed

    def receive_message(self, timeout: float | None) -> Message | None:
        from flame_lab.sandbox.node.runtime_client import from_channel

        got = self.service.receive_message(timeout)
        if got is None:
            return None
        # the analysis's side, as on a node
        body = from_channel(got["body"], unpickle=True, loads=self._loads)
        return Message(got["sender"], got["category"], body, got["id"])

    def submit_final_result(self, submission: FinalSubmission) -> dict[str, str]:
        from flame_lab.sandbox.node.runtime_client import submission_to_channel

        submission_value = submission_to_channel(submission)
        self._as_a_node_reads_it("submit_final_result", submission=submission_value)
        return self.service.submit_final_result(submission_value)

    def random_generator(self) -> Any:
        return None


def _opened(value: Any) -> Any:
    """A pickled release (made moments ago by this kernel's own draft, never from the network)
    as its value, so that the local test shows what the researcher will receive."""
    from flame_lab.security.payload import OpaquePickle

    if isinstance(value, OpaquePickle):
        import pickle

        return pickle.loads(value.data)  # noqa: S301 - pickled in this process by the draft
    if isinstance(value, list):
        return [_opened(v) for v in value]
    return value


def run_local_test(
    draft: Draft,
    nodes: int | None = None,
    *,
    home: Path | str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> LocalTestReport:
    """Run the draft on mock nodes; report what each node would release and the result."""
    from flame_lab.sandbox.node.service import NodeFacts, NodeService, Switchboard
    from flame_lab.star.compat import ensure_importable

    draft.check()
    ensure_importable()
    entry = compile_source(draft.sources[draft.entrypoint])
    mocks = mock_nodes(nodes, home)
    ids = [m.node_id for m in mocks]
    aggregator_id = next(m.node_id for m in mocks if m.role == "aggregator")
    switchboard = Switchboard()
    logs: list[LogRecord] = []
    outcomes = {
        m.name: NodeOutcome(m.name, m.role, m.record_count, m.policy.profile, node_id=m.node_id)
        for m in mocks
    }
    final: list[FinalSubmission] = []
    log_lock = threading.Lock()

    def make_service(mock: MockNode) -> Any:
        def on_log(level: str, message: str) -> None:
            with log_lock:
                logs.append(LogRecord(mock.name, level, message))

        def on_final(submission: FinalSubmission) -> dict[str, str]:
            final.append(submission)  # as the node's release channel let it leave (DP noised)
            outcomes[mock.name].released.extend(r.value for r in submission.results)
            return {"status": "success"}

        def charge(epsilon: float) -> None:
            outcomes[mock.name].epsilon += epsilon

        facts = NodeFacts(mock.node_id, mock.role, tuple(ids), aggregator_id, "local-test", "local")
        return NodeService(
            facts,
            mock.data,
            mock.policy,
            _Transport(switchboard.transport(mock.node_id), outcomes[mock.name]),
            on_log=on_log,
            on_final=on_final if mock.role == "aggregator" else None,
            charge=charge,
            lint=True,
            node_name=mock.name,  # refusals and lint name the node as %flame status does
        )

    services = {m.name: make_service(m) for m in mocks}
    errors: dict[str, BaseException] = {}
    done = threading.Event()
    remaining = [len(mocks)]
    lock = threading.Lock()

    router = _OutputRouter()

    def node_main(name: str) -> None:
        router.routes[threading.get_ident()] = services[name]
        try:
            namespace: dict[str, Any] = {"__name__": "__main__", "__file__": draft.entrypoint}
            with use_runtime(ServiceRuntime(services[name], namespace)):  # type: ignore[arg-type]
                exec(entry, namespace)  # noqa: S102 - the researcher's code
        except BaseException as error:
            with lock:
                errors[name] = error
            for service in services.values():
                service.close()  # a failed node ends everyone's waits
        finally:
            router.flush_thread()
            with lock:
                remaining[0] -= 1
                if remaining[0] == 0:
                    done.set()

    with draft_modules(draft), router.installed():
        threads = [
            threading.Thread(target=node_main, args=(n,), name=f"flame-localtest-{n}", daemon=True)
            for n in services
        ]
        for thread in threads:
            thread.start()
        finished = done.wait(timeout)
        for service in services.values():
            service.close()
        for thread in threads:
            thread.join(2.0)

    report = LocalTestReport(list(outcomes.values()), logs)
    for name, service in services.items():
        outcomes[name].lint = [
            f"{f.what} at {f.violation.describe()}" for f in service.release.findings
        ]
    for name, error in errors.items():
        refusal = services[name].refusal
        if refusal is not None or isinstance(error, PolicyRefused):
            outcomes[name].refused = (refusal or error).message  # type: ignore[union-attr]
        else:
            outcomes[name].error = user_traceback(error, draft)
    refused_only = [n for n, svc in services.items() if svc.refusal is not None and n not in errors]
    for (
        name
    ) in refused_only:  # e.g. a printed line: the node stops the run, the code raised nothing
        outcomes[name].refused = services[name].refusal.message  # type: ignore[union-attr]
    if final and not refused_only:
        report.result = _opened(final[0].values)
        report.has_result = True
    if not finished:
        report.failure = (
            f"the analysis did not finish within {timeout:.0f} s "
            "(does a node wait for a message no node sends?)"
        )
    elif errors:
        first = next(iter(errors))
        report.failure = f"node {first} " + (
            "refused to release" if outcomes[first].refused else "failed"
        )
    elif refused_only:
        report.failure = f"node {refused_only[0]} refused to release"
    elif not final:
        report.failure = "the analysis ended without a final result"
    return report
