"""The key file format: private on disk, bound header, strong KDF, clear refusals."""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
from pathlib import Path

import pytest

from flame_lab.errors import (
    InsecurePermissions,
    KeyFileError,
    KeyFileExists,
    KeyFileMissing,
    PassphraseError,
    UnsupportedVersion,
    WeakKdfParameters,
    WrongPassphrase,
)
from flame_lab.security import keyfile
from flame_lab.security.keys import Identity, load_identity, save_identity

PASSPHRASE = "correct horse battery staple"
PUBLIC = Identity.generate().public.to_dict()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def private_folder(parent: Path, name: str = "keys") -> Path:
    folder = parent / name
    folder.mkdir()
    os.chmod(folder, 0o700)
    return folder


def write_private(folder: Path, text: str | bytes, name: str = "identity.json") -> Path:
    """A file at mode 0600, as a legitimate key file would be."""
    path = folder / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(text.encode() if isinstance(text, str) else text)
    return path


def handmade(
    *,
    kdf: dict | None = None,
    version: object = 1,
    kind: str = "researcher",
    aead: dict | None = None,
) -> dict:
    """A key file built by hand; the ciphertext is random (loading must stop before it)."""
    return {
        "header": {
            "version": version,
            "kind": kind,
            "kdf": kdf
            if kdf is not None
            else {"name": "scrypt", "n": 2**17, "r": 8, "p": 1, "salt": b64(bytes(16))},
            "aead": aead or {"name": "AES-256-GCM", "nonce": b64(bytes(12))},
            "publicKeys": PUBLIC,
            "keyId": PUBLIC["keyId"],
            "created": "2026-01-01T00:00:00Z",
        },
        "ciphertext": b64(secrets.token_bytes(80)),
    }


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Identity, Path]:
    """One real key file for the whole module (scrypt at its minimum costs ~0.4 s)."""
    identity = Identity.generate()
    path = tmp_path_factory.mktemp("saved") / "keys" / "identity.json"
    save_identity(path, identity, PASSPHRASE)
    return identity, path


@pytest.fixture
def no_derivation(monkeypatch):
    """Fail the test if anything reaches the expensive key derivation."""

    def boom(*_args, **_kwargs):
        raise AssertionError("the KDF ran; the file should have been refused before it")

    monkeypatch.setattr(keyfile, "derive_key", boom)


@pytest.fixture
def folder(tmp_path) -> Path:
    return private_folder(tmp_path)


def copy_of(saved_path: Path, folder: Path, edit=None) -> Path:
    doc = json.loads(saved_path.read_text())
    if edit is not None:
        edit(doc)
    return write_private(folder, json.dumps(doc))


# -- writing -------------------------------------------------------------------------------
def test_save_creates_the_file_at_0600_in_a_new_0700_folder(saved):
    _, path = saved
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_atomic_write_leaves_no_temp_file_behind(saved):
    _, path = saved
    assert sorted(os.listdir(path.parent)) == ["identity.json"]


def test_save_refuses_to_overwrite_an_existing_file(folder, no_derivation):
    path = write_private(folder, "precious")
    with pytest.raises(KeyFileExists):
        save_identity(path, Identity.generate(), PASSPHRASE)
    assert path.read_text() == "precious"


def test_final_link_never_clobbers_a_file_that_appeared_meanwhile(folder):
    path = write_private(folder, "precious")
    with pytest.raises(KeyFileExists):
        keyfile._write_new(path, b"new content")
    assert path.read_text() == "precious"
    assert os.listdir(folder) == ["identity.json"], "the temp file must be removed"


def test_save_refuses_an_existing_group_readable_folder(tmp_path, no_derivation):
    loose = tmp_path / "loose"
    loose.mkdir()
    os.chmod(loose, 0o750)  # noqa: S103 (the insecure mode under test)
    with pytest.raises(InsecurePermissions) as info:
        save_identity(loose / "identity.json", Identity.generate(), PASSPHRASE)
    assert "chmod 700" in info.value.hint
    assert os.listdir(loose) == []


def test_save_refuses_an_empty_passphrase(folder, no_derivation):
    with pytest.raises(PassphraseError):
        save_identity(folder / "identity.json", Identity.generate(), "")
    assert os.listdir(folder) == []


def test_save_refuses_an_unknown_kdf(folder, no_derivation):
    with pytest.raises(KeyFileError, match="bcrypt"):
        save_identity(folder / "identity.json", Identity.generate(), PASSPHRASE, kdf="bcrypt")


