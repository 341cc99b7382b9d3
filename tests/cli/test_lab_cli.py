"""The main job: `flame-lab demo` in a terminal, `flame-lab lab` in a browser."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from flame_lab.cli import main
from flame_lab.cli.lab import _ensure_identity, _notebook_dir
from flame_lab.errors import KeyFileMissing


def test_demo_runs_the_getting_started_analysis_and_prints_the_decrypted_mean(in_sandbox, capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "federation sandbox at http://127.0.0.1:" in out
    assert "decrypted result: mean age" in out and "patients" in out


def test_without_an_identity_and_without_a_terminal_the_error_says_how_to_create_one():
    with pytest.raises(KeyFileMissing) as info:
        _ensure_identity(interactive=False)
    assert "flame-lab keys init" in info.value.hint


def test_the_notebook_folder_defaults_to_the_repositorys_notebooks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _notebook_dir(None) == tmp_path
    (tmp_path / "notebooks").mkdir()
    assert _notebook_dir(None) == tmp_path / "notebooks"
    assert _notebook_dir(str(tmp_path / "x")) == tmp_path / "x"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_lab_starts_the_sandbox_and_a_jupyterlab_with_flame_labs_api(in_sandbox, tmp_path):
    port = _free_port()
    env = {**os.environ, "FLAME_LAB_HOME": str(in_sandbox)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flame_lab.cli",
            "lab",
            str(tmp_path),
            "--no-browser",
            f"--ServerApp.port={port}",
            "--IdentityProvider.token=t0ken",
            "--ServerApp.ip=127.0.0.1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        answer = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/flame-lab/api/status",
                    headers={"Authorization": "token t0ken"},
                )
                with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                    answer = json.loads(response.read())
                    break
            except urllib.error.HTTPError as exc:
                pytest.fail(f"JupyterLab answered {exc.code}: flame_lab's server extension is off")
            except OSError:
                time.sleep(0.3)
        assert answer is not None, (
            proc.stdout.read1().decode(errors="replace") if proc.stdout else ""
        )
        assert answer["reachable"] is True
        assert answer["federation"]["kind"] == "sandbox"
        assert answer["keyId"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    # Issue 17: flame_hub switched every DeprecationWarning on for the whole process, so the
    # server printed other packages' warnings (jupyter_lsp's traitlets use) at each start.
    output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    assert "Jupyter Server" in output  # the server's own start lines were captured
    assert "DeprecationWarning" not in output and "deprecated" not in output.lower(), output


def test_a_passphrase_in_the_environment_creates_the_identity_without_asking(monkeypatch):
    from flame_lab import config
    from flame_lab.security.keys import load_identity

    monkeypatch.setenv("FLAME_LAB_PASSPHRASE", "from the environment")
    _ensure_identity(interactive=False)
    assert load_identity(config.identity_file(), "from the environment").key_id


def test_options_for_jupyterlab_pass_through_and_stray_options_are_refused(capsys):
    from flame_lab.cli import build_parser

    args, extra = build_parser().parse_known_args(["lab", "--no-browser", "--ServerApp.port=0"])
    assert args.no_browser and extra == ["--ServerApp.port=0"]
    with pytest.raises(SystemExit):
        main(["status", "--ServerApp.port=0"])
    assert "unrecognized arguments: --ServerApp.port=0" in capsys.readouterr().err


def test_lab_opens_the_getting_started_notebook_by_its_full_path(in_sandbox, tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01-getting-started.ipynb").write_text("{}")
    monkeypatch.chdir(tmp_path)
    seen = []
    monkeypatch.setattr("os.execv", lambda path, argv: seen.append(argv))
    main(["lab", "--no-browser"])
    argv = seen[0]
    assert f"--notebook-dir={tmp_path / 'notebooks'}" in argv
    # Jupyter reads a relative file from the current folder, not the notebook folder
    assert str(tmp_path / "notebooks" / "01-getting-started.ipynb") in argv


def test_demo_with_a_new_identity_asks_for_the_passphrase_only_to_choose_it(
    in_sandbox, tmp_path, monkeypatch, capsys
):
    import getpass

    asked: list[str] = []

    def answer(prompt: str = "") -> str:
        asked.append(prompt)
        return "a passphrase of some length"

    class Terminal:
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("FLAME_LAB_PASSPHRASE")
    monkeypatch.setenv("FLAME_LAB_IDENTITY", str(tmp_path / "new-identity.json"))
    monkeypatch.setattr(getpass, "getpass", answer)
    monkeypatch.setattr(sys, "stdin", Terminal())
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "decrypted result: mean age" in out and "Your key id:" in out
    # chosen and repeated once; never asked again to sign the analysis or open its result
    assert asked == ["New passphrase for your identity: ", "Repeat the passphrase: "]


def test_demo_that_started_the_sandbox_says_it_keeps_running_and_how_to_stop_it(
    flame_home, monkeypatch, capsys
):
    from flame_lab.sandbox import daemon

    monkeypatch.setenv("FLAME_LAB_PASSPHRASE", "a passphrase of some length")
    try:
        assert main(["demo"]) == 0
        out = capsys.readouterr().out
        assert "decrypted result: mean age" in out
        assert out.rstrip().endswith(
            "The sandbox federation keeps running; stop it with `flame-lab sandbox down`."
        )
        assert daemon.status()["running"]  # what it says is so
        assert main(["demo"]) == 0  # it was running this time: nothing to say
        assert "keeps running" not in capsys.readouterr().out
    finally:
        daemon.down()
