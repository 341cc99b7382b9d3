"""`flame-lab keys`: init, show, export-public and check, as a researcher types them."""

from __future__ import annotations

import base64
import getpass
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from flame_lab import config
from flame_lab.cli import main
from flame_lab.security.keyid import display
from flame_lab.security.keys import (
    Identity,
    NodeIdentity,
    PublicIdentity,
    load_identity,
    save_identity,
    save_node_identity,
)

PASSPHRASE = "cli passphrase that must never be printed"


@pytest.fixture
def passphrase(monkeypatch) -> str:
    monkeypatch.setenv("FLAME_LAB_PASSPHRASE", PASSPHRASE)
    return PASSPHRASE


@pytest.fixture
def no_prompt(monkeypatch):
    """Fail if a command asks for a passphrase it should not need."""

    def refuse(prompt: str = "") -> str:
        raise AssertionError(f"unexpected passphrase prompt: {prompt!r}")

    monkeypatch.setattr(getpass, "getpass", refuse)


@pytest.fixture(scope="module")
def existing(tmp_path_factory) -> tuple[Identity, Path]:
    """A key file made once for the read-only commands."""
    identity = Identity.generate()
    path = tmp_path_factory.mktemp("cli") / "keys" / "identity.json"
    save_identity(path, identity, PASSPHRASE)
    return identity, path


def private_forms(identity: Identity) -> list[str]:
    forms = [PASSPHRASE]
    for key in (identity.encryption_key, identity.signing_key):
        raw = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        forms += [raw.hex(), base64.b64encode(raw).decode().rstrip("=")]
        forms += [base64.urlsafe_b64encode(raw).decode().rstrip("=")]
    return forms


