"""Input the sandbox hub must survive: each request does the harm and must get a 400 or 413
naming the problem (never a 500), and the hub must keep answering afterwards."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import httpx2
import pytest

from flame_lab.sandbox.hub.limits import (
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    MAX_NAME,
    MAX_TEXT,
    json_depth,
)
from tests.sandbox.hub.conftest import Sandbox, code_bucket_id
from tests.sandbox.hub.test_errors import raw


def refused(r: httpx2.Response, status: int, *words: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["statusCode"] == status
    for word in words:
        assert word in body["message"], body["message"]


def still_answers(box: Sandbox) -> None:
    assert box.core.get_project(box.project_id).id is not None


def post_json_text(http: httpx2.Client, path: str, text: str | bytes) -> httpx2.Response:
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return http.post(path, content=data, headers={"Content-Type": "application/json"})


# -- JSON structure and encoding ----------------------------------------------------------------
def test_json_nested_100000_deep_is_a_400_not_a_crash(sandbox: Sandbox) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    with raw(sandbox, sandbox.core) as http:
        r = post_json_text(http, "/core/analyses", deep)
        refused(r, 400, "nests deeper than", str(MAX_JSON_DEPTH))
        r = post_json_text(http, "/auth/token", '{"a":' * 5_000 + "1" + "}" * 5_000)
        refused(r, 400, "nests deeper")
    still_answers(sandbox)


def test_nesting_is_measured_outside_strings() -> None:
    assert json_depth('{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "b": [1]}') == 2
    assert json_depth(r'["\"[[[[[", {"x": [[]]}]') == 4


def test_invalid_utf8_bodies_are_400s(sandbox: Sandbox) -> None:
    with raw(sandbox, sandbox.core) as http:
        r = post_json_text(http, "/core/analyses", b'{"projectId": "\xff\xfe"}')
        refused(r, 400, "not valid UTF-8")
    with httpx2.Client(base_url=sandbox.url) as http:
        r = http.post(
            "/auth/token",
            content=b"grant_type=password&username=\xff&password=x",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        refused(r, 400, "not valid UTF-8")
    still_answers(sandbox)


def test_a_lone_surrogate_in_a_name_is_refused(sandbox: Sandbox) -> None:
    body = json.dumps({"projectId": sandbox.project_id, "name": "ab\\ud800cd"})
    with raw(sandbox, sandbox.core) as http:
        r = post_json_text(http, "/core/analyses", body.replace("\\\\", "\\"))
    refused(r, 400, "'name'", "lone surrogate U+D800")
    still_answers(sandbox)


def test_nan_and_infinity_are_not_json(sandbox: Sandbox) -> None:
    with raw(sandbox, sandbox.core) as http:
        r = post_json_text(http, "/core/projects", '{"name": "p", "description": NaN}')
    refused(r, 400, "not valid JSON")


# -- sizes ----------------------------------------------------------------------------------------
def test_a_30_mib_description_is_refused_before_it_is_read(sandbox: Sandbox) -> None:
    """Declared larger than the route's limit: 413 at once, the body is never read."""
    url = urlsplit(sandbox.url)
    sandbox.core.get_master_images()
    token = sandbox.core._client.auth._current_token.access_token
    head = (
        f"POST /core/projects HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {30 * 1024 * 1024}\r\n\r\n"
    )
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(head.encode() + b'{"name": "big", "description": "')  # and no more
        answer = sock.recv(65536).decode("latin-1")
    status_line, _, rest = answer.partition("\r\n")
    assert " 413 " in status_line, answer
    assert "Connection: close" in rest and f"limit of {MAX_JSON_BYTES} bytes" in rest
    still_answers(sandbox)


