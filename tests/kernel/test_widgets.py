"""The live monitor widget, driven by scripted hub answers (no browser, no kernel)."""

from __future__ import annotations

import re
import threading
from dataclasses import replace

import pytest

from flame_lab.errors import HubUnreachable
from flame_lab.kernel import widgets
from tests.kernel.conftest import FakeAnalysis, log, node, status

HOSTILE = "<img src=x onerror=alert(1)>"


def bar(row) -> int | None:
    """The bar's value, or None while it is indeterminate (working, no progress reported)."""
    found = re.search(r'<progress[^>]*value="(\d+)"', row.bar.value)
    return int(found.group(1)) if found else None


def running_script():
    pending = status((node("uk-aachen"), node("aggregator", "approved", kind="aggregator")))
    running = status(
        (
            node("uk-aachen", "approved", "executing", 50),
            node("aggregator", "approved", "executing", 0, kind="aggregator"),
        )
    )
    done = status(
        (
            node("uk-aachen", "approved", "executed", 100),
            node("aggregator", "approved", "executed", 100, kind="aggregator"),
        )
    )
    return [
        (pending, []),
        (running, [log("uk-aachen", "Analyzer started")]),
        (done, [log("uk-aachen", "Analyzer started"), log("aggregator", "sealed 1 result")]),
    ]


def test_each_polled_update_sets_the_header_rows_bars_and_log():
    analysis = FakeAnalysis(running_script())
    monitor = widgets.Monitor(analysis)

    monitor.poll_once()
    assert "pending" in monitor.header.value
    assert [bar(r) for r in monitor.rows.values()] == [0, 0]
    assert "node" in monitor.columns.children[0].value
    assert "last log" in monitor.columns.children[-1].value
    assert monitor.result_box.layout.display == "none"
    assert len(monitor.node_box.children) == 2

    monitor.poll_once()
    aachen = monitor.rows["id-uk-aachen"]
    assert "running" in monitor.header.value
    assert bar(aachen) == 50 and "executing" in aachen.execution.value
    assert bar(monitor.rows["id-aggregator"]) is None  # executing, nothing reported yet
    assert "Analyzer started" in aachen.last_log.value
    assert "Analyzer started" in monitor.log_html.value

    view = monitor.poll_once()
    assert view.done and "executed" in monitor.header.value
    assert bar(aachen) == 100 and "#2e7d32" in aachen.bar.value
    assert (
        "Executed after" in monitor.header.value and "flame-final-executed" in monitor.header.value
    )
    assert monitor.result_box.layout.display == "flex"
    assert "sealed 1 result" in monitor.rows["id-aggregator"].last_log.value


def test_a_failed_node_shows_its_reason_in_red_at_its_row():
    failed = status(
        (
            node("uk-aachen", "approved", "failed", 20, comment="PolicyRefused: row-level data"),
            node("aggregator", "approved", "executing", kind="aggregator"),
        )
    )
    monitor = widgets.Monitor(FakeAnalysis([(failed, [])]))
    view = monitor.poll_once()
    row = monitor.rows["id-uk-aachen"]
    assert view.overall == "failed" and view.done
    assert "#c62828" in row.bar.value
    assert "#c62828" in row.reason.value and "PolicyRefused: row-level data" in row.reason.value
    assert monitor.rows["id-aggregator"].reason.value == ""
    assert monitor.result_box.layout.display == "none"


def test_hostile_node_names_and_log_lines_are_escaped_everywhere():
    st = status((node(HOSTILE, "approved", "failed", comment=HOSTILE),), name=HOSTILE)
    monitor = widgets.Monitor(FakeAnalysis([(st, [log(HOSTILE, HOSTILE, level="error")])]))
    monitor.poll_once()
    row = monitor.rows[f"id-{HOSTILE}"]
    values = [monitor.header.value, monitor.log_html.value] + [
        w.value for w in (row.name, row.approval, row.execution, row.last_log, row.reason)
    ]
    assert all("<img" not in value for value in values)
    assert all("&lt;img" in value for value in (row.name.value, row.reason.value))
    bundle = monitor._repr_mimebundle_()
    assert "<img" not in bundle["text/html"]


def test_a_hub_error_while_polling_is_shown_and_the_last_state_kept():
    analysis = FakeAnalysis(running_script())
    monitor = widgets.Monitor(analysis)
    monitor.poll_once()
    analysis.errors.append(HubUnreachable("cannot reach http://127.0.0.1:1/core"))
    assert monitor.poll_once() is None
    assert "Cannot read the hub: cannot reach http://127.0.0.1:1/core" in monitor.header.value
    assert "pending" in monitor.header.value