def test_written_header_is_versioned_and_carries_public_keys_and_fresh_salt(saved):
    identity, path = saved
    header = json.loads(path.read_text())["header"]
    assert header["version"] == 1
    assert header["kind"] == "researcher"
    assert header["kdf"]["name"] == "scrypt"
    assert header["kdf"]["n"] >= 2**17 and header["kdf"]["r"] >= 8 and header["kdf"]["p"] == 1
    assert len(base64.urlsafe_b64decode(header["kdf"]["salt"] + "==")) >= 16
    assert header["publicKeys"] == identity.public.to_dict()
    assert header["keyId"] == identity.key_id
    assert header["created"].endswith("Z")


# -- permissions on load -------------------------------------------------------------------
def test_load_refuses_a_group_readable_file(saved, folder, no_derivation):
    path = copy_of(saved[1], folder)
    os.chmod(path, 0o640)
    with pytest.raises(InsecurePermissions) as info:
        load_identity(path, PASSPHRASE)
    assert "0640" in info.value.message
    assert "chmod 600" in info.value.hint


def test_load_refuses_a_world_readable_folder(saved, folder, no_derivation):
    path = copy_of(saved[1], folder)
    os.chmod(folder, 0o755)  # noqa: S103 (the insecure mode under test)
    with pytest.raises(InsecurePermissions) as info:
        load_identity(path, PASSPHRASE)
    assert "chmod 700" in info.value.hint


def test_load_refuses_a_symlink(saved, folder, no_derivation):
    link = folder / "link.json"
    link.symlink_to(saved[1])
    with pytest.raises(KeyFileError):
        load_identity(link, PASSPHRASE)


def test_missing_file_is_reported_as_missing(folder):
    with pytest.raises(KeyFileMissing):
        load_identity(folder / "nothing.json", PASSPHRASE)
    with pytest.raises(KeyFileMissing):
        load_identity(folder / "no-folder" / "nothing.json", PASSPHRASE)


# -- passphrase and tampering --------------------------------------------------------------
def test_wrong_passphrase_is_a_clear_error_without_a_traceback_chain(saved):
    with pytest.raises(WrongPassphrase) as info:
        load_identity(saved[1], "not the passphrase")
    exc = info.value
    assert "passphrase is wrong" in exc.message
    assert exc.__cause__ is None and exc.__suppress_context__


def test_swapped_public_key_in_header_fails_to_load(saved, folder):
    other = Identity.generate().public.to_dict()

    def swap(doc):
        doc["header"]["publicKeys"] = other
        doc["header"]["keyId"] = other["keyId"]

    with pytest.raises(WrongPassphrase):
        load_identity(copy_of(saved[1], folder, swap), PASSPHRASE)


def test_changed_created_time_in_header_fails_to_load(saved, folder):
    def backdate(doc):
        doc["header"]["created"] = "2000-01-01T00:00:00Z"

    with pytest.raises(WrongPassphrase):
        load_identity(copy_of(saved[1], folder, backdate), PASSPHRASE)


def test_tampered_ciphertext_fails_to_load(saved, folder):
    def flip(doc):
        raw = bytearray(base64.urlsafe_b64decode(doc["ciphertext"] + "=="))
        raw[5] ^= 0x01
        doc["ciphertext"] = b64(bytes(raw))

    with pytest.raises(WrongPassphrase):
        load_identity(copy_of(saved[1], folder, flip), PASSPHRASE)


# -- refused before any derivation ---------------------------------------------------------
def test_weak_scrypt_n_is_refused_before_derivation(folder, no_derivation):
    kdf = {"name": "scrypt", "n": 2**16, "r": 8, "p": 1, "salt": b64(bytes(16))}
    path = write_private(folder, json.dumps(handmade(kdf=kdf)))
    with pytest.raises(WeakKdfParameters, match="n=65536"):
        load_identity(path, PASSPHRASE)


def test_weak_scrypt_r_is_refused_before_derivation(folder, no_derivation):
    kdf = {"name": "scrypt", "n": 2**17, "r": 4, "p": 1, "salt": b64(bytes(16))}
    path = write_private(folder, json.dumps(handmade(kdf=kdf)))
    with pytest.raises(WeakKdfParameters, match="r=4"):
        load_identity(path, PASSPHRASE)