def test_a_body_sent_in_chunks_past_the_limit_is_refused(sandbox: Sandbox) -> None:
    def chunks():
        yield b'{"name": "big", "description": "'
        for _ in range(MAX_JSON_BYTES // 65536 + 2):
            yield b"x" * 65536
        yield b'"}'

    with raw(sandbox, sandbox.core) as http:
        r = http.post(
            "/core/projects", content=chunks(), headers={"Content-Type": "application/json"}
        )
    refused(r, 413, "exceeds this route's limit")
    assert all(p.name != "big" for p in sandbox.core.get_projects())


def test_text_fields_have_maximum_lengths(sandbox: Sandbox) -> None:
    with raw(sandbox, sandbox.core) as http:
        r = http.post("/core/projects", json={"name": "n" * (MAX_NAME + 1)})
        refused(r, 400, "'name'", f"at most {MAX_NAME}")
        r = http.post("/core/projects", json={"name": "ok", "description": "d" * (MAX_TEXT + 1)})
        refused(r, 400, "'description'", f"at most {MAX_TEXT}")
        r = http.post(
            "/core/analyses",
            json={"projectId": sandbox.project_id, "imageCommandArguments": [{"value": "v"}] * 65},
        )
        refused(r, 400, "imageCommandArguments", "at most 64")
    assert all(p.name != "ok" for p in sandbox.core.get_projects())


def test_a_token_request_is_small(sandbox: Sandbox) -> None:
    with httpx2.Client(base_url=sandbox.url) as http:
        r = http.post("/auth/token", json={"grant_type": "password", "password": "x" * 100_000})
    refused(r, 413, "limit of 65536 bytes")


# -- characters in names ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("evil\x00name", "control character U+0000"),
        ("line\nbreak", "control character U+000A"),
        ("esc\x1b]0;title\x07", "control character U+001B"),
        ("invoice\u202egnp.exe", "bidirectional control U+202E"),
        ("isolate\u2067x", "bidirectional control U+2067"),
    ],
)
def test_control_and_bidi_characters_are_refused_in_names(sandbox, name, what) -> None:
    with raw(sandbox, sandbox.core) as http:
        r = http.post("/core/projects", json={"name": name})
        refused(r, 400, "'name'", what)
        r = http.post("/core/analyses", json={"projectId": sandbox.project_id, "name": name})
        refused(r, 400, "'name'", what)


def test_free_text_keeps_line_breaks_but_no_other_controls(sandbox: Sandbox) -> None:
    project = sandbox.core.create_project("texts", description="line one\nline two\tend")
    assert project.description == "line one\nline two\tend"
    with raw(sandbox, sandbox.core) as http:
        r = http.post("/core/projects", json={"name": "t2", "description": "bell\x07"})
    refused(r, 400, "'description'", "U+0007")


def test_an_uploaded_file_name_with_a_bidi_control_is_refused(sandbox: Sandbox) -> None:
    analysis = sandbox.core.create_analysis(sandbox.project_id, name="bidi-upload")
    bucket = code_bucket_id(sandbox, str(analysis.id))
    with raw(sandbox, sandbox.core) as http:
        r = http.post(
            f"/storage/buckets/{bucket}/upload",
            files={"file": ("main\u202eyp.txt", b"print(1)\n")},
        )
    refused(r, 400, "file name", "U+202E")
    assert sandbox.storage.find_bucket_files(filter={"bucket_id": bucket}) == []


# -- numbers and query parameters -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("page[offset]=" + "1" + "0" * 30, ("page[offset]",)),
        ("page[offset]=-1", ("page[offset]", "between 0")),
        ("page[limit]=" + "9" * 40, ("page[limit]",)),
        ("filter[nodes]=" + "9" * 30, ("filter[nodes]", "between")),
    ],
)
def test_numbers_out_of_range_are_400s(sandbox: Sandbox, query: str, words: tuple) -> None:
    with raw(sandbox, sandbox.core) as http:
        r = http.get(f"/core/analyses?{query}")
    refused(r, 400, *words)


def test_progress_outside_0_to_100_is_refused(sandbox: Sandbox) -> None:
    node = sandbox.nodes["uk-aachen"]
    analysis = sandbox.core.create_analysis(sandbox.project_id, name="progress-range")
    links = node.core.find_analysis_nodes(
        filter={"node_id": node.node.id, "analysis_id": analysis.id}
    )
    with raw(sandbox, node.core) as http:
        r = http.post(f"/core/analysis-nodes/{links[0].id}", json={"executionProgress": 10**30})
    refused(r, 400, "'executionProgress'", "between 0 and 100")


def test_invalid_utf8_in_a_query_string_is_a_400(sandbox: Sandbox) -> None:
    with raw(sandbox, sandbox.core) as http:
        r = http.get("/core/analyses", params={"filter[name]": "x"})
        assert r.status_code == 200
        r = http.get(httpx2.URL(sandbox.url + "/core/analyses?filter%5Bname%5D=%FF%FE"))
    refused(r, 400, "filter[name]", "not valid UTF-8")


def test_a_refused_request_with_a_body_leaves_the_connection_usable(sandbox: Sandbox) -> None:
    """A 401 or 404 decided before the body is read still reads it: the client's next request
    on the same connection works."""
    with httpx2.Client(base_url=sandbox.url) as http:
        for _ in range(3):
            assert http.post("/core/projects", json={"name": "x" * 1000}).status_code == 401
            assert http.post("/core/no-such-route", json={"a": 1}).status_code == 404
            assert http.get("/").status_code == 200
