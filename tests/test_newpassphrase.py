"""A new key's passphrase: long enough, the same twice, asked again rather than aborted."""

from __future__ import annotations

import pytest

from flame_lab.errors import PassphraseError
from flame_lab.newpassphrase import MIN_CHARS, new_passphrase


def asker(*answers):
    queue = list(answers)
    return lambda prompt: queue.pop(0)


def test_short_and_mismatched_answers_are_asked_again(monkeypatch):
    monkeypatch.delenv("FLAME_LAB_PASSPHRASE", raising=False)
    said: list[str] = []
    ask = asker("abc", "long enough one", "long enough 0ne", "long enough one", "long enough one")
    assert new_passphrase(ask=ask, say=said.append) == "long enough one"
    assert f"at least {MIN_CHARS}" in said[0] and "differ" in said[1]


def test_three_failed_tries_end_with_a_hint(monkeypatch):
    monkeypatch.delenv("FLAME_LAB_PASSPHRASE", raising=False)
    with pytest.raises(PassphraseError, match="after 3 tries"):
        new_passphrase(ask=asker("a", "b", "c"), say=lambda _: None)


def test_no_terminal_and_a_short_environment_passphrase_are_refused(monkeypatch):
    monkeypatch.delenv("FLAME_LAB_PASSPHRASE", raising=False)

    def eof(prompt):
        raise EOFError

    with pytest.raises(PassphraseError, match="no terminal"):
        new_passphrase(ask=eof)
    monkeypatch.setenv("FLAME_LAB_PASSPHRASE", "abc")
    with pytest.raises(PassphraseError, match="fewer than 8"):
        new_passphrase()
