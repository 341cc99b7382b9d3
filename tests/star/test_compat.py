"""``import flame.star`` works without the real SDK, and never shadows a real installation."""

from __future__ import annotations

import importlib
import importlib.util
import sys

import pytest

import flame_lab.star as star
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