def test_decrypt_puts_the_result_into_the_namespace_and_previews_it():
    namespace: dict = {}
    analysis = FakeAnalysis(running_script(), result={"mean_age": 50.2})
    monitor = widgets.Monitor(analysis, namespace=namespace)
    monitor.button.click()
    assert namespace["result_an_1"] == {"mean_age": 50.2}
    assert "result_an_1" in monitor.preview.value and "50.2" in monitor.preview.value


def test_decrypt_errors_show_message_and_hint_and_leave_the_button_usable():
    class Refusing(FakeAnalysis):
        def result(self):
            raise HubUnreachable("the hub is gone", hint="Start it again.")

    monitor = widgets.Monitor(Refusing(running_script()))
    assert monitor.decrypt() is None
    assert "the hub is gone" in monitor.preview.value and "Start it again." in monitor.preview.value
    assert not monitor.button.disabled


class Gate(FakeAnalysis):
    """Each poll after the first waits for the test to open the gate: counted, never timed."""

    def __init__(self, script):
        super().__init__(script)
        self.gate = threading.Semaphore(0)

    def status(self, *, advance=True):
        if self.polls > 0:
            assert self.gate.acquire(timeout=10), "the test never let the poller go on"
        return super().status(advance=advance)


def test_the_poller_stops_by_itself_at_a_terminal_state():
    analysis = Gate(running_script())
    monitor = widgets.Monitor(analysis, interval=0.01).start()
    assert monitor.running
    for _ in range(2):
        analysis.gate.release()
    monitor.join(timeout=10)
    assert not monitor.running
    assert analysis.polls == 3 and monitor.view.overall == "executed"


def test_the_poller_stops_when_the_widget_is_closed():
    analysis = Gate(running_script())
    monitor = widgets.Monitor(analysis, interval=0.01).start()
    monitor.close()
    analysis.gate.release()
    monitor.join(timeout=10)
    assert not monitor.running
    assert analysis.polls <= 2 and monitor.view.overall != "executed"


def test_without_a_widget_frontend_the_monitor_is_plain_text():
    lines: list[str] = []
    analysis = FakeAnalysis(running_script())
    assert widgets.show_monitor(analysis, shell=None, out=lines.append) is None
    assert lines[0].startswith("mean age (an-1) on sandbox: PENDING 0%")
    assert "uk-aachen" in lines[0]


def test_waiting_without_a_frontend_prints_one_line_per_state_change():
    script = running_script()
    repeated = [script[0], script[0], script[1], script[1], script[2]]
    lines: list[str] = []
    analysis = FakeAnalysis(repeated)
    widgets.wait_with_text(analysis, "sandbox", lines.append, interval=0)
    states = [re.search(r"\] an-1 (\w+) ", line).group(1) for line in lines]
    assert states == ["pending", "running", "executed"]


@pytest.mark.parametrize("shell", [None, object()])
def test_no_kernel_means_no_widget_frontend(shell):
    assert not widgets.has_widget_frontend(shell)


def test_the_analysis_monitor_hook_shows_text_outside_a_kernel_and_returns_nothing(capsys):
    assert widgets.monitor(FakeAnalysis(running_script())) is None
    assert "mean age (an-1) on sandbox: PENDING 0%" in capsys.readouterr().out


TRACEBACK = """Traceback (most recent call last):
  File "analysis.py", line 12, in analysis_method
    return 1 / 0
ZeroDivisionError: division by zero"""


def test_a_failure_is_one_line_with_the_traceback_one_click_away():
    failed = status((node("uk-aachen", "approved", "failed", 20, comment=TRACEBACK),))
    monitor = widgets.Monitor(FakeAnalysis([(failed, [])]))
    view = monitor.poll_once()
    reason = monitor.rows["id-uk-aachen"].reason.value
    assert "<summary>ZeroDivisionError: division by zero</summary>" in reason
    assert "return 1 / 0" in reason.split("</summary>")[1]  # the whole traceback, folded
    assert view.final_line.startswith("\u2716 Failed after")
    assert view.final_line.endswith("ZeroDivisionError: division by zero")
    text = widgets.render.render_text(view)
    assert "FAILED: ZeroDivisionError: division by zero" in text and "line 12" not in text


def test_the_log_view_is_one_scrolled_block_of_the_last_lines():
    many = [log("uk-aachen", f"line {i}\n") for i in range(500)]
    st = status((node("uk-aachen", "approved", "executing", 10),))
    monitor = widgets.Monitor(FakeAnalysis([(st, many)]))
    monitor.poll_once()
    html = monitor.log_html.value
    assert html.count("<pre") == 1 and "max-height" in html and "\n\n" not in html
    assert "line 499" in html and "line 299" not in html
    assert "the last 200 of 500 lines" in html


