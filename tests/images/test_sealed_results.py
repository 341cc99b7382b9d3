"""sealed=True: the analysis's own aggregator seals the result, so that a hub whose nodes store
results as written (a real FLAME node; here a sandbox aggregator with node_sealing = false)
holds only ciphertext in its RESULT bucket; the researcher opens it, nobody else can."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

import flame_lab as fl
from flame_lab.errors import FlameLabError, ImageError, NotARecipient, TamperedResult
from flame_lab.privacy import NodePolicy, dump_policy, load_policy
from flame_lab.sandbox.node import synthetic
from flame_lab.sandbox.node.layout import NodeFolder
from flame_lab.security import envelope, keys, selfseal

MEAN_AGE = Path(fl.__file__).parent / "examples" / "mean_age.py"
WAIT = 120


@pytest.fixture
def fed(in_sandbox):
    return fl.connect()


@pytest.fixture
def flame_like_aggregator(in_sandbox):
    """The aggregator behaves as a real FLAME node: it stores the result as written."""
    path = NodeFolder.of(in_sandbox / "sandbox", "aggregator").policy
    old = load_policy(path)
    dump_policy(NodePolicy.from_dict({**old.to_dict(), "node_sealing": False}), path)
    yield
    dump_policy(old, path)


def _draft() -> fl.Draft:
    return fl.Draft.from_files({"analysis.py": MEAN_AGE.read_text()}, entrypoint="analysis.py")


def _expected_mean(fed) -> dict:
    ages = []
    for node in fed.nodes():
        if node.type == "default":
            table = synthetic.generate(node.name).tables["patients.csv"].decode()
            ages += [float(r["age"]) for r in csv.DictReader(io.StringIO(table))]
    return {"mean_age": sum(ages) / len(ages), "n": len(ages)}


def _submit_sealed(fed) -> fl.Analysis:
    run = fed.submit(
        _draft(), name="sealed by the analysis", master_image="python/flame-lab", sealed=True
    )
    run.wait(timeout=WAIT)
    return run


def test_on_a_flame_like_node_the_result_bucket_holds_only_ciphertext(fed, flame_like_aggregator):
    run = _submit_sealed(fed)
    assert run.record.analysis_sealed and run.record.entrypoint == selfseal.WRAPPER_NAME
    blobs = run._fetch_result_files()
    assert len(blobs) == 1
    name, data = blobs[0]
    assert name == "result-000"  # stored as written: no node envelope around it
    header = envelope.peek_header(data)
    assert header.node_id.startswith(selfseal.ORIGIN_PREFIX)
    assert header.bundle_hash == run.record.bundle_hash
    expected = _expected_mean(fed)
    for plaintext in (b"mean_age", json.dumps(expected).encode(), repr(expected["n"]).encode()):
        assert plaintext not in data
    # the researcher opens it
    result = run.result()
    assert result["n"] == expected["n"]
    assert result["mean_age"] == pytest.approx(expected["mean_age"])
    # someone else does not, even with the same bytes
    stranger = keys.Identity.generate()
    with pytest.raises(NotARecipient):
        fl.attach(run.id, fed).result(identity=stranger)


def test_a_hub_that_alters_or_replaces_the_stored_result_is_caught(fed, flame_like_aggregator):
    run = _submit_sealed(fed)
    (name, data), identity = run._fetch_result_files()[0], fl.federation.researcher_identity()
    fresh = fl.attach(run.id, fed)
    flipped = bytearray(data)
    flipped[-100] ^= 1
    with pytest.raises(TamperedResult):
        fresh._open([(name, bytes(flipped))], identity)
    with pytest.raises(TamperedResult, match="not sealed"):
        fresh._open([(name, b'{"mean_age": 1.0, "n": 5}')], identity)
    # a well-formed envelope of another analysis is refused too
    other = _submit_sealed(fed)
    with pytest.raises(TamperedResult, match="analysis id is"):
        fresh._open(other._fetch_result_files(), identity)


def test_a_sealing_node_seals_the_analysis_sealed_result_again_and_both_layers_open(fed):
    run = _submit_sealed(fed)
    ((name, data),) = run._fetch_result_files()
    assert name.endswith(".flres")
    assert not envelope.peek_header(data).node_id.startswith(selfseal.ORIGIN_PREFIX)
    assert run.result()["n"] == _expected_mean(fed)["n"]


def test_sealed_needs_an_image_with_flame_lab_and_refuses_node_side_dp(fed):
    with pytest.raises(ImageError, match="python/base lacks it"):
        fed.submit(_draft(), sealed=True, master_image="python/base")
    dp = _draft()
    dp.add("analysis.py", MEAN_AGE.read_text().replace("StarModel(", "StarLocalDPModel("))
    with pytest.raises(FlameLabError, match="StarLocalDPModel cannot be used with sealed"):
        fed.submit(dp, sealed=True, master_image="python/flame-lab")


def test_the_generated_entrypoint_cannot_be_shadowed():
    draft = fl.Draft.from_files({"analysis.py": "x", selfseal.WRAPPER_NAME: "y"})
    with pytest.raises(FlameLabError, match="already has a file"):
        selfseal.wrap(draft.files, "analysis.py")
