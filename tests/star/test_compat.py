"""``import flame.star`` works without the real SDK, and never shadows a real installation."""

from __future__ import annotations

import importlib
import importlib.util
import sys

import pytest

import flame_lab.star as star
from flame_lab.errors import StarError
from flame_lab.star.compat import COMPAT_DIR, ensure_importable


@pytest.fixture
def clean_flame(monkeypatch):
    """A sys.path without flame_lab's compat folder and no imported ``flame`` modules."""
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(COMPAT_DIR)])
    saved = {name: mod for name, mod in sys.modules.items() if name.split(".")[0] == "flame"}
    for name in saved:
        del sys.modules[name]
    importlib.invalidate_caches()
    yield
    for name in [n for n in sys.modules if n.split(".")[0] == "flame"]:
        del sys.modules[name]
    sys.modules.update(saved)
    importlib.invalidate_caches()


def test_without_a_real_sdk_the_compat_folder_is_added_and_flame_star_is_flame_lab(clean_flame):
    assert importlib.util.find_spec("flame") is None
    assert ensure_importable() is True
    assert sys.path[-1] == str(COMPAT_DIR)
    flame_star = importlib.import_module("flame.star")
    for name in (
        "StarModel",
        "StarAnalyzer",
        "StarAggregator",
        "StarLocalDPModel",
        "StarModelTester",
    ):
        assert getattr(flame_star, name) is getattr(star, name)
    assert ensure_importable() is False
    assert sys.path.count(str(COMPAT_DIR)) == 1


def test_a_real_flame_installation_is_never_shadowed(clean_flame, tmp_path):
    real = tmp_path / "site" / "flame" / "star"
    real.mkdir(parents=True)
    (real.parent / "__init__.py").write_text("REAL_SDK = True\n")
    (real / "__init__.py").write_text("class StarModel:\n    pass\n")
    sys.path.insert(0, str(tmp_path / "site"))
    importlib.invalidate_caches()

    assert ensure_importable() is False
    assert str(COMPAT_DIR) not in sys.path
    flame = importlib.import_module("flame")
    assert flame.REAL_SDK is True
    assert importlib.import_module("flame.star").StarModel is not star.StarModel


ANALYSIS = """
from flame.star import StarAggregator, StarAnalyzer, StarModelTester


class MyAnalyzer(StarAnalyzer):
    def __init__(self, flame):
        super().__init__(flame)

    def analysis_method(self, data, aggregator_results):
        return sum(data) / len(data)


class MyAggregator(StarAggregator):
    def __init__(self, flame):
        super().__init__(flame)

    def aggregation_method(self, analysis_results):
        return sum(analysis_results) / len(analysis_results)

    def has_converged(self, result, last_result):
        return True


tester = StarModelTester([[1, 2, 3, 4], [5, 6, 7, 8]], MyAnalyzer, MyAggregator, "s3", quiet=True)
"""


def test_code_written_for_the_real_sdk_runs_unchanged_after_ensure_importable(clean_flame):
    ensure_importable()
    namespace: dict[str, object] = {}
    exec(compile(ANALYSIS, "analysis.py", "exec"), namespace)  # noqa: S102 - test's own code
    assert namespace["tester"].result == "4.5"


def test_upstream_module_paths_import_flame_lab_classes(clean_flame):
    ensure_importable()
    from flame_lab.star.mock import MockFlameCoreSDK
    from flame_lab.star.nodes import StarNode

    expected = {
        ("flame.star.star_model", "StarModel"): star.StarModel,
        ("flame.star.star_model_tester", "StarModelTester"): star.StarModelTester,
        ("flame.star.star_localdp", "StarLocalDPModel"): star.StarLocalDPModel,
        ("flame.star.star_localdp.star_localdp_model", "StarLocalDPModel"): star.StarLocalDPModel,
        ("flame.star.analyzer_client", "Analyzer"): star.StarAnalyzer,
        ("flame.star.aggregator_client", "Aggregator"): star.StarAggregator,
        ("flame.star.node_base_client", "Node"): StarNode,
        ("flame.utils.mock_flame_core", "MockFlameCoreSDK"): MockFlameCoreSDK,
        ("flamesdk", "FlameCoreSDK"): star.FlameCoreSDK,
        ("flamesdk.flame_core", "FlameCoreSDK"): star.FlameCoreSDK,
    }
    for (module, name), obj in expected.items():
        assert getattr(importlib.import_module(module), name) is obj, module


def _install_foreign_flame(tmp_path, with_metadata: bool) -> None:
    """An unrelated package that happens to be called ``flame`` (as one on the index is)."""
    site = tmp_path / "site"
    (site / "flame").mkdir(parents=True)
    (site / "flame" / "__init__.py").write_text("def render():\n    return 'not FLAME'\n")
    if with_metadata:
        info = site / "flame-0.1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: flame\nVersion: 0.1.0\n")
        (info / "RECORD").write_text("flame/__init__.py,,\n")
        (info / "top_level.txt").write_text("flame\n")
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()


@pytest.mark.parametrize("with_metadata", [True, False])
def test_a_foreign_flame_package_is_named_with_what_to_do(clean_flame, tmp_path, with_metadata):
    _install_foreign_flame(tmp_path, with_metadata)
    try:
        with pytest.raises(StarError, match="is not PrivateAIM's FLAME SDK") as caught:
            ensure_importable()
        assert str(tmp_path / "site" / "flame") in caught.value.message
        if with_metadata:
            assert "pip uninstall flame" in caught.value.hint
        else:
            assert "separate environment" in caught.value.hint
        assert str(COMPAT_DIR) not in sys.path
    finally:
        sys.path.remove(str(tmp_path / "site"))
        importlib.invalidate_caches()
