"""The live monitor of one analysis: ipywidgets fed by a polling daemon thread.

Transport (``Poller``: ask the hub for status and logs) is kept apart from drawing
(``render.build_view`` then ``Monitor.apply``, which only sets widget values, batched in
``hold_sync``). Where no widget frontend exists, ``show_monitor`` prints the same view as text.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flame_lab import rendering as render
from flame_lab.errors import FlameLabError, NotFound

DEFAULT_INTERVAL = 1.0
MAX_BACKOFF = 10.0
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def widget_bundle(widget: Any, html: str, text: str) -> dict[str, Any]:
    """A widget's display bundle with a static HTML stand-in: JupyterLab (with flame-lab's
    extension) and nbconvert show the HTML where the widget's model is gone."""
    return {
        "text/plain": text,
        "text/html": html,
        WIDGET_VIEW: {"version_major": 2, "version_minor": 0, "model_id": widget.model_id},
    }


def result_variable(analysis_id: str) -> str:
    """The name the decrypted result gets in the user's namespace."""
    return "result_" + re.sub(r"\W", "_", analysis_id[:8])


def _problem_text(error: BaseException) -> str:
    if isinstance(error, FlameLabError):
        return error.message
    return f"{type(error).__name__} while polling"


class _NodeWidgets:
    """The widgets of one node row."""

    def __init__(self, w: Any) -> None:
        widths = [width for _, width in render.COLUMNS]
        self.name = w.HTML(layout=w.Layout(width=widths[0]))
        self.approval = w.HTML(layout=w.Layout(width=widths[1]))
        self.execution = w.HTML(layout=w.Layout(width=widths[2]))
        self.bar = w.HTML(layout=w.Layout(width=widths[3]))
        self.in_state = w.HTML(layout=w.Layout(width=widths[4]))
        self.last_log = w.HTML(layout=w.Layout(flex="1", overflow="hidden"))
        self.reason = w.HTML()
        self.box = w.VBox(
            [
                w.HBox(
                    [
                        self.name,
                        self.approval,
                        self.execution,
                        self.bar,
                        self.in_state,
                        self.last_log,
                    ]
                ),
                self.reason,
            ]
        )

    @property
    def all(self) -> list[Any]:
        return [
            self.name,
            self.approval,
            self.execution,
            self.bar,
            self.in_state,
            self.last_log,
            self.reason,
        ]

    def apply(self, row: render.NodeRow) -> None:
        self.name.value = f"<b>{render.esc(row.name)}</b>"
        self.approval.value = render.status_html(row.approval, row.approval == "rejected")
        self.execution.value = render.status_html(row.execution, row.failed)
        self.bar.value = render.progress_html(row)
        self.in_state.value = render.esc(row.in_state)
        last = render._cut(row.last_log, 120)
        self.last_log.value = (
            f'<code style="white-space:nowrap" title="{render.esc(last)}">{render.esc(last)}</code>'
            if row.last_log
            else ""
        )
        self.reason.value = render.reason_html(row)


