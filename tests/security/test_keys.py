"""Identities saved and loaded: round trips, public halves, passphrases, and no leaked secret."""

from __future__ import annotations

import base64
import getpass
import json
import logging
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from flame_lab.errors import KeyFileError, PassphraseError, WeakKdfParameters, WrongPassphrase
from flame_lab.security import keyfile, keys
from flame_lab.security.keys import (
    Identity,
    NodeIdentity,
    NodePublicIdentity,
    PublicIdentity,
    check_identity,
    get_passphrase,
    load_identity,
    load_node_identity,
    read_public,
    save_identity,
    save_node_identity,
)

PASSPHRASE = "Tr0ub4dor & 3 - not this one"
KDFS = ("scrypt", "argon2id")


def raw_private(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def node_scalar(identity: NodeIdentity) -> bytes:
    return identity.ecdh_key.private_numbers().private_value.to_bytes(32, "big")


def secret_forms(identity: Identity | NodeIdentity) -> list[str]:
    """Every spelling of the private key bytes that a leak could take, plus the passphrase."""
    if isinstance(identity, Identity):
        raws = [raw_private(identity.encryption_key), raw_private(identity.signing_key)]
    else:
        raws = [node_scalar(identity), raw_private(identity.signing_key)]
    forms = [PASSPHRASE]
    for raw in raws:
        forms += [raw.hex(), raw.hex().upper()]
        forms += [base64.b64encode(raw).decode().rstrip("=")]
        forms += [base64.urlsafe_b64encode(raw).decode().rstrip("=")]
    if isinstance(identity, NodeIdentity):
        forms.append(str(identity.ecdh_key.private_numbers().private_value))
    return forms


def assert_no_secret(text: str, identity: Identity | NodeIdentity) -> None:
    for form in secret_forms(identity):
        assert form not in text, "a secret leaked into output"


@pytest.fixture(scope="module")
def researcher_files(tmp_path_factory) -> dict[str, tuple[Identity, Path]]:
    """One researcher key file per KDF, written once for the module."""
    out = {}
    for kdf in KDFS:
        identity = Identity.generate()
        path = tmp_path_factory.mktemp(f"researcher-{kdf}") / "keys" / "identity.json"
        save_identity(path, identity, PASSPHRASE, kdf=kdf)
        out[kdf] = (identity, path)
    return out


@pytest.fixture(scope="module")
def node_files(tmp_path_factory) -> dict[str, tuple[NodeIdentity, Path]]:
    out = {}
    for kdf in KDFS:
        identity = NodeIdentity.generate()
        path = tmp_path_factory.mktemp(f"node-{kdf}") / "keys" / "node.json"
        save_node_identity(path, identity, PASSPHRASE, kdf=kdf)
        out[kdf] = (identity, path)
    return out


@pytest.fixture
def no_derivation(monkeypatch):
    def boom(*_args, **_kwargs):
        raise AssertionError("the KDF ran; no passphrase work was expected here")

    monkeypatch.setattr(keyfile, "derive_key", boom)


# -- round trips ---------------------------------------------------------------------------
@pytest.mark.parametrize("kdf", KDFS)
def test_researcher_identity_round_trips_with_the_same_private_keys(researcher_files, kdf):
    identity, path = researcher_files[kdf]
    loaded = load_identity(path, PASSPHRASE)
    assert raw_private(loaded.encryption_key) == raw_private(identity.encryption_key)
    assert raw_private(loaded.signing_key) == raw_private(identity.signing_key)
    assert loaded.key_id == identity.key_id


@pytest.mark.parametrize("kdf", KDFS)
def test_node_identity_round_trips_with_the_same_private_keys(node_files, kdf):
    identity, path = node_files[kdf]
    loaded = load_node_identity(path, PASSPHRASE)
    assert node_scalar(loaded) == node_scalar(identity)
    assert raw_private(loaded.signing_key) == raw_private(identity.signing_key)
    assert loaded.public.hub_public_key == identity.public.hub_public_key
    assert loaded.key_id == identity.key_id


@pytest.mark.parametrize("kdf", KDFS)
def test_kdf_choice_is_recorded_in_the_header(researcher_files, node_files, kdf):
    for _, path in (researcher_files[kdf], node_files[kdf]):
        assert keyfile.read_header(path).kdf["name"] == kdf
    assert json.loads(node_files[kdf][1].read_text())["header"]["kind"] == "node"


def test_argon2id_is_written_at_or_above_the_minimum(researcher_files):
    kdf = keyfile.read_header(researcher_files["argon2id"][1]).kdf
    assert kdf["memoryKiB"] >= 64 * 1024 and kdf["iterations"] >= 2


def test_node_file_is_not_loaded_as_a_researcher_identity(node_files, no_derivation):
    with pytest.raises(KeyFileError, match="node identity"):
        load_identity(node_files["scrypt"][1], PASSPHRASE)


def test_researcher_file_is_not_loaded_as_a_node_identity(researcher_files, no_derivation):
    with pytest.raises(KeyFileError, match="researcher identity"):
        load_node_identity(researcher_files["scrypt"][1], PASSPHRASE)


def test_private_keys_not_matching_the_header_are_refused(tmp_path):
    """A file whose header claims other public keys than its secret holds is corrupt."""
    claimed, actual = Identity.generate(), Identity.generate()
    path = tmp_path / "keys" / "identity.json"
    keyfile.write_keyfile(
        path,
        kind="researcher",
        public_keys=claimed.public.to_dict(),
        secret={
            "x25519": keys.b64(raw_private(actual.encryption_key)),
            "ed25519": keys.b64(raw_private(actual.signing_key)),
        },
        passphrase=PASSPHRASE,
    )
    with pytest.raises(KeyFileError, match="do not match"):
        load_identity(path, PASSPHRASE)


# -- public halves -------------------------------------------------------------------------
def test_read_public_needs_no_passphrase_for_a_researcher(researcher_files, no_derivation):
    identity, path = researcher_files["scrypt"]
    public = read_public(path)
    assert isinstance(public, PublicIdentity)
    assert public.to_dict() == identity.public.to_dict()


def test_read_public_needs_no_passphrase_for_a_node(node_files, no_derivation):
    identity, path = node_files["scrypt"]
    public = read_public(path)
    assert isinstance(public, NodePublicIdentity)
    assert public.to_dict() == identity.public.to_dict()


def test_exported_public_identity_is_accepted_by_from_dict(researcher_files, no_derivation):
    identity, path = researcher_files["argon2id"]
    exported = json.loads(json.dumps(read_public(path).to_dict()))
    assert PublicIdentity.from_dict(exported).key_id == identity.key_id


# -- check_identity ------------------------------------------------------------------------
def test_check_identity_signs_and_decrypts_with_a_loaded_identity(researcher_files):
    check_identity(load_identity(researcher_files["scrypt"][1], PASSPHRASE))


# -- get_passphrase ------------------------------------------------------------------------
def fake_getpass(monkeypatch, *answers: str) -> list[str]:
    prompts: list[str] = []
    queue = list(answers)

    def ask(prompt: str = "") -> str:
        prompts.append(prompt)
        if not queue:
            raise EOFError
        return queue.pop(0)

    monkeypatch.setattr(getpass, "getpass", ask)
    return prompts


def test_get_passphrase_prefers_the_environment(monkeypatch):
    prompts = fake_getpass(monkeypatch, "typed")
    monkeypatch.setenv("FLAME_LAB_PASSPHRASE", "from env")
    assert get_passphrase(confirm=True) == "from env"
    assert prompts == []


def test_get_passphrase_refuses_an_empty_environment_value(monkeypatch):
    monkeypatch.setenv("FLAME_LAB_PASSPHRASE", "")
    with pytest.raises(PassphraseError, match="empty"):
        get_passphrase()


def test_get_passphrase_asks_once_without_confirm(monkeypatch):
    prompts = fake_getpass(monkeypatch, "typed")
    assert get_passphrase("Unlock: ") == "typed"
    assert prompts == ["Unlock: "]


def test_get_passphrase_asks_twice_with_confirm(monkeypatch):
    prompts = fake_getpass(monkeypatch, "typed", "typed")
    assert get_passphrase(confirm=True) == "typed"
    assert len(prompts) == 2


def test_get_passphrase_refuses_two_different_entries(monkeypatch):
    fake_getpass(monkeypatch, "typed", "typo")
    with pytest.raises(PassphraseError, match="differ"):
        get_passphrase(confirm=True)


def test_get_passphrase_refuses_an_empty_entry(monkeypatch):
    fake_getpass(monkeypatch, "")
    with pytest.raises(PassphraseError, match="empty"):
        get_passphrase()


def test_get_passphrase_without_a_terminal_says_how_to_give_one(monkeypatch):
    fake_getpass(monkeypatch)
    with pytest.raises(PassphraseError) as info:
        get_passphrase()
    assert "FLAME_LAB_PASSPHRASE" in info.value.hint
    assert info.value.__cause__ is None and info.value.__suppress_context__


# -- no secret in any output ---------------------------------------------------------------
def test_no_secret_in_reprs_errors_logs_or_the_key_file(
    researcher_files, node_files, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    identity, path = researcher_files["scrypt"]
    node, node_path = node_files["scrypt"]
    loaded = load_identity(path, PASSPHRASE)
    loaded_node = load_node_identity(node_path, PASSPHRASE)
    for obj in (identity, loaded, node, loaded_node, read_public(path), read_public(node_path)):
        texts += [repr(obj), str(obj)]
    texts += [path.read_text(), node_path.read_text()]

    with pytest.raises(WrongPassphrase) as wrong:
        load_identity(path, PASSPHRASE + "!")
    texts += [str(wrong.value), repr(wrong.value), json.dumps(wrong.value.to_dict())]

    weak = json.loads(path.read_text())
    weak["header"]["kdf"]["n"] = 2**10
    weak_path = tmp_path / "weak.json"
    os.chmod(tmp_path, 0o700)
    weak_path.write_text(json.dumps(weak))
    os.chmod(weak_path, 0o600)
    with pytest.raises(WeakKdfParameters) as weak_exc:
        load_identity(weak_path, PASSPHRASE)
    texts += [str(weak_exc.value), repr(weak_exc.value)]

    texts.append(caplog.text)
    texts += [record.getMessage() for record in caplog.records]
    everything = "\n".join(texts)
    assert identity.key_id in everything  # the search covered real output
    assert_no_secret(everything, identity)
    assert_no_secret(everything, node)
