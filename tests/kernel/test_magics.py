"""`%flame` and `%%flame` driven through IPython's InteractiveShell, without a federation."""

from __future__ import annotations

import getpass
import json
import time

import pytest
from IPython.core.error import UsageError

from flame_lab import config
from flame_lab.errors import FlameLabError, HubError, KeyFileExists
from flame_lab.kernel import magics
from flame_lab.kernel.magics import VERBS
from tests.kernel.conftest import HELPERS_CELL, MEAN_AGE_CELL, PASSPHRASE, magics_of, run


def register_mean_age(shell):
    assert run(shell, "%%flame file helpers.py\n" + HELPERS_CELL).error is None
    ran = run(shell, "%%flame\n" + MEAN_AGE_CELL)
    assert ran.error is None, ran.stdout
    return ran


# -- loading -----------------------------------------------------------------------------------
def test_loading_prints_one_line_naming_the_federation_and_makes_flame_star_importable(shell):
    ran = run(shell, "%reload_ext flame_lab.kernel.magics")
    assert ran.stdout == "flame_lab 0.1.0: federation 'sandbox' (local) - %flame help\n"
    assert run(shell, "import flame.star; flame.star.StarModel").error is None


def test_loading_names_a_real_hub_profile_without_contacting_it(shell, flame_home):
    config.config_dir().mkdir(parents=True)
    config.config_file().write_text(
        'profile = "uk"\n[profiles.uk]\nhub_url = "https://hub.invalid"\n'
    )
    ran = run(shell, "%reload_ext flame_lab.kernel.magics")
    assert "federation 'uk' (https://hub.invalid/core)" in ran.stdout


def test_loading_does_not_start_the_sandbox(shell):
    run(shell, "%reload_ext flame_lab.kernel.magics")
    assert not config.sandbox_dir().exists()


# -- help and usage ----------------------------------------------------------------------------
def test_help_documents_every_verb(shell):
    text = run(shell, "%flame help").stdout
    for usage, _ in VERBS.values():
        assert usage in text
    doc = magics.FlameMagics.flame.__doc__
    for verb in VERBS:
        assert f"%flame {verb}" in doc


def test_the_magic_docstring_is_what_flame_question_mark_shows(shell):
    info = shell.object_inspect("%flame")
    assert "%flame submit" in info["docstring"] and "%%flame file helpers.py" in info["docstring"]


@pytest.mark.parametrize(
    ("line", "usage"),
    [
        ("%flame", "%flame needs a verb"),
        ("%flame frobnicate", "unknown verb 'frobnicate'"),
        ("%flame logs", "Usage: %flame logs ID [--node NAME] [--level L]"),
        ("%flame result", "Usage: %flame result ID"),
        ("%flame cancel", "Usage: %flame cancel ID"),
        ("%flame watch", "Usage: %flame watch ID [--wait]"),
        ("%flame approve abc", "Usage: %flame approve ID --node NAME [--reason TEXT]"),
        ("%flame reject", "Usage: %flame reject ID --node NAME [--reason TEXT]"),
        ("%flame test --nodes many", "Usage: %flame test [--nodes N]"),
        ("%flame submit --bogus", "Usage: %flame submit [--nodes a,b]"),
        ("%flame nodes extra", "Usage: %flame nodes"),
        ("%flame status a b", "Usage: %flame status [ID]"),
        ("%flame keys destroy", "Usage: %flame keys [init [--if-missing]]"),
        ("%flame connect --user", "Usage: %flame connect [sandbox | URL]"),
        ('%flame logs "unclosed', "cannot read the arguments"),
    ],
)
def test_wrong_arguments_raise_a_usage_error_with_the_right_usage(shell, line, usage):
    ran = run(shell, line)
    assert isinstance(ran.error, UsageError)
    assert usage in str(ran.error)
    assert "Traceback" not in ran.stdout


# -- flame_lab errors are message + hint, never a traceback --------------------------------------
def test_a_flame_lab_error_is_shown_as_message_and_hint_without_traceback(shell):
    ran = run(shell, "%flame connect https://hub.invalid")
    assert isinstance(ran.error, HubError)
    assert "HubError: no way to log in to the hub" in ran.stdout
    assert "Hint: Pass token= (e.g. from JupyterHub) or user=" in ran.stdout
    assert "Traceback" not in ran.stdout and "federation.py" not in ran.stdout


