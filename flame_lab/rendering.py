"""Drawing an analysis, apart from fetching it: a pure function from its state to a view model.

The monitor widget, the plain-text fallback and the HTML snapshot all draw the same
:class:`MonitorView`, so what a terminal, nbconvert and JupyterLab show cannot drift apart.
Every piece of text that came from the hub or a node is escaped before it becomes HTML.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flame_lab.textsafe import shown

LEVEL_COLOURS = {
    "emerg": "#b71c1c",
    "alert": "#b71c1c",
    "crit": "#b71c1c",
    "error": "#c62828",
    "warn": "#e65100",
    "notice": "#1565c0",
    "info": "inherit",
    "debug": "#757575",
}
OVERALL_COLOURS = {
    "pending": "#757575",
    "approved": "#1565c0",
    "running": "#1565c0",
    "executed": "#2e7d32",
    "failed": "#c62828",
    "rejected": "#c62828",
    "cancelled": "#757575",
}
MAX_LOG_ROWS = 200
PREVIEW_CHARS = 5000  # of a result's repr in the monitor's preview
#: Node execution states in which a node works: without progress reports its bar is indeterminate.
WORKING = frozenset({"starting", "started", "running", "executing"})
FINAL_WORDS = {
    "executed": ("\u2714", "executed"),
    "failed": ("\u2716", "failed"),
    "rejected": ("\u2716", "rejected"),
    "cancelled": ("\u25a0", "cancelled"),
}
COLUMNS = (
    ("node", "14em"),
    ("approval", "7em"),
    ("execution", "7em"),
    ("progress", "10em"),
    ("in state", "7em"),
    ("last log", ""),
)


@dataclass(frozen=True)
class NodeRow:
    """One node's line in the monitor."""

    node_id: str
    name: str
    approval: str
    execution: str
    progress: int
    last_log: str
    in_state: str
    failed: bool
    reason: str | None
    working: bool = False  # executing without having reported progress: indeterminate
    waiting: str = ""  # what the analysis waits for at this node, in words ("" if nothing)

    @property
    def reason_line(self) -> str:
        """A failure in one readable line: a traceback's last line (the exception), cut."""
        if not self.reason:
            return ""
        lines = [ln.strip() for ln in str(self.reason).splitlines() if ln.strip()]
        return _cut(lines[-1] if lines else "", 160)


@dataclass(frozen=True)
class LogRow:
    time: str
    node: str
    level: str
    message: str

    @property
    def colour(self) -> str:
        return LEVEL_COLOURS.get(self.level, "inherit")


@dataclass(frozen=True)
class MonitorView:
    """Everything the monitor shows at one moment; built by :func:`build_view` only."""

    name: str
    analysis_id: str
    federation: str
    elapsed: str
    overall: str
    progress: int
    nodes: tuple[NodeRow, ...]
    logs: tuple[LogRow, ...]
    done: bool
    result_available: bool
    failure: str | None
    problem: str | None = None  # the last polling error, if the hub could not be read
    log_total: int = 0  # log lines read in all (the view keeps the last MAX_LOG_ROWS)

    @property
    def colour(self) -> str:
        return OVERALL_COLOURS.get(self.overall, "inherit")

    @property
    def final_line(self) -> str:
        """The end in one line: executed, failed where and why, rejected, cancelled."""
        if not self.done:
            return ""
        mark, word = FINAL_WORDS.get(self.overall, ("", self.overall))
        text = f"{mark} {word.capitalize()} after {self.elapsed}"
        if self.failure:
            lines = [ln.strip() for ln in self.failure.splitlines() if ln.strip()]
            text += f": {lines[-1] if lines else ''}"
        if self.result_available:
            text += f"; result ready: %flame result {self.analysis_id}"
        return _cut(text, 240)


