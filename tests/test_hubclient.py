"""Hub calls page through everything: a FLAME Hub serves at most 50 records per page."""

from __future__ import annotations

from flame_lab.hubclient import PAGE, every


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
