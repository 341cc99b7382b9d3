"""Accounts a research group adds to its sandbox: researchers, and a JupyterHub as a client."""

from __future__ import annotations

import re

from flame_lab.cli import main
from flame_lab.hubclient import HubEndpoints, with_password
from flame_lab.sandbox import daemon


def test_a_new_researcher_can_log_in_with_the_printed_password(tmp_path, capsys):
    home = tmp_path / "sandbox"
    daemon.initialise(home, nodes=2)
    assert main(["sandbox", "user", "add", "bob", "--home", str(home)]) == 0
    password = re.search(r"password \(shown once\): (\S+)", capsys.readouterr().out).group(1)
    running = daemon.up(home)
    try:
        clients = with_password(HubEndpoints.under(running.url), "bob", password)
        assert [p.name for p in clients.core.get_projects()] == ["sandbox"]
    finally:
        daemon.down(home)


def test_a_second_account_of_the_same_name_is_refused(tmp_path, capsys):
    home = tmp_path / "sandbox"
    daemon.initialise(home, nodes=2)
    main(["sandbox", "user", "add", "carol", "--home", str(home)])
    assert main(["sandbox", "user", "add", "carol", "--home", str(home)]) == 1
    assert "exists already" in capsys.readouterr().err


def test_an_oauth_client_gets_an_id_and_a_secret_shown_once(tmp_path, capsys):
    home = tmp_path / "sandbox"
    daemon.initialise(home, nodes=2)
    uri = "http://127.0.0.1:8000/hub/oauth_callback"
    assert (
        main(
            [
                "sandbox",
                "oauth-client",
                "add",
                "jupyterhub",
                "--redirect-uri",
                uri,
                "--home",
                str(home),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert re.search(r"client id:\s+\S+", out) and re.search(r"client secret:\s+\S+", out)
    assert uri in out


def test_accounts_need_a_sandbox_first(tmp_path, capsys):
    assert main(["sandbox", "user", "add", "dave", "--home", str(tmp_path / "none")]) == 1
    assert "flame-lab sandbox up" in capsys.readouterr().err
