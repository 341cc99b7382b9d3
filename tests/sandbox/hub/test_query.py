"""The rapiq subset: what each query key means, and what is refused (with the key named)."""

from __future__ import annotations

import sqlite3

import pytest

from flame_lab.sandbox.hub.query import MAX_LIMIT, Filter, parse_query, where_clause
from flame_lab.sandbox.hub.resources import RESOURCES
from flame_lab.sandbox.hub.wire import ApiError

ANALYSES = RESOURCES["analyses"]


def q(**args: str):
    return parse_query({k: [v.encode()] for k, v in args.items()}, ANALYSES)


def test_filter_operators_parse_to_their_comparisons() -> None:
    cases = {
        "x": Filter("name", "=", ("x",)),
        "!x": Filter("name", "=", ("x",), negate=True),
        "~x": Filter("name", "~", ("x",)),
        "<x": Filter("name", "<", ("x",)),
        "<=x": Filter("name", "<=", ("x",)),
        ">x": Filter("name", ">", ("x",)),
        ">=x": Filter("name", ">=", ("x",)),
        "null": Filter("name", "null", ()),
        "!null": Filter("name", "null", (), negate=True),
        "a,b": Filter("name", "=", ("a", "b")),
    }
    for raw, expected in cases.items():
        assert parse_query({"filter[name]": [raw.encode()]}, ANALYSES).filters == [expected]


def test_filter_values_take_the_fields_type() -> None:
    assert q(**{"filter[configurationLocked]": "true"}).filters[0].values == (1,)
    assert q(**{"filter[nodes]": ">=2"}).filters[0].values == (2,)
    with pytest.raises(ApiError, match="nodes"):
        q(**{"filter[nodes]": "many"})


def test_pagination_defaults_and_caps() -> None:
    assert (q().limit, q().offset) == (MAX_LIMIT, 0)
    assert q(**{"page[limit]": "500"}).limit == MAX_LIMIT
    assert q(**{"page[limit]": "5", "page[offset]": "10"}).offset == 10
    with pytest.raises(ApiError):
        q(**{"page[offset]": "-1"})


def test_sort_include_and_fields() -> None:
    query = q(sort="-createdAt,name", include="project,masterImage", fields="+description")
    assert query.sort == [("createdAt", True), ("name", False)]
    assert query.include == ["project", "masterImage"]
    assert query.add_fields == ["description"] and query.only_fields is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("filter[project_id]", "x"),
        ("filter[imageCommandArguments]", "x"),
        ("sort", "colour"),
        ("include", "owner"),
        ("fields", "+secret"),
        ("limit", "5"),
    ],
)
def test_unknown_names_are_a_400_naming_the_key(key: str, value: str) -> None:
    with pytest.raises(ApiError) as err:
        q(**{key: value})
    assert err.value.status == 400 and key.split("[")[0] in err.value.message


def test_where_clause_semantics_on_a_real_table() -> None:
    db = sqlite3.connect(":memory:")
    db.execute('CREATE TABLE t ("name" TEXT)')
    db.executemany(
        "INSERT INTO t VALUES (?)", [("alpha",), ("alpine",), ("beta",), (None,), ("a_c",)]
    )

    def names(raw: str) -> list:
        where, params = where_clause(
            parse_query({"filter[name]": [raw.encode()]}, ANALYSES).filters
        )
        return sorted(r[0] or "" for r in db.execute("SELECT name FROM t" + where, params))  # noqa: S608 (clause from where_clause)

    assert names("~alp") == ["alpha", "alpine"]  # starts with
    assert names("~*ph*") == ["alpha"]  # * is a wildcard
    assert names("~a_") == ["a_c"]  # _ and % are literal
    assert names("!alpha") == ["", "a_c", "alpine", "beta"]  # not-equal keeps nulls
    assert names("null") == [""]
    assert names("alpha,beta") == ["alpha", "beta"]
    assert names(">b") == ["beta"]
