"""A signed bundle names the run it is for; a node refuses it anywhere else."""

from __future__ import annotations

import json

import pytest

from flame_lab.errors import BadBundleSignature, MalformedManifest
from flame_lab.security.bundle import (
    Binding,
    BindingMismatch,
    SignedBundle,
    build,
    check_binding,
    parse_manifest,
    verify,
)
from flame_lab.security.canonical import canonical_json
from flame_lab.security.keys import Identity

ALICE = Identity.generate()
BOUND = Binding("analysis-1", "project-1", ("node-b", "node-a", "agg"), "sandbox-x")
FILES = {"main.py": b"print('hi')\n"}


def signed(binding=BOUND) -> SignedBundle:
    return build(FILES, "main.py", ALICE, binding=binding)


def test_the_binding_is_signed_and_read_back_sorted():
    manifest = verify(signed(), [ALICE.public])
    assert manifest.binding == BOUND
    assert manifest.binding.node_ids == ("agg", "node-a", "node-b")
    check_binding(
        manifest, Binding("analysis-1", "project-1", ("agg", "node-a", "node-b"), "sandbox-x")
    )


@pytest.mark.parametrize(
    ("other", "words"),
    [
        (Binding("analysis-2", "project-1", BOUND.node_ids, "sandbox-x"), "signed for analysis"),
        (Binding("analysis-1", "project-2", BOUND.node_ids, "sandbox-x"), "signed for project"),
        (Binding("analysis-1", "project-1", BOUND.node_ids, "hub-evil"), "signed for hub"),
        (Binding("analysis-1", "project-1", ("agg", "node-a"), "sandbox-x"), "absent: node-b"),
        (
            Binding("analysis-1", "project-1", ("agg", "node-a", "node-b", "node-c"), "sandbox-x"),
            "not signed for: node-c",
        ),
    ],
)
def test_a_bundle_distributed_in_another_run_is_refused(other, words):
    manifest = verify(signed(), [ALICE.public])
    with pytest.raises(BindingMismatch, match=words):
        check_binding(manifest, other)


def test_a_node_also_knows_its_hub_by_its_configured_url_and_no_other():
    by_url = Binding("analysis-1", "project-1", BOUND.node_ids, "https://hub.example/core/")
    manifest = verify(signed(by_url), [ALICE.public])
    check_binding(manifest, BOUND, hub_aliases=("https://hub.example/core",))
    with pytest.raises(BindingMismatch, match="signed for hub"):
        check_binding(manifest, BOUND, hub_aliases=("https://other.example/core",))
    with pytest.raises(BindingMismatch, match="signed for hub"):
        check_binding(manifest, BOUND)


def test_an_unbound_bundle_is_refused():
    manifest = verify(build(FILES, "main.py", ALICE), [ALICE.public])
    with pytest.raises(BindingMismatch, match="not bound"):
        check_binding(manifest, BOUND)


def test_rewriting_the_binding_breaks_the_signature():
    bundle = signed()
    doc = json.loads(bundle.manifest_bytes)
    doc["binding"]["analysisId"] = "analysis-2"
    forged = SignedBundle(canonical_json(doc), bundle.signature, bundle.files)
    with pytest.raises(BadBundleSignature):
        verify(forged, [ALICE.public])


def test_a_malformed_binding_is_refused_before_any_key_is_tried():
    doc = json.loads(signed().manifest_bytes)
    doc["binding"]["nodeIds"] = ["z", "a"]
    with pytest.raises(MalformedManifest, match="sorted"):
        parse_manifest(canonical_json(doc))
    doc["binding"] = {"analysisId": "a"}
    with pytest.raises(MalformedManifest, match="exactly"):
        parse_manifest(canonical_json(doc))
