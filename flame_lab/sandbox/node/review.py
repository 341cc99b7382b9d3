"""What a node's admin reads before approving: signer, files, the diff against the last
approved version, and a static risk scan of the code, each finding with file and line.

``scan`` and ``diff_files`` are pure (no network, no node); ``Review`` is what
``flame-lab node review`` prints and what a Lab view can show from ``to_dict``.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from flame_lab.sandbox.node.ledger import Decision

NETWORK_MODULES = frozenset(
    {"socket", "ssl", "http", "urllib", "urllib3", "requests", "httpx", "aiohttp", "ftplib"}
    | {"smtplib", "telnetlib", "paramiko", "websocket", "websockets", "xmlrpc", "grpc", "boto3"}
)
PROCESS_MODULES = frozenset({"subprocess", "pty", "multiprocessing", "pexpect", "sh"})
DYNAMIC_MODULES = frozenset(
    {"importlib", "pickle", "marshal", "dill", "cloudpickle", "shelve", "ctypes", "cffi", "joblib"}
)
DYNAMIC_CALLS = frozenset({"eval", "exec", "compile", "__import__", "breakpoint"})
PROCESS_CALLS = frozenset(
    {"system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp", "kill", "killpg"}
)
WRITE_METHODS = frozenset(
    {"write_text", "write_bytes", "touch", "mkdir", "unlink", "rmdir", "rename", "replace"}
    | {"symlink_to", "hardlink_to", "chmod"}
)
WRITE_FUNCTIONS = frozenset(
    {"remove", "unlink", "rename", "replace", "makedirs", "mkdir", "rmtree", "copy", "copy2"}
    | {"copyfile", "copytree", "move", "symlink", "link", "chmod", "chown", "truncate"}
)
LOG_METHODS = frozenset({"debug", "info", "warning", "warn", "error", "critical", "exception"})
DUMP_METHODS = frozenset({"to_csv", "to_string", "to_json", "to_html", "to_markdown", "tolist"})

CATEGORIES = {
    "network": "network use",
    "process": "subprocess or process control",
    "file-write": "file write outside the work folder",
    "dynamic-code": "dynamic code (eval, exec, importlib, pickle, ...)",
    "prints-data": "printing or logging of data objects",
    "string-building": "long string building from rows",
    "syntax": "code that does not parse",
}


@dataclass(frozen=True)
class Finding:
    """One place in the code the admin should read."""

    path: str
    line: int
    category: str
    detail: str
    code: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FileChange:
    """One file against the last approved version: added, removed, changed or same."""

    path: str
    status: str
    diff: str = ""


@dataclass(frozen=True)
class Review:
    """Everything the admin decides on; nothing here is the hub's word except the name."""

    analysis_id: str
    node: str
    name: str
    signer: str
    signer_trusted: bool
    bundle_hash: str
    entrypoint: str
    files: tuple[tuple[str, int, str], ...]  # path, size, sha256
    binding: dict[str, Any] | None
    problem: str  # why the code does not verify here ("" when it does)
    decision: Decision | None
    previous: Decision | None
    changes: tuple[FileChange, ...]
    findings: tuple[Finding, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["files"] = [{"path": p, "size": s, "sha256": h} for p, s, h in self.files]
        return data

    def to_text(self) -> str:
        """The review as the `flame-lab node review` command prints it."""
        out = [
            f"analysis {self.analysis_id} ({self.name}) at node {self.node}",
            f"bundle   {self.bundle_hash}",
            f"signer   {self.signer} "
            + ("(trusted by this node)" if self.signer_trusted else "(NOT trusted here)"),
            f"entry    {self.entrypoint}",
        ]
        if self.binding:
            b = self.binding
            out.append(
                f"bound to analysis {b['analysisId']}, project {b['projectId']}, "
                f"{len(b['nodeIds'])} nodes, hub {b['hub']}"
            )
        out.append(
            "verifies: yes" if not self.problem else f"verifies: NO ({self.problem}): reject it"
        )
        state = self.decision.state if self.decision else "not yet reviewed by the agent"
        out.append(f"decision at this node: {state}")
        out.append(f"files ({len(self.files)}):")
        out += [
            f"  {path}  {size} bytes  sha256 {digest[:16]}" for path, size, digest in self.files
        ]
        if self.previous is None:
            out.append("diff: no earlier approved version of this analysis name from this signer")
        else:
            earlier = self.previous.bundle_hash[:16]
            out.append(f"diff against the version approved here (bundle {earlier}):")
            for change in self.changes:
                if change.status == "same":
                    continue
                out.append(f"  {change.status}: {change.path}")
                out += [f"    {line}" for line in change.diff.splitlines()]
            if all(c.status == "same" for c in self.changes):
                out.append("  (no file changed)")
        out.append(f"risk scan: {len(self.findings)} finding(s)")
        for f in self.findings:
            out.append(f"  {f.path}:{f.line}  [{f.category}] {f.detail}")
            if f.code:
                out.append(f"      {f.code}")
        return "\n".join(out)


# -- the risk scan -------------------------------------------------------------------------
def _dotted(node: ast.AST) -> str:
    """'os.path.join' for an attribute chain, '' when it is not a plain chain of names."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _is_literal_text(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.JoinedStr):
        return all(isinstance(v, ast.Constant) for v in node.values)
    return False


def _outside_work(path: ast.AST) -> str | None:
    """Why a write target is outside the work folder, or None when it is a relative literal."""
    if isinstance(path, ast.Constant) and isinstance(path.value, str):
        text = path.value
        if text.startswith(("/", "~")) or ".." in text.split("/"):
            return f"writes to {text!r}"
        return None
    return "writes to a path computed at run time"


class _Scanner(ast.NodeVisitor):
    def __init__(self, path: str, lines: list[str]) -> None:
        self.path = path
        self.lines = lines
        self.found: list[Finding] = []
        self.loops = 0
        self.aliases: dict[str, str] = {}  # local name -> module it came from

    def add(self, node: ast.AST, category: str, detail: str) -> None:
        line = getattr(node, "lineno", 0)
        code = self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""
        self.found.append(Finding(self.path, line, category, detail, code[:160]))

    def _module(self, name: str, node: ast.AST) -> None:
        top = name.split(".")[0]
        if top in NETWORK_MODULES:
            self.add(node, "network", f"imports {name}")
        elif top in PROCESS_MODULES:
            self.add(node, "process", f"imports {name}")
        elif top in DYNAMIC_MODULES:
            self.add(node, "dynamic-code", f"imports {name}")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._module(alias.name, node)
            self.aliases[alias.asname or alias.name.split(".")[0]] = alias.name
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.level == 0:
            self._module(node.module, node)
            for alias in node.names:
                self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        self.generic_visit(node)

    def _loop(self, node: ast.AST) -> None:
        self.loops += 1
        self.generic_visit(node)
        self.loops -= 1

    visit_For = visit_While = visit_AsyncFor = _loop

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        value = node.value
        texty = isinstance(value, ast.JoinedStr) or (
            isinstance(value, ast.Constant) and isinstance(value.value, str)
        )
        texty = texty or (
            isinstance(value, ast.Call) and _dotted(value.func) in ("str", "repr", "format")
        )
        if isinstance(node.op, ast.Add) and self.loops and texty:
            self.add(node, "string-building", "appends text inside a loop")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = _dotted(node.func)
        last = name.rsplit(".", 1)[-1] if name else getattr(node.func, "attr", "")
        origin = self.aliases.get(name.split(".")[0], "") if name else ""
        full = origin + name[len(name.split(".")[0]) :] if origin else name
        if name in DYNAMIC_CALLS:
            self.add(node, "dynamic-code", f"calls {name}()")
        elif full.startswith("os.") and (
            last in PROCESS_CALLS or last.startswith(("exec", "spawn"))
        ):
            self.add(node, "process", f"calls {full}()")
        elif name == "open" or full in ("io.open", "os.open"):
            self._open(node)
        elif full.startswith(("os.", "shutil.")) and last in WRITE_FUNCTIONS:
            self.add(node, "file-write", f"calls {full}()")
        elif isinstance(node.func, ast.Attribute) and last in WRITE_METHODS and not origin:
            self.add(node, "file-write", f"calls .{last}() (a file system change)")
        elif name == "print" or (
            isinstance(node.func, ast.Attribute)
            and (last in LOG_METHODS or last == "flame_log")
            and not isinstance(node.func.value, ast.Constant)
        ):
            if any(not _is_literal_text(arg) for arg in node.args):
                self.add(node, "prints-data", f"{name or last}() of a value computed from data")
        elif isinstance(node.func, ast.Attribute) and last == "join" and node.args:
            if isinstance(node.args[0], (ast.GeneratorExp, ast.ListComp)):
                self.add(node, "string-building", "joins text over a loop")
        elif isinstance(node.func, ast.Attribute) and last in DUMP_METHODS:
            self.add(node, "string-building", f"dumps a data object whole (.{last}())")
        self.generic_visit(node)

    def _open(self, node: ast.Call) -> None:
        mode: ast.AST | None = node.args[1] if len(node.args) > 1 else None
        for kw in node.keywords:
            if kw.arg == "mode":
                mode = kw.value
        if mode is None:
            return  # reading
        if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
            if not set(mode.value) & set("wax+"):
                return
        target = node.args[0] if node.args else None
        why = _outside_work(target) if target is not None else "writes a file"
        if why is not None:
            self.add(node, "file-write", f"open() for writing: {why}")


def scan(files: Mapping[str, bytes]) -> list[Finding]:
    """Static risk findings in every Python file, by file and line (never runs the code)."""
    found: list[Finding] = []
    for path in sorted(files):
        if not path.endswith(".py"):
            continue
        text = files[path].decode("utf-8", errors="replace")
        try:
            tree = ast.parse(text, filename=path)
        except (SyntaxError, ValueError) as exc:
            line = getattr(exc, "lineno", 0) or 0
            found.append(Finding(path, line, "syntax", f"does not parse: {exc}"))
            continue
        scanner = _Scanner(path, text.splitlines())
        scanner.visit(tree)
        found += sorted(scanner.found, key=lambda f: (f.line, f.category))
    return found


def diff_files(old: Mapping[str, bytes], new: Mapping[str, bytes]) -> list[FileChange]:
    """Every path of either version, with a unified diff for changed text files."""
    changes = []
    for path in sorted(set(old) | set(new)):
        if path not in old:
            changes.append(FileChange(path, "added", _text_diff(b"", new[path], path)))
        elif path not in new:
            changes.append(FileChange(path, "removed"))
        elif old[path] == new[path]:
            changes.append(FileChange(path, "same"))
        else:
            changes.append(FileChange(path, "changed", _text_diff(old[path], new[path], path)))
    return changes


def _text_diff(before: bytes, after: bytes, path: str) -> str:
    try:
        a, b = before.decode("utf-8"), after.decode("utf-8")
    except UnicodeDecodeError:
        digest = hashlib.sha256(after).hexdigest()[:16]
        return f"(binary; {len(before)} -> {len(after)} bytes, sha256 now {digest})"
    lines = difflib.unified_diff(
        a.splitlines(), b.splitlines(), f"approved/{path}", f"submitted/{path}", lineterm=""
    )
    return "\n".join(lines)
