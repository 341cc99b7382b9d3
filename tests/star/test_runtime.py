"""How flame.star code finds its runtime: thread binding, process install, FLAME_LAB_RUNTIME."""

from __future__ import annotations

import threading

import pytest

from flame_lab.errors import NoStarRuntime, StarError
from flame_lab.star import runtime as rt
from flame_lab.star.inprocess import InProcessFederation, InProcessRuntime, NodeSpec


@pytest.fixture(autouse=True)
def no_process_runtime(monkeypatch):
    """Each test starts with no installed runtime, no connection and no env variable."""
    monkeypatch.delenv(rt.RUNTIME_ENV, raising=False)
    monkeypatch.setattr(rt, "_CONNECTORS", {})
    rt.install_runtime(None)
    yield
    rt.install_runtime(None)


def make_runtime(node_id: str = "n0") -> InProcessRuntime:
    federation = InProcessFederation(
        [NodeSpec(node_id, "default", []), NodeSpec("agg", "aggregator")], data_type="s3"
    )
    return federation.runtime(node_id)


def test_in_process_runtime_satisfies_the_runtime_protocol():
    assert isinstance(make_runtime(), rt.Runtime)


def test_without_any_runtime_require_runtime_explains_how_to_run():
    assert rt.current_runtime() is None
    with pytest.raises(NoStarRuntime, match="StarModelTester") as caught:
        rt.require_runtime()
    assert "submit" in caught.value.hint


def test_a_bound_runtime_is_seen_only_by_its_own_thread():
    mine = make_runtime("mine")
    seen_elsewhere: list[object] = []
    with rt.use_runtime(mine):
        assert rt.require_runtime() is mine
        other = threading.Thread(target=lambda: seen_elsewhere.append(rt.current_runtime()))
        other.start()
        other.join()
    assert seen_elsewhere == [None]
    assert rt.current_runtime() is None


def test_a_bound_runtime_wins_over_the_process_runtime():
    installed, bound = make_runtime("installed"), make_runtime("bound")
    rt.install_runtime(installed)
    assert rt.current_runtime() is installed
    with rt.use_runtime(bound):
        assert rt.current_runtime() is bound


def test_env_variable_opens_the_registered_connector_once(monkeypatch):
    opened: list[str] = []

    def connect(address: str) -> InProcessRuntime:
        opened.append(address)
        return make_runtime("from-env")

    rt.register_connector("unix", connect)
    monkeypatch.setenv(rt.RUNTIME_ENV, "unix:/run/agent.sock")
    first = rt.current_runtime()
    assert first is not None and first.get_id() == "from-env"
    assert rt.current_runtime() is first
    assert opened == ["/run/agent.sock"]


def test_env_variable_with_an_unknown_kind_is_an_error_that_hides_the_address(monkeypatch):
    monkeypatch.setenv(rt.RUNTIME_ENV, "tcp:127.0.0.1:9?token=s3cr3t")
    with pytest.raises(StarError) as caught:
        rt.current_runtime()
    assert "'tcp'" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)
    assert "register_connector" in caught.value.hint


def test_connector_schemes_are_bare_names():
    with pytest.raises(StarError):
        rt.register_connector("unix:", lambda address: make_runtime())
