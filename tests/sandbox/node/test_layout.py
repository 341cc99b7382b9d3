"""A node's folder: the key's passphrase is kept apart from the key; pins and hub identity."""

from __future__ import annotations

import json
import stat

import pytest

from flame_lab.errors import SandboxError
from flame_lab.sandbox.node.layout import NodeFolder, PeerPin
from flame_lab.security.keys import NodeIdentity


def test_an_old_sandboxs_passphrase_moves_out_of_secrets_json(tmp_path):
    folder = NodeFolder.of(tmp_path, "uk-aachen")
    folder.root.mkdir(parents=True)
    folder.secrets.write_text(json.dumps({"nodeId": "n", "identityPassphrase": "s3cret"}))
    folder.move_passphrase_out()
    assert json.loads(folder.secrets.read_text()) == {"nodeId": "n"}
    assert folder.read_passphrase() == "s3cret"
    assert not folder.passphrase_file.is_relative_to(folder.root)
    assert stat.S_IMODE(folder.passphrase_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.secrets.stat().st_mode) == 0o600
    folder.move_passphrase_out()  # again: nothing left to move, nothing lost
    assert folder.read_passphrase() == "s3cret"


def test_a_missing_passphrase_or_hub_identity_is_a_clear_error(tmp_path):
    folder = NodeFolder.of(tmp_path, "uk-koeln")
    folder.root.mkdir(parents=True)
    with pytest.raises(SandboxError, match="uk-koeln's key passphrase"):
        folder.read_passphrase()
    with pytest.raises(SandboxError, match="no hub identity"):
        folder.hub_identity()


def test_pins_round_trip_and_a_damaged_pin_is_left_out(tmp_path):
    folder = NodeFolder.of(tmp_path, "aggregator")
    folder.root.mkdir(parents=True)
    peer = NodeIdentity.generate().public
    folder.write_pins([PeerPin("id-1", "uk-aachen", peer)])
    assert folder.peer_pins()["id-1"].identity.key_id == peer.key_id
    data = json.loads(folder.peers.read_text())
    data["id-2"] = {"name": "uk-koeln", "identity": {"publicKey": "00"}}
    folder.peers.write_text(json.dumps(data))
    assert set(folder.peer_pins()) == {"id-1"}
