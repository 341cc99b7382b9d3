"""A lost answer from the real sandbox hub: a proxy between the researcher and the hub lets the
hub create the analysis, then hangs up instead of answering (as a hub killed or a network cut
right after the commit would). submit must find that analysis again, not create a second."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx2 as httpx
import pytest

import flame_lab as fl
from flame_lab.hubclient import HubEndpoints, every, with_password
from flame_lab.sandbox import daemon

MEAN_AGE = Path(fl.__file__).parent / "examples" / "mean_age.py"
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class LosingProxy(ThreadingHTTPServer):
    """Forwards everything to the hub; drops the answer to the first ``lose`` requests that
    match (method, path), after the hub has carried them out."""

    daemon_threads = True

    def __init__(self, hub_url: str, lose: tuple[str, str], times: int = 1) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.hub_url = hub_url.rstrip("/")
        self.lose, self.left = lose, times
        self.lost: list[int] = []  # the hub's status codes of the answers dropped
        self.seen = 0  # requests that matched
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(BaseHTTPRequestHandler):
    server: LosingProxy

    def log_message(self, *args) -> None:  # quiet
        pass

    def _any(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        answer = httpx.request(
            self.command,
            self.server.hub_url + self.path,
            headers=headers,
            content=body,
            timeout=60,
        )
        with self.server.lock:
            match = (self.command, self.path.split("?")[0]) == self.server.lose
            self.server.seen += match
            drop = match and self.server.left > 0
            if drop:
                self.server.left -= 1
                self.server.lost.append(answer.status_code)
        if drop:
            self.close_connection = True  # the hub did it; the researcher hears nothing
            return
        self.send_response(answer.status_code)
        for key, value in answer.headers.items():
            if key.lower() not in HOP:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _any


@pytest.fixture
def proxy(in_sandbox) -> Iterator[LosingProxy]:
    info = daemon.status(in_sandbox / "sandbox")
    server = LosingProxy(info["coreUrl"].rsplit("/core", 1)[0], ("POST", "/core/analyses"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_create_whose_answer_is_lost_makes_one_analysis_at_the_hub(in_sandbox, proxy):
    fed = fl.connect(start=False)
    info = daemon.status(in_sandbox / "sandbox")
    before = {str(a.id) for a in every(fed.core.find_analyses)}
    fed.clients = with_password(HubEndpoints.under(proxy.url), info["username"], info["password"])
    draft = fl.Draft.from_files({"mean_age.py": MEAN_AGE.read_text()}, entrypoint="mean_age.py")
    run = fed.submit(draft, name="lost answer")
    assert proxy.lost == [201]  # the hub created it; its answer never arrived
    assert proxy.seen == 1  # and the create was not sent again
    after = {str(a.id) for a in every(fed.core.find_analyses)}
    assert after - before == {run.id}  # found again by its token, not created twice
    assert run.wait(timeout=180).overall == "executed"