def parse_time(value: Any) -> datetime | None:
    """A hub or record timestamp as an aware datetime (None if unreadable)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 1e11 else value  # the hub's epoch milliseconds
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def clock_time(value: Any) -> str:
    """A log time as HH:MM:SS (UTC), or the text as it came if unreadable."""
    parsed = parse_time(value)
    return parsed.strftime("%H:%M:%S") if parsed else str(value)


def duration(seconds: float) -> str:
    """12 s, 3 min 04 s, 2 h 05 min."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class StateClock:
    """Remembers since when each node has been in its current (approval, execution) state."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[tuple[Any, Any], float]] = {}

    def observe(self, status: Any, now: float) -> dict[str, float]:
        """Seconds each node has spent in its present state, as far as this clock saw."""
        spent = {}
        for node in status.nodes:
            state = (node.approval, node.execution)
            previous = self._seen.get(node.node_id)
            if previous is None or previous[0] != state:
                self._seen[node.node_id] = (state, now)
            spent[node.node_id] = now - self._seen[node.node_id][1]
        return spent


def build_view(
    status: Any,
    logs: Sequence[Any],
    *,
    federation: str,
    submitted_at: str | None,
    now: datetime,
    in_state: Mapping[str, float] | None = None,
    problem: str | None = None,
) -> MonitorView:
    """The view of one polled moment: an AnalysisStatus and the log lines read so far."""
    in_state = in_state or {}
    last_by_node: dict[str, str] = {}
    for line in logs:
        last_by_node[line.node_id] = line.message
    start = parse_time(submitted_at)
    end = now
    if status.done and logs:
        end = parse_time(logs[-1].time) or now
    elapsed = duration((end - start).total_seconds()) if start else "?"
    failed_node = status.failure[0] if status.failure else None
    rows = []
    for node in status.nodes:
        failed = node.execution == "failed" or node.approval == "rejected"
        failed = failed or (failed_node == node.name and status.overall in ("failed", "rejected"))
        own = status.failure[1] if status.failure and failed_node == node.name else None
        reason = node.comment or own
        execution = node.execution or "-"
        progress = max(0, min(100, int(node.progress or 0)))
        waiting = "" if status.done else str(getattr(node, "waiting", "") or "")
        rows.append(
            NodeRow(
                node_id=node.node_id,
                name=node.name,
                approval=node.approval or "pending",
                execution=execution,
                progress=progress,
                # what the analysis waits for at this node says more than its last log line
                last_log=waiting or last_by_node.get(node.node_id, ""),
                in_state=duration(in_state[node.node_id]) if node.node_id in in_state else "",
                failed=failed,
                reason=reason if failed else None,
                working=execution in WORKING and progress == 0 and not status.done,
                waiting=waiting,
            )
        )
    log_rows = tuple(
        LogRow(clock_time(ln.time), ln.node_name, ln.level, ln.message)
        for ln in logs[-MAX_LOG_ROWS:]
    )
    failure = f"{status.failure[0]}: {status.failure[1]}" if status.failure else None
    return MonitorView(
        name=status.name,
        analysis_id=status.analysis_id,
        federation=federation,
        elapsed=elapsed,
        overall=status.overall,
        progress=int(status.progress),
        nodes=tuple(rows),
        logs=log_rows,
        done=status.done,
        result_available=status.result_available,
        failure=failure,
        problem=problem,
        log_total=len(logs),
    )


# -- plain text ------------------------------------------------------------------------------
def _cut(text: str, width: int) -> str:
    text = shown(" ".join(str(text).split()), multiline=False)
    return text if len(text) <= width else text[: width - 1] + "~"


def progress_line(view: MonitorView) -> str:
    """One compact line per state change (``--wait`` without a widget frontend)."""
    nodes = ", ".join(
        f"{_cut(n.name, 40)} {n.approval}/{n.execution} {n.progress}%" for n in view.nodes
    )
    line = f"[{view.elapsed}] {view.analysis_id} {view.overall} {view.progress}% ({nodes})"
    if view.failure:
        line += f" - {_cut(view.failure, 200)}"
    return line


def render_text(view: MonitorView, *, log_rows: int = 10) -> str:
    """The monitor as plain text, for terminals, nbconvert and nbval."""
    lines = [
        f"{_cut(view.name, 80)} ({view.analysis_id}) on {view.federation}: {view.overall.upper()} "
        f"{view.progress}%, {view.elapsed}",
    ]
    if view.problem:
        lines.append(f"  ! {_cut(view.problem, 200)}")
    for node in view.nodes:
        bar = "#" * (node.progress // 10) + "." * (10 - node.progress // 10)
        lines.append(
            f"  {_cut(node.name, 20):<20} {node.approval:<9} {node.execution:<10} [{bar}] "
            f"{node.progress:>3}% {node.in_state:>10}  {_cut(node.last_log, 50)}"
        )
        if node.reason:
            lines.append(f"    FAILED: {node.reason_line}")
    if view.logs and log_rows:
        lines.append("  log:")
        for row in view.logs[-log_rows:]:
            lines.append(
                f"    {row.time} {_cut(row.node, 20)} {_cut(row.level, 8)}: "
                f"{_cut(row.message, 120)}"
            )
    if view.done:
        lines.append(f"  {view.final_line}")
    return "\n".join(lines)


# -- HTML pieces (every value escaped) --------------------------------------------------------
def esc(value: Any) -> str:
    """HTML-escaped, with control and bidi characters made visible (see textsafe)."""
    return html.escape(shown(value), quote=True)


def final_html(view: MonitorView) -> str:
    """The end state as a coloured banner (empty while the analysis runs)."""
    if not view.done:
        return ""
    background = {"executed": "#e8f5e9", "cancelled": "#eeeeee"}.get(view.overall, "#ffebee")
    return (
        f'<div class="flame-final flame-final-{esc(view.overall)}" style="margin:4px 0;'
        f"padding:4px 8px;border-left:4px solid {view.colour};background:{background};"
        f'color:{view.colour}"><b>{esc(view.final_line)}</b></div>'
    )


def header_html(view: MonitorView) -> str:
    problem = (
        f'<div style="color:#c62828">Cannot read the hub: {esc(view.problem)}</div>'
        if view.problem
        else ""
    )
    return (
        f"<div><b>{esc(view.name)}</b> <code>{esc(view.analysis_id)}</code> on "
        f"<i>{esc(view.federation)}</i> &middot; {esc(view.elapsed)} &middot; "
        f'<b style="color:{view.colour}">{esc(view.overall)}</b> {view.progress}%</div>'
        f"{problem}{final_html(view)}"
    )


def columns_html(name: str) -> str:
    """A column header of the node rows."""
    return f'<b style="color:#616161">{esc(name)}</b>'


def status_html(text: str, failed: bool) -> str:
    colour = "#c62828" if failed else "inherit"
    return f'<span style="color:{colour}">{esc(text)}</span>'


def progress_html(row: NodeRow) -> str:
    """A bar: indeterminate (no value) while a node works without reporting progress."""
    colour = "#c62828" if row.failed else ("#2e7d32" if row.progress == 100 else "#1565c0")
    style = f"width:7em;accent-color:{colour};vertical-align:middle"
    if row.working:
        return (
            f'<progress class="flame-working" max="100" style="{style}" '
            'title="working, no progress reported"></progress> &hellip;'
        )
    return f'<progress max="100" value="{row.progress}" style="{style}"></progress> {row.progress}%'


def reason_html(row: NodeRow) -> str:
    """A failure as one red line; the whole text (a traceback) one click away."""
    if not row.reason:
        return ""
    if row.reason_line == " ".join(str(row.reason).split()):
        return f'<span style="color:#c62828">{esc(row.reason_line)}</span>'
    return (
        f'<details style="color:#c62828"><summary>{esc(row.reason_line)}</summary>'
        f'<pre style="white-space:pre-wrap;max-height:20em;overflow:auto">{esc(row.reason)}</pre>'
        "</details>"
    )


LOG_BOX = (
    "margin:0;max-height:24em;overflow:auto;white-space:pre-wrap;font-family:monospace;"
    "line-height:1.3"
)


def logs_html(rows: Iterable[LogRow], total: int | None = None) -> str:
    """The merged log, one line per row in one scrolled box (the last MAX_LOG_ROWS)."""
    rows = list(rows)
    items = [
        f'<span style="color:{row.colour}">{esc(row.time)} [{esc(row.node)}] {esc(row.level)}: '
        f"{esc(str(row.message).rstrip())}</span>"
        for row in rows
    ]
    if not items:
        return "<i>no log lines yet</i>"
    more = ""
    if total is not None and total > len(rows):
        more = (
            f"<div><i>the last {len(rows)} of {total} lines; all of them: "
            "<code>%flame logs ID</code></i></div>"
        )
    return f'{more}<pre class="flame-log" style="{LOG_BOX}">' + "\n".join(items) + "</pre>"


def snapshot_key(view: MonitorView) -> tuple:
    """What changes at a state transition (not with each log line): when this differs, the
    static snapshot kept next to the live widget is drawn again."""
    return (
        view.overall,
        view.done,
        view.result_available,
        view.failure,
        view.problem is not None,
        tuple(
            (n.node_id, n.approval, n.execution, n.progress // 10, n.failed, n.waiting)
            for n in view.nodes
        ),
    )


def snapshot_note(view: MonitorView, taken: datetime) -> str:
    """Says that a still-running monitor's HTML is a snapshot, and how to see it live again."""
    return (
        '<div class="flame-snapshot" style="color:#616161"><i>Snapshot of '
        f"{esc(taken.astimezone(UTC).strftime('%Y-%m-%d %H:%M'))} UTC; the live monitor needs "
        f"its kernel: <code>%flame watch {esc(view.analysis_id)}</code></i></div>"
    )


