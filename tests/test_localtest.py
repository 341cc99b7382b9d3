"""The local dry run: the draft on mock nodes with synthetic data and the nodes' own rules."""

from __future__ import annotations

import json
import sys
import uuid

import pytest

from flame_lab import localtest
from flame_lab.draft import Draft
from flame_lab.errors import DraftError, StarError
from flame_lab.privacy import DisclosurePolicy, NodePolicy, dump_policy
from tests.kernel.conftest import HELPERS_CELL, MEAN_AGE_CELL


def draft_of(entry: str = MEAN_AGE_CELL, helpers: str | None = HELPERS_CELL) -> Draft:
    draft = Draft()
    if helpers is not None:
        draft.add_cell("%%flame file helpers.py", helpers)
    draft.add_cell("%%flame", entry)
    return draft


def test_a_federated_mean_runs_on_mock_nodes_and_equals_the_pooled_mean():
    report = localtest.run_local_test(draft_of(), nodes=2)
    assert report.ok, report.to_text()
    data_nodes = [n for n in report.nodes if n.role == "default"]
    assert [n.name for n in data_nodes] == ["uk-aachen", "uk-koeln"]
    pooled_sum = sum(n.released[0]["sum"] for n in data_nodes)
    pooled_n = sum(n.released[0]["n"] for n in data_nodes)
    assert report.result == pytest.approx(pooled_sum / pooled_n, abs=1e-6)
    assert [n.records for n in data_nodes] == [d.released[0]["n"] for d in data_nodes]


def test_the_number_of_mock_nodes_follows_the_option():
    report = localtest.run_local_test(draft_of(), nodes=3)
    assert [n.name for n in report.nodes] == ["uk-aachen", "uk-koeln", "uk-bonn", "aggregator"]


def test_mock_nodes_take_the_names_and_rules_of_an_initialised_sandbox(tmp_path):
    home = tmp_path / "sandbox"
    (home / "nodes" / "uk-koeln").mkdir(parents=True)
    (home / "sandbox.json").write_text(
        '{"nodes": [{"name": "uk-koeln", "type": "default"},'
        ' {"name": "aggregator", "type": "aggregator"}]}'
    )
    strict = NodePolicy(disclosure=DisclosurePolicy(min_records=100_000))
    dump_policy(strict, home / "nodes" / "uk-koeln" / "policy.toml")
    nodes = localtest.mock_nodes(home=home)
    assert [(n.name, n.role) for n in nodes] == [
        ("uk-koeln", "default"),
        ("aggregator", "aggregator"),
    ]
    assert nodes[0].policy.disclosure.min_records == 100_000


def _home(tmp_path, profile: str):
    """A sandbox folder whose two data nodes run ``profile``."""
    home = tmp_path / "sandbox"
    nodes = [("uk-aachen", "default"), ("uk-koeln", "default"), ("aggregator", "aggregator")]
    home.mkdir(parents=True)
    (home / "sandbox.json").write_text(
        json.dumps({"nodes": [{"name": n, "type": t} for n, t in nodes]})
    )
    for name, _ in nodes:
        (home / "nodes" / name).mkdir(parents=True)
        dump_policy(NodePolicy(profile=profile), home / "nodes" / name / "policy.toml")
    return home


LEAKY = MEAN_AGE_CELL.replace(
    'return {"sum": sum(ages), "n": len(ages)}',
    'return {"sum": sum(ages), "n": len(ages), "ages": ages}',
)
RARE = MEAN_AGE_CELL.replace(
    'return {"sum": sum(ages), "n": len(ages)}',
    'return {"sum": sum(ages), "n": len(ages), "rare": 2}',
)


def test_a_strict_node_refusing_row_level_data_is_reported_and_nothing_is_released(tmp_path):
    report = localtest.run_local_test(draft_of(LEAKY), home=_home(tmp_path, "strict"))
    assert not report.ok
    refused = [n for n in report.nodes if n.refused]
    assert refused and all(n.released == [] for n in refused)
    assert "rule row-level" in refused[0].refused and refused[0].name in refused[0].refused
    assert "REFUSED" in report.to_text()


def test_a_flame_node_releases_rows_as_flame_would_and_the_lint_says_strict_would_refuse(
    tmp_path,
):
    report = localtest.run_local_test(draft_of(LEAKY), home=_home(tmp_path, "flame"))
    assert report.ok  # as on a real FLAME node: approval is the control
    assert any("rule row-level" in line for line in report.lint)
    assert 'a strict node would refuse a message at result["ages"]: ' in report.to_text()


