"""The monitor's drawing is a pure function of the polled state: tested without widgets."""

from __future__ import annotations

from datetime import UTC, datetime

from flame_lab import rendering as render
from tests.kernel.conftest import log, node, status

NOW = datetime(2026, 11, 28, 1, 2, 5, tzinfo=UTC)
HOSTILE = "<img src=x onerror=alert(1)>"


def view_of(st, logs=(), **kwargs):
    return render.build_view(
        st,
        list(logs),
        federation="sandbox",
        submitted_at="2026-11-28T01:00:00+00:00",
        now=NOW,
        **kwargs,
    )


def test_a_pending_analysis_shows_every_node_waiting_for_approval():
    view = view_of(status((node("uk-aachen"), node("aggregator", "approved", kind="aggregator"))))
    assert view.overall == "pending"
    assert [(r.name, r.approval, r.execution) for r in view.nodes] == [
        ("uk-aachen", "pending", "-"),
        ("aggregator", "approved", "-"),
    ]
    assert view.elapsed == "2 min 05 s"
    assert not view.done and not view.result_available


def test_each_node_row_shows_its_latest_log_line_and_time_in_state():
    st = status((node("uk-aachen", "approved", "executing", 40),))
    logs = [log("uk-aachen", "started"), log("uk-aachen", "half way")]
    view = view_of(st, logs, in_state={"id-uk-aachen": 75})
    row = view.nodes[0]
    assert row.last_log == "half way"
    assert row.in_state == "1 min 15 s"
    assert row.progress == 40


def test_an_executed_analysis_is_done_with_its_result_available_and_full_progress():
    st = status(tuple(node(n, "approved", "executed", 100) for n in ("a", "b")))
    view = view_of(st)
    assert view.done and view.result_available
    assert view.overall == "executed" and view.progress == 100
    assert "result ready: %flame result an-1" in render.render_text(view)


def test_a_failed_node_carries_its_reason_and_only_that_node_is_marked_failed():
    st = status(
        (
            node("uk-aachen", "approved", "failed", 10, comment="disclosure: too few records"),
            node("uk-koeln", "approved", "executing", 50),
        )
    )
    view = view_of(st)
    failed, running = view.nodes
    assert failed.failed and failed.reason == "disclosure: too few records"
    assert not running.failed and running.reason is None
    assert view.failure == "uk-aachen: disclosure: too few records"
    assert "FAILED: disclosure: too few records" in render.render_text(view)
    assert 'style="color:#c62828">disclosure: too few records' in render.reason_html(failed)


def test_a_rejection_is_terminal_and_shows_the_admins_reason():
    view = view_of(status((node("uk-koeln", "rejected", None, comment="not this week"),)))
    assert view.overall == "rejected" and view.done
    assert view.nodes[0].reason == "not this week"


def test_log_levels_get_their_colours_and_the_log_keeps_the_latest_lines_only():
    logs = [log("a", f"line {i}", level="error" if i % 2 else "debug") for i in range(250)]
    view = view_of(status((node("a"),)), logs)
    assert len(view.logs) == render.MAX_LOG_ROWS
    assert view.logs[-1].message == "line 249"
    assert view.logs[-1].colour == render.LEVEL_COLOURS["error"]
    assert view.logs[-2].colour == render.LEVEL_COLOURS["debug"]


def test_hub_times_in_epoch_milliseconds_are_shown_as_clock_times():
    assert render.clock_time(1795828368495) == "01:12:48"
    assert render.clock_time("1795828368495") == "01:12:48"
    assert render.clock_time("2026-11-28T01:00:00Z") == "01:00:00"
    assert render.clock_time("not a time") == "not a time"


def test_after_the_end_elapsed_time_stops_at_the_last_log_line():
    st = status((node("a", "approved", "executed", 100),))
    view = view_of(st, [log("a", "done", time="2026-11-28T01:00:42+00:00")])
    assert view.elapsed == "42 s"


def test_the_state_clock_restarts_when_a_node_changes_state():
    clock = render.StateClock()
    pending = status((node("a"),))
    running = status((node("a", "approved", "executing"),))
    assert clock.observe(pending, 100.0) == {"id-a": 0.0}
    assert clock.observe(pending, 104.0) == {"id-a": 4.0}
    assert clock.observe(running, 110.0) == {"id-a": 0.0}
    assert clock.observe(running, 111.5) == {"id-a": 1.5}


def test_every_text_from_the_hub_is_escaped_in_html():
    st = status(
        (node(HOSTILE, "approved", "failed", comment=HOSTILE),), name=HOSTILE, analysis_id=HOSTILE
    )
    view = view_of(st, [log(HOSTILE, HOSTILE, level="error")], problem=HOSTILE)
    html = render.render_html(view) + render.header_html(view)
    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_a_progress_line_is_compact_and_names_every_node():
    st = status((node("a", "approved", "executing", 50), node("b", "approved", "executing", 30)))
    line = render.progress_line(view_of(st))
    assert (
        line == "[2 min 05 s] an-1 running 40% (a approved/executing 50%, b approved/executing 30%)"
    )


def test_a_data_frame_previews_as_an_escaped_table_and_anything_else_as_its_repr():
    import pandas as pd

    table = render.preview_html(pd.DataFrame({"site": [HOSTILE], "n": [12]}))
    assert "<table" in table and "<img" not in table
    numbers = render.preview_html({"mean": 50.2, "note": HOSTILE})  # a table of values
    assert "<table" in numbers and "<img" not in numbers and "50.2" in numbers
    other = render.preview_html({"nested": {"deep": {"x": HOSTILE}}})
    assert other.startswith("<pre>") and "<img" not in other


def test_a_long_preview_says_how_much_it_leaves_out():
    text = render.preview_html("x" * 6000)  # repr adds the two quotes
    assert text.endswith(f" (+{6002 - render.PREVIEW_CHARS} more characters)</pre>")
    assert "..." not in text
    assert render.preview_html("short") == "<pre>&#x27;short&#x27;</pre>"


ESCAPES = "\x1b]0;owned\x07\x1b[2J\x9b1;1H\u202eexe.txt"


def test_terminal_escapes_and_bidi_controls_from_the_network_are_shown_not_obeyed():
    st = status(
        (node("uk" + ESCAPES, "approved", "failed", comment="boom" + ESCAPES),),
        name="mean" + ESCAPES,
    )
    view = view_of(st, [log("uk" + ESCAPES, "line" + ESCAPES, level="error")], problem=ESCAPES)
    for text in (render.render_text(view), render.progress_line(view), render.render_html(view)):
        assert not any(ch in text for ch in "\x1b\x07\x9b\u202e"), text
        assert "\\x1b]0;owned" in text and "\\u202e" in text


def test_a_node_the_analysis_waits_for_says_what_it_waits_for_instead_of_its_last_log():
    from dataclasses import replace

    waiting = replace(node("uk-koeln"), online=False, waiting="uk-koeln is offline: it reviews")
    st = status((waiting, node("uk-aachen", "approved")))
    view = view_of(st, [log("uk-koeln", "old line"), log("uk-aachen", "approved it")])
    assert [r.last_log for r in view.nodes] == ["uk-koeln is offline: it reviews", "approved it"]
    assert "uk-koeln is offline" in render.render_html(view)