class Handle:
    def __init__(self):
        self.updates: list = []

    def update(self, obj, raw=False):
        self.updates.append(obj)


def test_at_the_end_the_display_becomes_static_html_and_the_button_appears_below():
    analysis = FakeAnalysis(running_script()[2:], result={"mean_age": 50.2})
    monitor = widgets.Monitor(analysis, namespace={})
    monitor.handle, monitor.action = Handle(), Handle()
    monitor.start()
    final = monitor.handle.updates[-1]
    assert set(final) == {"text/plain", "text/html"}  # no widget: survives a kernel restart
    assert "flame-final-executed" in final["text/html"] and "<th" in final["text/html"]
    button = monitor.action.updates[-1]
    assert button[widgets.WIDGET_VIEW]["model_id"] == monitor.result_box.model_id
    # its stand-in where the widget is gone (saved notebook, restarted kernel)
    assert (
        "%flame result an-1" in button["text/html"] and "flame-result-ready" in button["text/html"]
    )
    monitor.decrypt()
    assert "50.2" in monitor.action.updates[-1]["text/html"]


def test_a_cancelled_analysis_ends_in_a_grey_final_state():
    cancelled = status((node("uk-aachen", "approved", "executing", 30),), cancelled=True)
    monitor = widgets.Monitor(FakeAnalysis([(cancelled, [])]))
    view = monitor.poll_once()
    assert view.done and view.final_line.startswith("\u25a0 Cancelled")
    assert "flame-final-cancelled" in monitor.header.value


def test_an_analysis_gone_from_the_hub_stops_the_poller_with_the_reason():
    from flame_lab.errors import NotFound

    analysis = FakeAnalysis(running_script())
    monitor = widgets.Monitor(analysis, interval=0.01)
    monitor.poll_once()
    analysis.errors.append(NotFound("the hub no longer knows analysis an-1"))
    monitor.start()
    monitor.join(timeout=10)
    assert not monitor.running and monitor.gone
    assert "no longer knows" in monitor.header.value


def test_a_result_opened_elsewhere_replaces_the_button_with_a_static_note():
    monitor = widgets.Monitor(FakeAnalysis(running_script()[2:]), namespace={})
    monitor.handle, monitor.action = Handle(), Handle()
    monitor.start()
    monitor.show_opened("result_an_1")
    last = monitor.action.updates[-1]
    assert set(last) == {"text/html", "text/plain"} and "result_an_1" in last["text/html"]


def test_while_running_the_display_carries_a_static_snapshot_beside_the_widget():
    analysis = FakeAnalysis(running_script()[:2])
    monitor = widgets.Monitor(analysis)
    monitor.poll_once()
    bundle = monitor._repr_mimebundle_()
    assert bundle[widgets.WIDGET_VIEW]["model_id"] == monitor.widget.model_id
    html = bundle["text/html"]
    assert "flame-monitor" in html and "pending" in html and "<th" in html
    assert "flame-snapshot" in html and "%flame watch an-1" in html


def test_the_snapshot_is_drawn_again_at_state_transitions_not_per_log_line():
    pending = status((node("uk-aachen"),))
    waiting = replace(pending, nodes=(replace(pending.nodes[0], waiting=f"waiting for {HOSTILE}"),))
    running = status((node("uk-aachen", "approved", "executing", 40),))
    script = [
        (pending, []),
        (waiting, []),
        (waiting, [log("uk-aachen", "a log line")]),
        (running, [log("uk-aachen", "a log line")]),
        (running, [log("uk-aachen", "a log line"), log("uk-aachen", "another")]),
    ]
    monitor = widgets.Monitor(FakeAnalysis(script))
    monitor.poll_once()
    monitor._repr_mimebundle_()  # what display() does with the first state
    monitor.handle = Handle()
    monitor.poll_once()  # the node now says what it waits for: a transition
    monitor.poll_once()  # a log line only
    monitor.poll_once()  # approved and executing: a transition
    monitor.poll_once()  # another log line
    updates = monitor.handle.updates
    assert len(updates) == 2
    assert all(u[widgets.WIDGET_VIEW]["model_id"] == monitor.widget.model_id for u in updates)
    assert (
        "waiting for &lt;img" in updates[0]["text/html"] and "<img" not in updates[0]["text/html"]
    )
    assert "executing" in updates[1]["text/html"] and "40%" in updates[1]["text/html"]