class Monitor:
    """One analysis drawn as widgets; ``update`` draws a polled state, ``start`` polls live."""

    def __init__(
        self,
        analysis: Any,
        *,
        federation: str | None = None,
        namespace: dict[str, Any] | None = None,
        interval: float = DEFAULT_INTERVAL,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        import ipywidgets as w

        self._w = w
        self.analysis = analysis
        self.federation = federation or getattr(analysis.federation, "name", "?")
        self.namespace = namespace if namespace is not None else {}
        self.interval = interval
        self._now = now
        self.clock = render.StateClock()
        self.view: render.MonitorView | None = None
        self.result: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.gone = False  # the hub no longer knows the analysis
        self.header = w.HTML()
        self.columns = w.HBox(
            [
                w.HTML(render.columns_html(name), layout=w.Layout(width=width or None))
                for name, width in render.COLUMNS
            ]
        )
        self.node_box = w.VBox()
        self.handle: Any = None  # the display showing this monitor (replaced by HTML at the end)
        self.action: Any = None  # a display below it, where the Decrypt button appears
        self.rows: dict[str, _NodeWidgets] = {}
        self._snapshot: tuple | None = None  # the state the newest display bundle shows
        self.log_html = w.HTML()
        self.log_view = w.Accordion(children=[self.log_html], selected_index=None)
        self.log_view.set_title(0, "Log (all nodes)")
        self.button = w.Button(description="Decrypt result", icon="unlock", button_style="success")
        self.button.on_click(self.decrypt)
        self.preview = w.HTML()
        self.result_box = w.VBox([self.button, self.preview], layout=w.Layout(display="none"))
        self.widget = w.VBox(
            [self.header, self.columns, self.node_box, self.log_view, self.result_box]
        )

    # -- drawing -----------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._stop.is_set() or getattr(self.widget, "comm", None) is None

    def update(self, status: Any, logs: list[Any], problem: str | None = None) -> Any:
        """Draw one polled moment; returns the view it drew."""
        spent = self.clock.observe(status, time.monotonic())
        view = render.build_view(
            status,
            logs,
            federation=self.federation,
            submitted_at=getattr(self.analysis.record, "submitted_at", None),
            now=self._now(),
            in_state=spent,
            problem=problem,
        )
        self.apply(view)
        return view

    def show_problem(self, problem: str) -> None:
        """Keep the last view, and say the hub could not be read."""
        if self.view is not None:
            from dataclasses import replace

            self.apply(replace(self.view, problem=problem))

    def apply(self, view: render.MonitorView) -> None:
        """Set widget values (only) to match ``view``, sending one batch per widget."""
        w = self._w
        new = [row for row in view.nodes if row.node_id not in self.rows]
        for row in new:
            self.rows[row.node_id] = _NodeWidgets(w)
        widgets = [self.header, self.log_html, self.result_box, self.button, self.preview]
        for node in self.rows.values():
            widgets += node.all
        with contextlib.ExitStack() as stack:
            for widget in widgets:
                stack.enter_context(widget.hold_sync())
            self.header.value = render.header_html(view)
            for row in view.nodes:
                self.rows[row.node_id].apply(row)
            self.log_html.value = render.logs_html(view.logs, view.log_total)
            if view.result_available:
                self.result_box.layout.display = "flex"
        if new:
            self.node_box.children = tuple(self.rows[r.node_id].box for r in view.nodes)
        self.view = view
        self._refresh_snapshot()

    def _refresh_snapshot(self) -> None:
        """At a state transition, the display's static HTML is drawn again next to the live
        widget (what a notebook saved now keeps); at the end ``finish`` replaces both."""
        assert self.view is not None
        key = render.snapshot_key(self.view)
        if self.handle is None or self.view.done or key == self._snapshot:
            return
        self.handle.update(self._repr_mimebundle_(), raw=True)

    def decrypt(self, _button: Any = None) -> Any:
        """Open the result into the user's namespace and show a preview."""
        self.button.disabled = True
        try:
            value = self.analysis.result()
        except FlameLabError as error:
            self.preview.value = (
                f'<div style="color:#c62828">{render.esc(error.message)}<br>'
                f"Hint: {render.esc(error.hint)}</div>"
            )
            self.button.disabled = False
            return None
        name = result_variable(self.analysis.id)
        self.namespace[name] = value
        self.result = value
        self.preview.value = (
            f"<div>Decrypted into <code>{render.esc(name)}</code>:</div>"
            + render.preview_html(value)
        )
        self.show_opened(name)
        return value

    def show_opened(self, name: str) -> None:
        """The button's place says where the result went, as static HTML (no widget left to
        show "model not found" once the notebook is saved); also after `%flame result`."""
        if self.action is None:
            return
        html = f"<div>Decrypted into <code>{render.esc(name)}</code></div>"
        if self.result is not None:
            html = self.preview.value
        self.action.update({"text/html": html, "text/plain": f"Decrypted into {name}"}, raw=True)

    # -- the end -------------------------------------------------------------------------------
    def static_bundle(self) -> dict[str, str]:
        """The monitor as text and HTML only: what a saved notebook keeps, with no widget."""
        assert self.view is not None
        return {
            "text/plain": render.render_text(self.view),
            "text/html": render.render_html(self.view),
        }

    def finish(self) -> None:
        """At a final state: the display becomes static HTML (it survives saving and kernel
        restarts; a widget would show "model not found"), and a Decrypt button appears below."""
        if self.handle is None or self.view is None:
            return
        self.handle.update(self.static_bundle(), raw=True)
        if self.action is not None and self.view.result_available:
            self.action.update(self.button_bundle(), raw=True)

    def button_bundle(self) -> dict[str, Any]:
        """The Decrypt button with its static stand-in (saying how to decrypt without it)."""
        return widget_bundle(
            self.result_box,
            render.result_ready_html(self.analysis.id),
            f"The result is ready: %flame result {self.analysis.id}",
        )

    # -- polling -----------------------------------------------------------------------------
    def poll_once(self) -> Any:
        """Read status and logs from the hub and draw them; errors become a shown problem."""
        try:
            status = self.analysis.status()
            logs = self.analysis.logs(patient=False)  # one look: the monitor looks again
        except NotFound as error:  # gone from the hub: nothing more will change
            self.show_problem(_problem_text(error))
            self.gone = True
            return None
        except FlameLabError as error:
            self.show_problem(_problem_text(error))
            return None
        except Exception as error:
            self.show_problem(_problem_text(error))
            return None
        return self.update(status, logs)

    def start(self) -> Monitor:
        """Draw now (unless drawn already), then poll in a daemon thread until done or closed."""
        view = self.view if self.view is not None else self.poll_once()
        if view is not None and view.done:
            self.finish()
            return self
        self._thread = threading.Thread(
            target=self._run, name=f"flame-monitor-{self.analysis.id}", daemon=True
        )
        self._thread.start()
        return self

    def _run(self) -> None:
        delay = self.interval
        while not self.closed:
            if self._stop.wait(delay):
                return
            if self.closed:
                return
            view = self.poll_once()
            if self.gone:
                return
            if view is None:
                delay = min(delay * 2, MAX_BACKOFF)
                continue
            delay = self.interval
            if view.done:
                self.finish()
                return

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        """Wait (interruptibly) for the poller to end."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.running:
            step = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if step <= 0:
                return
            assert self._thread is not None
            self._thread.join(step)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        """Stop polling and close the widgets."""
        self._stop.set()
        self.widget.close()

    # -- display -----------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The live widget, with a static snapshot of the current state beside it."""
        if self.view is None:
            html = f"<div>Monitor of analysis <code>{render.esc(self.analysis.id)}</code></div>"
            return widget_bundle(self.widget, html, repr(self))
        self._snapshot = render.snapshot_key(self.view)  # the state the newest bundle shows
        note = "" if self.view.done else render.snapshot_note(self.view, self._now())
        return widget_bundle(
            self.widget, render.render_html(self.view, note), render.render_text(self.view)
        )

    def __repr__(self) -> str:
        return f"Monitor({self.analysis.id!r})"


def has_widget_frontend(shell: Any) -> bool:
    """True in a Jupyter kernel (widgets can render); False in terminal IPython or none."""
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def text_view(analysis: Any, federation: str) -> render.MonitorView:
    """One polled moment as a view, for the plain-text paths."""
    status = analysis.status()
    return render.build_view(
        status,
        analysis.logs(),
        federation=federation,
        submitted_at=analysis.record.submitted_at,
        now=datetime.now(UTC),
    )


def wait_with_text(
    analysis: Any,
    federation: str,
    out: Callable[[str], None] = print,
    timeout: float | None = None,
    interval: float = DEFAULT_INTERVAL,
) -> render.MonitorView:
    """Block until the analysis ends, printing one compact line per state change."""
    clock = render.StateClock()
    last: tuple | None = None
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        status = analysis.status()
        key = (
            status.overall,
            status.progress,
            tuple((n.approval, n.execution) for n in status.nodes),
        )
        view = render.build_view(
            status,
            [],
            federation=federation,
            submitted_at=analysis.record.submitted_at,
            now=datetime.now(UTC),
            in_state=clock.observe(status, time.monotonic()),
        )
        if key != last:
            out(render.progress_line(view))
            last = key
        if status.done:
            return text_view(analysis, federation)
        if deadline is not None and time.monotonic() > deadline:
            from flame_lab.errors import AnalysisFailed

            raise AnalysisFailed(
                f"analysis {analysis.id} is still {status.overall} after {timeout:.0f} s",
                hint=f"It goes on running; watch it with `%flame watch {analysis.id}`.",
            )
        time.sleep(interval)


def show_monitor(
    analysis: Any,
    *,
    federation: str | None = None,
    shell: Any = None,
    wait: bool = False,
    interval: float = DEFAULT_INTERVAL,
    out: Callable[[str], None] = print,
) -> Monitor | None:
    """Show the live monitor (or, without a widget frontend, the same state as text).

    This is the hook behind ``Analysis.monitor()`` and ``%flame watch``; the Monitor is returned
    where widgets are shown.
    """
    if shell is None:
        with contextlib.suppress(ImportError):
            from IPython import get_ipython

            shell = get_ipython()
    name = federation or getattr(analysis.federation, "name", "?")
    if not has_widget_frontend(shell):
        if wait:
            view = wait_with_text(analysis, name, out, interval=interval)
        else:
            view = text_view(analysis, name)
        out(render.render_text(view))
        return None
    from IPython.display import display

    namespace = shell.user_ns if shell is not None else None
    monitor = Monitor(analysis, federation=name, namespace=namespace, interval=interval)
    monitor.poll_once()
    monitor.handle = display(monitor, display_id=True)
    monitor.action = display({"text/plain": ""}, raw=True, display_id=True)
    monitor.start()
    if wait:
        monitor.join()
    return monitor


def monitor(analysis: Any, *, wait: bool = False) -> None:
    """The hook behind ``Analysis.monitor()``: show the monitor in the current notebook cell.

    It displays by itself and returns None, so a cell ending in ``run.monitor()`` shows it once.
    """
    show_monitor(analysis, wait=wait)