def test_weak_argon2_memory_is_refused_before_derivation(folder, no_derivation):
    kdf = {
        "name": "argon2id",
        "memoryKiB": 32 * 1024,
        "iterations": 3,
        "lanes": 4,
        "salt": b64(bytes(16)),
    }
    path = write_private(folder, json.dumps(handmade(kdf=kdf)))
    with pytest.raises(WeakKdfParameters, match="memory"):
        load_identity(path, PASSPHRASE)


def test_weak_argon2_iterations_are_refused_before_derivation(folder, no_derivation):
    kdf = {
        "name": "argon2id",
        "memoryKiB": 64 * 1024,
        "iterations": 1,
        "lanes": 4,
        "salt": b64(bytes(16)),
    }
    path = write_private(folder, json.dumps(handmade(kdf=kdf)))
    with pytest.raises(WeakKdfParameters, match="iterations=1"):
        load_identity(path, PASSPHRASE)


def test_short_salt_is_refused_before_derivation(folder, no_derivation):
    kdf = {"name": "scrypt", "n": 2**17, "r": 8, "p": 1, "salt": b64(bytes(8))}
    path = write_private(folder, json.dumps(handmade(kdf=kdf)))
    with pytest.raises(WeakKdfParameters, match="salt of 8 bytes"):
        load_identity(path, PASSPHRASE)


def test_unknown_version_is_refused(folder, no_derivation):
    path = write_private(folder, json.dumps(handmade(version=2)))
    with pytest.raises(UnsupportedVersion, match="version 2"):
        load_identity(path, PASSPHRASE)


def test_unknown_kind_is_refused(folder, no_derivation):
    path = write_private(folder, json.dumps(handmade(kind="robot")))
    with pytest.raises(UnsupportedVersion, match="robot"):
        load_identity(path, PASSPHRASE)


def test_unknown_kdf_is_refused(folder, no_derivation):
    kdf = {"name": "pbkdf2", "iterations": 10**6, "salt": b64(bytes(16))}
    path = write_private(folder, json.dumps(handmade(kdf=kdf)))
    with pytest.raises(UnsupportedVersion, match="pbkdf2"):
        load_identity(path, PASSPHRASE)


def test_unknown_cipher_is_refused(folder, no_derivation):
    path = write_private(folder, json.dumps(handmade(aead={"name": "ROT13", "nonce": "AA"})))
    with pytest.raises(UnsupportedVersion, match="cipher"):
        load_identity(path, PASSPHRASE)


def _with_header(**changes) -> str:
    doc = handmade()
    doc["header"].update(changes)
    return json.dumps(doc)


def _scrypt(**changes) -> dict:
    return {"name": "scrypt", "n": 2**17, "r": 8, "p": 1, "salt": b64(bytes(16)), **changes}


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("not json {", id="not-json"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param("[]", id="not-an-object"),
        pytest.param(json.dumps({"header": handmade()["header"]}), id="no-ciphertext"),
        pytest.param(json.dumps({**handmade(), "extra": 1}), id="extra-top-level-field"),
        pytest.param(_with_header(comment="hi"), id="extra-header-field"),
        pytest.param(_with_header(keyId="0" * 32), id="key-id-not-matching-public-keys"),
        pytest.param(_with_header(created=1.5), id="float-in-header"),
        pytest.param(_with_header(kdf=_scrypt(n=3 * 2**16)), id="n-not-a-power-of-two"),
        pytest.param(_with_header(kdf=_scrypt(n=2**30)), id="n-absurdly-large"),
        pytest.param(_with_header(kdf=_scrypt(r="8")), id="r-not-an-integer"),
        pytest.param(_with_header(kdf=_scrypt(salt="!!!")), id="salt-not-base64"),
        pytest.param(
            _with_header(aead={"name": "AES-256-GCM", "nonce": b64(bytes(8))}), id="short-nonce"
        ),
        pytest.param(" " * (keyfile.MAX_FILE_BYTES + 1), id="oversize"),
    ],
)
def test_malformed_file_is_refused_before_derivation(folder, no_derivation, content):
    path = write_private(folder, content)
    with pytest.raises(KeyFileError) as info:
        load_identity(path, PASSPHRASE)
    assert type(info.value) is KeyFileError
    assert "not a valid flame_lab key file" in info.value.message


def test_read_header_needs_neither_passphrase_nor_derivation(saved, no_derivation):
    identity, path = saved
    header = keyfile.read_header(path)
    assert header.kind == "researcher"
    assert header.public_keys == identity.public.to_dict()


def test_load_refuses_a_fifo_without_blocking(folder, no_derivation):
    fifo = folder / "identity.json"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_identity(fifo, PASSPHRASE)