def test_errors_raised_by_user_code_calling_flame_lab_are_shown_the_same_way(shell):
    ran = run(shell, "from flame_lab.errors import NotFound\nraise NotFound('no such thing')")
    assert "NotFound: no such thing\nHint: Check the id" in ran.stdout
    assert "Traceback" not in ran.stdout


def test_the_error_text_is_kind_message_and_hint():
    error = FlameLabError("it broke", hint="Do this.")
    assert magics.error_text(error) == "FlameLabError: it broke\nHint: Do this."


def test_a_token_from_the_environment_never_appears_in_the_output(shell, monkeypatch):
    monkeypatch.setenv("MY_HUB_TOKEN", "s3cr3t-token-value")
    ran = run(shell, "%flame connect http://127.0.0.1:9 --token-env MY_HUB_TOKEN")
    assert isinstance(ran.error, FlameLabError)
    assert "s3cr3t-token-value" not in ran.stdout
    assert run(shell, "%flame connect http://127.0.0.1:9 --token-env UNSET_VAR").error is not None


# -- cells -------------------------------------------------------------------------------------
def test_an_entrypoint_cell_is_registered_and_its_classes_defined_but_nothing_runs(shell):
    ran = register_mean_age(shell)
    assert "Registered analysis.py as the entrypoint (2 file(s) in the draft)" in ran.stdout
    draft = magics_of(shell).session.draft
    assert draft.entrypoint == "analysis.py" and sorted(draft.sources) == [
        "analysis.py",
        "helpers.py",
    ]
    assert {"AgeSum", "MeanAge"} <= set(shell.user_ns)
    assert "_flame" not in shell.user_ns


def test_a_file_cell_becomes_an_importable_module_of_the_draft(shell):
    ran = run(shell, "%%flame file helpers.py\n" + HELPERS_CELL)
    assert ran.stdout == "Registered helpers.py in the draft (1 file(s)).\n"
    ran = run(shell, "import helpers\nhelpers.pooled_mean([{'sum': 6, 'n': 3}])")
    assert ran.result.result == 2


def test_running_a_cell_again_replaces_its_earlier_version(shell):
    register_mean_age(shell)
    run(shell, "%%flame file helpers.py\ndef pooled_mean(parts):\n    return 42\n")
    draft = magics_of(shell).session.draft
    assert "return 42" in draft.sources["helpers.py"].text and len(draft.sources) == 2
    assert run(shell, "import helpers\nhelpers.pooled_mean([])").result.result == 42


def test_a_syntax_error_is_reported_with_the_cells_own_line_number(shell):
    ran = run(shell, "%%flame\nx = 1\nif x\n    pass\n")
    assert "DraftError: syntax error in analysis.py (cell" in ran.stdout
    assert "line 3: expected ':'" in ran.stdout
    assert "analysis.py" not in magics_of(shell).session.draft.sources


def test_an_error_while_defining_shows_only_the_authors_frames(shell):
    ran = run(shell, "%%flame\nimport math\n\nvalue = math.sqrt(-1)\n")
    assert "analysis.py (cell" in ran.stdout and "line 4" in ran.stdout
    assert "ValueError: math domain error" in ran.stdout
    assert "localtest.py" not in ran.stdout


def test_a_bad_file_cell_header_is_a_draft_error_with_a_hint(shell):
    ran = run(shell, "%%flame file ../escape.py\nx = 1\n")
    assert "DraftError: '../escape.py' is not a usable module path" in ran.stdout
    assert "Hint: Use a relative path ending in .py" in ran.stdout


# -- local test --------------------------------------------------------------------------------
def test_local_test_shows_what_each_mock_node_would_release_and_the_result(shell):
    register_mean_age(shell)
    ran = run(shell, "%flame test --nodes 2")
    assert ran.error is None, ran.stdout
    ids = {n.name: n.node_id for n in shell.user_ns["_flame_test"].nodes}
    head = f"uk-aachen ({ids['uk-aachen']}): data node, 655 records, profile flame"
    assert head + "\n  releases: {'sum':" in ran.stdout
    assert f"aggregator ({ids['aggregator']}): aggregator, profile flame" in ran.stdout
    assert "Result: " in ran.stdout
    assert shell.user_ns["_flame_test"].ok


