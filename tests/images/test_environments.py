"""Master-image stand-ins: an analysis that needs a package its image lacks fails in the
sandbox as on a real node, with the same error; the stand-in is built once and reused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import flame_lab as fl
from flame_lab.errors import AnalysisFailed, FlameLabError
from flame_lab.images import catalog as catalogs
from flame_lab.images.environments import environment_for
from flame_lab.privacy import NodePolicy, dump_policy, load_policy
from flame_lab.sandbox.node.layout import NodeFolder

MEAN_AGE = Path(fl.__file__).parent / "examples" / "mean_age.py"
PROBE = """
import importlib, json
found = {}
for name in ("json", "numpy", "pandas", "helper", "flame_lab"):
    try:
        importlib.import_module(name)
        found[name] = "ok"
    except ModuleNotFoundError as exc:
        found[name] = str(exc)
import flame.star  # the SDK is in every image
print(json.dumps(found))
"""


def _probe(env, tmp_path) -> dict:
    import json

    (tmp_path / "probe.py").write_text(PROBE)
    (tmp_path / "helper.py").write_text("X = 1\n")
    from flame_lab.star.compat import COMPAT_DIR

    done = subprocess.run(
        [str(env.python), str(tmp_path / "probe.py")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(COMPAT_DIR)},
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_stand_in_of_python_base_refuses_what_the_image_lacks(tmp_path):
    env = environment_for("python/base", tmp_path / "images")
    found = _probe(env, tmp_path)
    assert found["json"] == "ok" and found["helper"] == "ok"  # stdlib, the analysis's own
    assert found["numpy"] == "No module named 'numpy'"
    assert found["pandas"] == "No module named 'pandas'"
    assert found["flame_lab"] == "No module named 'flame_lab'"  # not in python/base


def test_the_stand_in_of_an_image_with_pandas_lets_it_and_its_dependencies_in(tmp_path):
    env = environment_for("python/ml", tmp_path / "images")
    found = _probe(env, tmp_path)
    assert found["pandas"] == found["numpy"] == "ok"
    assert found["flame_lab"] == "No module named 'flame_lab'"
    sealing = _probe(environment_for("python/flame-lab", tmp_path / "images"), tmp_path)
    assert sealing["flame_lab"] == "ok" and sealing["pandas"] == "No module named 'pandas'"


def test_what_the_stand_in_cannot_match_is_said(tmp_path):
    folder = tmp_path / "lists" / "hospital" / "odd"
    folder.mkdir(parents=True)
    (folder / "requirements.txt").write_text("numpy==0.0.1\nno-such-dist-xyz==1.0\n")
    catalog = catalogs.load(user_dir=tmp_path / "lists")
    env = environment_for("hospital/odd", tmp_path / "images", catalog)
    assert "no-such-dist-xyz==1.0 is in hospital/odd but not installed here" in env.notes
    assert any(
        n.startswith("numpy: hospital/odd pins ==0.0.1, this sandbox has") for n in env.notes
    )
    assert _probe(env, tmp_path)["numpy"] == "ok"  # the version here, but importable


def test_a_stand_in_is_built_once_and_rebuilt_when_its_list_changes(tmp_path):
    env = environment_for("python/base", tmp_path / "images")
    stamp = env.python.parent.parent.stat().st_ino
    again = environment_for("python/base", tmp_path / "images")
    assert again.root == env.root and again.root.stat().st_ino == stamp
    stored = next(env.root.glob("lib/python*/site-packages/image.json"))
    stored.write_text("{}")  # stale: the image's list differs
    rebuilt = environment_for("python/base", tmp_path / "images")
    assert rebuilt.root.stat().st_ino != stamp
    assert _probe(rebuilt, tmp_path)["pandas"] == "No module named 'pandas'"


@pytest.fixture
def image_nodes(in_sandbox):
    """Every sandbox node runs analyses in their master image's stand-in."""
    olds = {}
    for folder in sorted((in_sandbox / "sandbox" / "nodes").glob("*/")):
        path = NodeFolder(folder).policy
        olds[path] = load_policy(path)
        changed = {**olds[path].to_dict(), "image_environments": True}
        dump_policy(NodePolicy.from_dict(changed), path)
    yield
    for path, old in olds.items():
        dump_policy(old, path)


def test_in_the_sandbox_a_hidden_import_fails_as_on_the_real_node(in_sandbox, image_nodes):
    fed = fl.connect()
    # an import no static check sees: only running it in the image tells
    text = MEAN_AGE.read_text().replace(
        "        rows = list(", '        __import__("pan" + "das")\n        rows = list('
    )
    draft = fl.Draft.from_files({"analysis.py": text}, entrypoint="analysis.py")
    run = fed.submit(draft, name="hidden pandas on base", master_image="python/base")
    with pytest.raises(AnalysisFailed, match=r"ModuleNotFoundError at analysis\.py, line 14"):
        run.wait(timeout=120)
    lines = [line.message for line in run.logs()]
    assert any("No module named 'pandas'" in line for line in lines)
    assert any("running in python/base's stand-in" in line for line in lines)
    run = fed.submit(draft, name="hidden pandas on ml", master_image="python/ml")
    run.wait(timeout=120)
    assert run.result()["n"] > 0
    assert (in_sandbox / "sandbox" / "images" / "python_ml" / "bin" / "python").exists()


def test_sandbox_switches_set_every_nodes_policy(tmp_path):
    from flame_lab.sandbox import daemon

    home = tmp_path / "sandbox"
    daemon.initialise(home, 3)
    assert sorted(daemon.set_switch(home, "image_environments", True)) == [
        "aggregator",
        "uk-aachen",
        "uk-koeln",
    ]
    assert daemon.set_switch(home, "image_environments", True) == []  # already so
    daemon.set_switch(home, "node_sealing", False)
    for folder in sorted((home / "nodes").glob("*/")):
        policy = load_policy(NodeFolder(folder).policy)
        assert policy.image_environments and not policy.node_sealing
    with pytest.raises(FlameLabError, match="no node policy switch 'approval'"):
        daemon.set_switch(home, "approval", True)