def test_init_creates_the_identity_file_and_prints_key_id_and_path(passphrase, capsys):
    assert main(["keys", "init"]) == 0
    out = capsys.readouterr().out
    path = config.identity_file()
    identity = load_identity(path, passphrase)
    assert display(identity.key_id) in out
    assert str(path) in out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_init_asks_twice_when_no_environment_passphrase(monkeypatch, tmp_path, capsys):
    answers = iter(["typed twice", "typed twice"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    path = tmp_path / "mine" / "id.json"
    assert main(["keys", "init", "--path", str(path), "--kdf", "argon2id"]) == 0
    assert load_identity(path, "typed twice").key_id in capsys.readouterr().out.replace(" ", "")


def test_init_refuses_to_overwrite_an_existing_identity(existing, passphrase, capsys):
    _, path = existing
    before = path.read_bytes()
    assert main(["keys", "init", "--path", str(path)]) == 1
    err = capsys.readouterr().err
    assert "already exists" in err
    assert "hint:" in err
    assert path.read_bytes() == before


def test_init_asks_again_after_mismatched_or_short_passphrases_then_gives_up(
    monkeypatch, tmp_path, capsys
):
    answers = iter(["abc", "long one here", "long one h3re", "long one here", "not it at all"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    path = tmp_path / "mine" / "id.json"
    assert main(["keys", "init", "--path", str(path)]) == 1
    captured = capsys.readouterr()
    assert "at least 8 characters" in captured.out and captured.out.count("differ") == 2
    assert "after 3 tries" in captured.err
    assert not path.exists()


def test_show_prints_key_id_path_and_public_keys_without_a_passphrase(existing, no_prompt, capsys):
    identity, path = existing
    assert main(["keys", "show", "--path", str(path)]) == 0
    out = capsys.readouterr().out
    public = identity.public.to_dict()
    assert display(identity.key_id) in out
    assert str(path) in out
    assert public["x25519"] in out and public["ed25519"] in out


def test_show_json_prints_the_public_identity(existing, no_prompt, capsys):
    identity, path = existing
    assert main(["keys", "show", "--path", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == identity.public.to_dict()


def test_show_without_an_identity_says_how_to_make_one(no_prompt, capsys):
    assert main(["keys", "show"]) == 1
    err = capsys.readouterr().err
    assert "No key file" in err
    assert "flame-lab keys init" in err


def test_export_public_prints_json_node_admins_can_trust(existing, no_prompt, capsys):
    identity, path = existing
    assert main(["keys", "export-public", "--path", str(path)]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert PublicIdentity.from_dict(exported).key_id == identity.key_id


def test_export_public_writes_a_new_file_and_refuses_to_overwrite(
    existing, no_prompt, tmp_path, capsys
):
    identity, path = existing
    out = tmp_path / "me.public.json"
    assert main(["keys", "export-public", "--path", str(path), "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == identity.public.to_dict()
    assert main(["keys", "export-public", "--path", str(path), "--out", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err


def test_check_unlocks_and_proves_sign_and_decrypt(existing, passphrase, capsys):
    identity, path = existing
    assert main(["keys", "check", "--path", str(path)]) == 0
    out = capsys.readouterr().out
    assert out == f"ok: identity {display(identity.key_id)} can sign and decrypt\n"


def test_check_with_a_wrong_passphrase_fails_cleanly(existing, monkeypatch, capsys):
    _, path = existing
    monkeypatch.setenv("FLAME_LAB_PASSPHRASE", "wrong")
    assert main(["keys", "check", "--path", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: Cannot decrypt")
    assert "Traceback" not in captured.err


def test_check_refuses_an_empty_environment_passphrase(existing, monkeypatch, capsys):
    _, path = existing
    monkeypatch.setenv("FLAME_LAB_PASSPHRASE", "")
    assert main(["keys", "check", "--path", str(path)]) == 1
    assert "empty" in capsys.readouterr().err


def test_no_secret_in_any_cli_output(existing, passphrase, monkeypatch, tmp_path, capsys):
    identity, path = existing
    fresh = tmp_path / "fresh" / "identity.json"
    commands = [
        ["keys", "init", "--path", str(fresh)],
        ["keys", "init", "--path", str(fresh)],
        ["keys", "show", "--path", str(path)],
        ["keys", "show", "--path", str(path), "--json"],
        ["keys", "export-public", "--path", str(path)],
        ["keys", "check", "--path", str(path)],
    ]
    outputs = []
    for argv in commands:
        main(argv)
        captured = capsys.readouterr()
        outputs += [captured.out, captured.err]
    monkeypatch.setenv("FLAME_LAB_PASSPHRASE", "wrong")
    main(["keys", "check", "--path", str(path)])
    captured = capsys.readouterr()
    outputs += [captured.out, captured.err]
    everything = "\n".join(outputs)
    assert "Cannot decrypt" in everything and "ok: identity" in everything
    fresh_identity = load_identity(fresh, PASSPHRASE)
    for form in private_forms(identity) + private_forms(fresh_identity):
        assert form not in everything, "a secret leaked into CLI output"


def test_init_then_show_in_a_subprocess(tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLAME_LAB_")}
    env.update(FLAME_LAB_HOME=str(home), FLAME_LAB_PASSPHRASE=PASSPHRASE)
    # `python -m flame_lab.cli` needs flame_lab/cli/__main__.py; call the same entry point.
    run = [sys.executable, "-m", "flame_lab.cli"]
    init = subprocess.run(
        [*run, "keys", "init"], env=env, capture_output=True, text=True, timeout=60
    )
    assert init.returncode == 0, init.stderr
    del env["FLAME_LAB_PASSPHRASE"]
    show = subprocess.run(
        [*run, "keys", "show"], env=env, capture_output=True, text=True, timeout=60
    )
    assert show.returncode == 0, show.stderr
    key_line = next(line for line in init.stdout.splitlines() if "identity" in line)
    assert key_line.split("identity ", 1)[1] in show.stdout
    assert str(home / "keys" / "identity.json") in show.stdout
    assert PASSPHRASE not in init.stdout + init.stderr + show.stdout + show.stderr


def test_check_refuses_a_node_key_file_before_asking_a_passphrase(tmp_path, no_prompt, capsys):
    path = tmp_path / "node" / "node.json"
    save_node_identity(path, NodeIdentity.generate(), PASSPHRASE)
    assert main(["keys", "check", "--path", str(path)]) == 1
    assert "node identity" in capsys.readouterr().err