def test_local_test_of_a_leaky_analysis_shows_what_a_strict_node_would_refuse(shell):
    run(shell, "%%flame file helpers.py\n" + HELPERS_CELL)
    leaky = MEAN_AGE_CELL.replace(
        'return {"sum": sum(ages), "n": len(ages)}',
        'return {"sum": sum(ages), "n": len(ages), "ages": ages}',
    )
    run(shell, "%%flame\n" + leaky)
    ran = run(shell, "%flame test --nodes 1")  # flame nodes: it runs, and the lint says why not
    assert 'a strict node would refuse a message at result["ages"]' in ran.stdout
    assert "rule row-level" in ran.stdout and "Privacy lint: " in ran.stdout


def test_local_test_without_a_draft_says_how_to_start_one(shell):
    ran = run(shell, "%flame test")
    assert "DraftError: the draft has no entrypoint 'analysis.py'" in ran.stdout
    assert "Hint: Write the analysis in a cell starting with `%%flame`." in ran.stdout


# -- keys --------------------------------------------------------------------------------------
def test_keys_without_an_identity_says_where_it_belongs_and_how_to_create_it(shell):
    text = run(shell, "%flame keys").stdout
    assert str(config.identity_file()) in text and "%flame keys init" in text


def test_keys_init_asks_the_passphrase_twice_and_never_shows_it(shell, monkeypatch):
    asked: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        asked.append(prompt)
        return PASSPHRASE

    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    started = time.monotonic()
    ran = run(shell, "%flame keys init")
    assert ran.error is None, ran.stdout
    assert len(asked) == 2 and time.monotonic() - started < 60
    assert "Created identity" in ran.stdout and PASSPHRASE not in ran.stdout
    assert json.loads(config.identity_file().read_text())  # a key file, written
    text = run(shell, "%flame keys").stdout
    assert "Key id:" in text and str(config.identity_file()) in text
    assert "private" not in text.lower()
    again = run(shell, "%flame keys init")
    assert isinstance(again.error, KeyFileExists)
    assert run(shell, "%flame keys init --if-missing").error is None


def test_approve_and_reject_refuse_to_act_on_a_real_hub(shell):
    class RealHub:
        name = "uk-hub"
        is_sandbox = False

    magics_of(shell).session.federation = RealHub()
    for verb in ("approve", "reject"):
        ran = run(shell, f"%flame {verb} an-1 --node uk-aachen")
        assert f"SandboxError: `%flame {verb}` acts as a sandbox node's admin" in ran.stdout
        assert "Hint: On a real hub the node's own admin decides" in ran.stdout


def test_a_broken_cell_takes_its_earlier_version_out_of_the_draft_and_names_its_cell(shell):
    assert run(shell, "%%flame\nx = 1\n").error is None
    number = shell.execution_count
    ran = run(shell, "%%flame\nx = (\n")
    assert f"analysis.py (cell [{number}])" in ran.stdout  # the number the notebook shows
    assert "earlier version of analysis.py was taken out of the draft" in ran.stdout
    assert "analysis.py" not in magics_of(shell).session.draft.sources


def test_local_test_says_which_master_images_fit_and_refuses_one_that_lacks_a_module(shell):
    register_mean_age(shell)
    ran = run(shell, "%flame test --nodes 1")
    assert ran.error is None, ran.stdout
    assert "Master image: needs only the standard library and flame" in ran.stdout
    assert "known images that fit: python/base" in ran.stdout
    line = next(ln for ln in ran.stdout.splitlines() if "known images that fit" in ln)
    assert not line.endswith("...") and line.endswith(" more)")  # counted, never cut
    run(shell, "%%flame\nimport numpy\n" + MEAN_AGE_CELL)
    ran = run(shell, "%flame test --nodes 1 --image python/base")
    assert "ImageError: the draft does not fit master image python/base: lacks numpy" in ran.stdout
    assert "Hint: Choose an image that has it: python/ml" in ran.stdout