def test_a_small_count_leaves_a_flame_node_unaltered_and_is_linted_with_its_path(tmp_path):
    report = localtest.run_local_test(draft_of(RARE), home=_home(tmp_path, "flame"))
    released = report.nodes[0].released[0]
    assert released["rare"] == 2  # never silently replaced: honest aggregators keep working
    assert any('result["rare"]' in f and "small-count" in f for f in report.nodes[0].lint)
    strict = localtest.run_local_test(draft_of(RARE), home=_home(tmp_path / "s", "strict"))
    assert not strict.ok and "small-count" in strict.nodes[0].refused


def test_an_error_in_the_analysis_is_shown_with_the_cells_own_line_numbers():
    broken = MEAN_AGE_CELL.replace("ages = [float", "ages = [undefined_name + float")
    report = localtest.run_local_test(draft_of(broken), nodes=2)
    failed = next(n for n in report.nodes if n.error)
    line = (
        1
        + broken.splitlines().index(
            next(ln for ln in broken.splitlines() if "undefined_name" in ln)
        )
        + 1
    )
    assert f"analysis.py, line {line}, in analysis_method" in failed.error
    assert "NameError: name 'undefined_name' is not defined" in failed.error
    assert "flame_lab" not in failed.error
    assert report.failure.startswith("node ")


def test_a_draft_that_waits_forever_ends_at_the_timeout_with_a_clear_failure():
    stuck = MEAN_AGE_CELL.replace(
        "    def analysis_method(self, data, aggregator_results):\n",
        "    def analysis_method(self, data, aggregator_results):\n"
        "        self.flame.await_messages(['nobody'], message_category='never')\n",
    )
    report = localtest.run_local_test(draft_of(stuck), nodes=1, timeout=1.0)
    assert not report.ok


def test_a_draft_without_an_entrypoint_is_refused_before_anything_runs():
    with pytest.raises(DraftError, match="no entrypoint"):
        localtest.run_local_test(Draft())


def test_fewer_than_one_mock_node_is_a_usage_error():
    with pytest.raises(StarError, match="at least one data node"):
        localtest.mock_nodes(0)


def test_defining_a_cell_stops_at_star_model_and_keeps_its_classes():
    namespace: dict = {}
    draft = draft_of()
    with localtest.draft_modules(draft):
        reached = localtest.define(draft.sources["analysis.py"], namespace)
    assert reached
    assert {"AgeSum", "MeanAge"} <= set(namespace)


def test_draft_modules_are_importable_only_inside_the_block_and_always_fresh():
    draft = draft_of()
    with localtest.draft_modules(draft):
        import helpers  # served from the draft

        assert helpers.pooled_mean([{"sum": 4, "n": 2}]) == 2
    assert "helpers" not in sys.modules
    draft.add_cell("%%flame file helpers.py", "def pooled_mean(parts):\n    return -1\n")
    with localtest.draft_modules(draft):
        import helpers  # a fresh import: the newest cell

        assert helpers.pooled_mean([]) == -1


def test_a_syntax_error_names_the_cell_line_counting_the_magic_line():
    draft = Draft()
    draft.add_cell("%%flame", "x = 1\ny = (\n")
    with pytest.raises(DraftError, match=r"line 3: '\(' was never closed"):
        localtest.compile_source(draft.sources["analysis.py"])


FHIR_COUNT_CELL = """\
from flame.star import StarAggregator, StarAnalyzer, StarModel


class CountPatients(StarAnalyzer):
    def __init__(self, flame):
        super().__init__(flame)

    def analysis_method(self, data, aggregator_results):
        return data[0]["Patient?_summary=count"]["total"]


class Total(StarAggregator):
    def __init__(self, flame):
        super().__init__(flame)

    def aggregation_method(self, analysis_results):
        return sum(analysis_results)

    def has_converged(self, result, last_result):
        return True


StarModel(
    analyzer=CountPatients,
    aggregator=Total,
    data_type="fhir",
    query=["Patient?_summary=count"],
    output_type="pickle",
)
"""


def test_fhir_analyses_get_search_bundles_from_each_mock_nodes_fhir_store():
    report = localtest.run_local_test(draft_of(FHIR_COUNT_CELL, helpers=None), nodes=2)
    assert report.ok, report.to_text()
    data_nodes = [n for n in report.nodes if n.role == "default"]
    assert [n.released for n in data_nodes] == [[n.records] for n in data_nodes]
    assert report.result == sum(n.records for n in data_nodes)


PRINTING = MEAN_AGE_CELL.replace(
    'return {"sum": sum(ages), "n": len(ages)}',
    'print(ages)\n        return {"sum": sum(ages), "n": len(ages)}',
)


