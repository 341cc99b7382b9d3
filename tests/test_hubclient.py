"""Hub calls page through everything (a FLAME Hub serves at most 50 records per page), wait
within named limits with backoff, and read the hub's error answers as what they mean."""

from __future__ import annotations

import httpx2 as httpx
import pytest

from flame_lab.errors import (
    FlameLabError,
    HubAuthError,
    HubError,
    HubStorageFull,
    HubUnreachable,
    NotFound,
)
from flame_lab.hubclient import (
    HUB_OUTAGE_VAR,
    PAGE,
    REQUEST_TIMEOUT_VAR,
    HubEndpoints,
    HubOutage,
    Patience,
    checked,
    every,
    hub_outage,
    patiently,
    request_timeout,
)


def _pages(total: int):
    calls = []

    def find(page, **params):
        calls.append((page, params))
        start = page["offset"]
        return list(range(start, min(start + page["limit"], total)))

    return find, calls


def test_every_record_is_returned_across_pages():
    find, calls = _pages(2 * PAGE + 7)
    assert every(find, filter={"x": 1}) == list(range(2 * PAGE + 7))
    assert [c[0]["offset"] for c in calls] == [0, PAGE, 2 * PAGE]
    assert all(c[1] == {"filter": {"x": 1}} for c in calls)


def test_an_exact_multiple_of_the_page_size_asks_once_more_and_stops():
    find, calls = _pages(PAGE)
    assert len(every(find)) == PAGE
    assert len(calls) == 2


def test_nothing_is_one_call():
    find, calls = _pages(0)
    assert every(find) == [] and len(calls) == 1


# -- named limits, backoff, and the hub's error answers ---------------------------------------
def _flaky(failures: int, error: Exception):
    calls = []

    def call():
        calls.append(1)
        if len(calls) <= failures:
            raise error
        return "answer"

    return call, calls


QUICK = Patience("TEST_LIMIT", 60.0, first_delay=0.001, max_delay=0.001)


def test_a_hub_that_comes_back_is_waited_for():
    call, calls = _flaky(4, httpx.ConnectError("refused"))
    assert patiently("read the analysis", call, QUICK) == "answer" and len(calls) == 5


def test_past_the_limit_the_error_names_what_was_waited_for_and_the_limit():
    call, _ = _flaky(10**9, httpx.ReadTimeout("no answer"))
    limit = Patience("TEST_LIMIT", 0.01, first_delay=0.001, max_delay=0.001)
    with pytest.raises(HubOutage) as caught:
        patiently("upload the sealed result", call, limit, url="http://hub")
    text = caught.value.message
    assert "the hub at http://hub was unreachable" in text
    assert "upload the sealed result" in text and "TEST_LIMIT=0.01 s" in text
    assert "ReadTimeout" in text and "FLAME_LAB_HUB_TIMEOUT" in text


def test_a_refusal_or_a_full_disk_is_not_retried():
    for error, kind in ((HubError("no"), HubError), (HubStorageFull("full"), HubStorageFull)):
        call, calls = _flaky(10**9, error)
        with pytest.raises(kind):
            patiently("store", call, QUICK)
        assert len(calls) == 1


def test_backoff_doubles_up_to_its_cap():
    p = Patience("X", 100, first_delay=0.25, max_delay=5)
    assert [p.delay(i) for i in range(7)] == [0.25, 0.5, 1, 2, 4, 5, 5]


def test_the_hubs_error_answers_read_as_what_they_mean():
    def answer(status: int, message: str = "") -> httpx.Response:
        return httpx.Response(status, json={"message": message} if message else {})

    assert checked(answer(200), "read").status_code == 200
    with pytest.raises(HubStorageFull, match="no room to upload the code: disk full"):
        checked(answer(507, "disk full"), "upload the code")
    with pytest.raises(HubUnreachable, match="temporarily unable"):
        checked(answer(503), "read")
    with pytest.raises(NotFound):
        checked(answer(404, "gone"), "read")
    with pytest.raises(HubAuthError):
        checked(answer(401), "read")


def test_limits_come_from_the_environment_and_bad_values_say_so(monkeypatch):
    monkeypatch.setenv(REQUEST_TIMEOUT_VAR, "7.5")
    assert request_timeout() == 7.5 and HubEndpoints.under("http://h").timeout == 7.5
    monkeypatch.setenv(HUB_OUTAGE_VAR, "90")
    assert hub_outage() == Patience(HUB_OUTAGE_VAR, 90.0)
    for bad in ("soon", "0", "-3"):
        monkeypatch.setenv(REQUEST_TIMEOUT_VAR, bad)
        with pytest.raises(FlameLabError, match="FLAME_LAB_HUB_TIMEOUT"):
            request_timeout()


# -- riding out an outage on an injected clock, without repeating what may have been done ------
class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def test_the_outage_error_names_the_step_the_time_away_and_the_limit():
    clock = _Clock()
    call, calls = _flaky(10**6, httpx.ConnectError("refused"))
    limit = Patience(HUB_OUTAGE_VAR, 120.0)
    with pytest.raises(HubOutage) as raised:
        patiently("submit: create the analysis", call, limit, clock=clock, hint="do this")
    message = raised.value.message
    assert "while trying to submit: create the analysis" in message
    assert f"unreachable for {clock.t:.0f} s" in message and 115 <= clock.t <= 120
    assert f"limit {HUB_OUTAGE_VAR}=120 s" in message and f"{len(calls)} tries" in message
    assert raised.value.hint == "do this" and raised.value.waited == clock.t


def test_a_try_that_may_have_reached_the_hub_is_reconciled_before_it_is_repeated():
    made, looked = [], []

    def create():
        made.append(1)
        if len(made) == 1:
            raise httpx.ReadTimeout("the answer was lost")  # done at the hub, unknown here
        return "second"

    def reconcile():
        looked.append(1)
        return "first" if made else None

    assert patiently("create", create, QUICK, clock=_Clock(), reconcile=reconcile) == "first"
    assert len(made) == 1 and len(looked) == 1


def test_a_refused_connection_is_simply_tried_again():
    looked = []
    call, calls = _flaky(2, httpx.ConnectError("refused"))  # nothing reached the hub
    result = patiently("create", call, QUICK, clock=_Clock(), reconcile=lambda: looked.append(1))
    assert result == "answer" and len(calls) == 3 and looked == []


def test_maybe_done_tells_a_refused_connection_from_a_lost_answer():
    from flame_lab.hubclient import hub_errors

    for error, maybe in (
        (httpx.ConnectError("refused"), False),
        (httpx.ConnectTimeout("no connection"), False),
        (httpx.ReadTimeout("no answer"), True),
        (httpx.RemoteProtocolError("hung up"), True),
    ):
        with pytest.raises(HubUnreachable) as raised, hub_errors("create"):
            raise error
        assert raised.value.maybe_done is maybe, error