def render_html(view: MonitorView, note: str = "") -> str:
    """A static HTML snapshot of the monitor (saved notebooks, no widget frontend); ``note``
    (HTML, already escaped) goes under the header."""
    head = "".join(f"<th style='text-align:left'>{esc(name)}</th>" for name, _ in COLUMNS)
    rows = "".join(
        f"<tr><td><b>{esc(n.name)}</b></td>"
        f"<td>{status_html(n.approval, n.approval == 'rejected')}</td>"
        f"<td>{status_html(n.execution, n.failed)}</td><td>{progress_html(n)}</td>"
        f"<td>{esc(n.in_state)}</td><td><code>{esc(_cut(n.last_log, 120))}</code>"
        f"{reason_html(n)}</td></tr>"
        for n in view.nodes
    )
    return (
        f'<div class="flame-monitor">{header_html(view)}{note}<table><tr>{head}</tr>{rows}</table>'
        f"<details><summary>Log (all nodes)</summary>{logs_html(view.logs, view.log_total)}"
        "</details></div>"
    )


def preview_html(value: Any, max_rows: int = 10) -> str:
    """A result preview: a table where it fits one (flame_lab.frames), else its escaped repr."""
    try:
        from flame_lab.frames import as_frame

        value = as_frame(value)
    except Exception:  # noqa: S110 - not a table (or no pandas): the repr below
        pass
    to_html = getattr(value, "to_html", None)
    if callable(to_html) and hasattr(value, "columns"):
        try:
            return str(to_html(max_rows=max_rows, escape=True))
        except TypeError:
            pass
    text = repr(value)
    if len(text) > PREVIEW_CHARS:  # say how much is left out, never a bare cut
        text = f"{text[:PREVIEW_CHARS]} (+{len(text) - PREVIEW_CHARS} more characters)"
    return f"<pre>{esc(text)}</pre>"


def result_ready_html(analysis_id: str) -> str:
    """What stands in for the Decrypt button where its widget is gone (saved notebook, kernel
    restarted): how to open the result without it."""
    return (
        '<div class="flame-result-ready">The result is ready: <code>%flame result '
        f"{esc(analysis_id)}</code> decrypts it (the Decrypt button needs its kernel).</div>"
    )