def test_printed_rows_are_linted_on_flame_nodes_and_refused_by_strict_ones(tmp_path, capsys):
    report = localtest.run_local_test(draft_of(PRINTING), home=_home(tmp_path, "flame"))
    assert report.ok
    assert any("a line of stdout" in f and "rule run-total" in f for f in report.lint)
    assert "[" in capsys.readouterr().out  # still shown to the researcher, as before
    strict = localtest.run_local_test(draft_of(PRINTING), home=_home(tmp_path / "s", "strict"))
    assert not strict.ok and not strict.has_result
    assert "a line of stdout" in strict.nodes[0].refused


def test_long_releases_are_shown_whole_up_to_a_bound_that_says_how_much_is_left_out():
    shown = localtest.shown_value({"ages": list(range(1000, 1050)), "n": 50, "note": "x" * 500})
    assert "..." not in shown
    assert shown.startswith("{'ages': [1000, 1001,") and "1019, (+30 more items)]" in shown
    assert "'n': 50" in shown and "(+300 more characters)" in shown
    assert localtest.shown_value({"sum": 1.5, "n": (3,)}) == repr({"sum": 1.5, "n": (3,)})

    report = localtest.run_local_test(draft_of(LEAKY), nodes=2)
    text = report.to_text()
    assert "..." not in text.replace("... and", "")
    released = report.nodes[0].released[0]["ages"]
    assert f"(+{len(released) - 20} more items)" in text


ID_CELL = MEAN_AGE_CELL.replace(
    'return {"sum": sum(ages), "n": len(ages)}',
    'return {"sum": sum(ages), "n": len(ages), "me": self.flame.get_id()}',
)


def test_the_analysis_sees_node_ids_as_on_real_nodes_and_the_report_names_both(tmp_path):
    report = localtest.run_local_test(draft_of(ID_CELL), nodes=2)
    assert report.ok, report.to_text()
    text = report.to_text()
    for node in report.nodes:
        assert str(uuid.UUID(node.node_id)) == node.node_id  # a hub id, not the name
        assert f"{node.name} ({node.node_id})" in text
    data_nodes = [n for n in report.nodes if n.role == "default"]
    assert [n.released[0]["me"] for n in data_nodes] == [n.node_id for n in data_nodes]

    home = tmp_path / "sandbox"
    home.mkdir()
    nodes = [("11111111-1111-4111-8111-111111111111", "uk-koeln", "default")]
    nodes.append(("22222222-2222-4222-8222-222222222222", "aggregator", "aggregator"))
    (home / "sandbox.json").write_text(
        json.dumps({"nodes": [{"id": i, "name": n, "type": t} for i, n, t in nodes]})
    )
    report = localtest.run_local_test(draft_of(ID_CELL), home=home)
    assert report.ok, report.to_text()
    assert [(n.node_id, n.name) for n in report.nodes] == [(i, n) for i, n, _ in nodes]
    assert report.nodes[0].released[0]["me"] == nodes[0][0]  # the sandbox's own node id


def _home_with(tmp_path, policy: NodePolicy):
    home = _home(tmp_path, "flame")
    for folder in (home / "nodes").iterdir():
        dump_policy(policy, folder / "policy.toml")
    return home


def _returning(expression: str) -> Draft:
    return draft_of(
        MEAN_AGE_CELL.replace(
            "return round(pooled_mean(analysis_results), 6)", f"return {expression}"
        )
    )


def test_a_final_result_above_the_release_bound_is_refused_here_as_on_a_node(tmp_path):
    from flame_lab.limits import ResourceLimits, frame_bytes_for

    policy = NodePolicy(
        disclosure=DisclosurePolicy(max_release_bytes=100_000),
        limits=ResourceLimits(max_frame_bytes=frame_bytes_for(100_000)),
    )
    home = _home_with(tmp_path, policy)
    fits = localtest.run_local_test(_returning('"x" * 100_000'), home=home)
    assert fits.ok and len(fits.result) == 100_000, fits.to_text()
    over = localtest.run_local_test(_returning('"x" * 100_001'), home=home)
    assert not over.ok
    assert "is 100001 bytes; this node lets at most 100000 leave" in over.to_text()


def test_a_call_larger_than_a_nodes_frame_fails_here_as_it_would_there(tmp_path):
    from flame_lab.limits import ResourceLimits

    policy = NodePolicy(
        disclosure=DisclosurePolicy(max_release_bytes=0),  # only the frame bounds it
        limits=ResourceLimits(max_frame_bytes=200_000),
    )
    # 60 000 control characters: 60 kB as text, 360 kB as the JSON a node reads (\\u0001)
    report = localtest.run_local_test(
        _returning('"\\x01" * 60_000'), home=_home_with(tmp_path, policy)
    )
    assert not report.ok
    text = report.to_text()
    assert "this node reads at most 200000 (limits.max_frame_bytes)" in text, text
