"""Every error says what happened and what to do next."""

from __future__ import annotations

import inspect

from flame_lab import errors


def _error_classes():
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.FlameLabError)
    ]


def test_every_error_belongs_to_one_tree():
    assert all(issubclass(cls, errors.FlameLabError) for cls in _error_classes())
    assert len(_error_classes()) > 10


def test_every_error_class_carries_a_default_hint():
    missing = [cls.__name__ for cls in _error_classes() if not cls("x").hint]
    assert missing == ["FlameLabError"]


def test_an_explicit_hint_wins_over_the_default():
    err = errors.WrongPassphrase("wrong passphrase", hint="try again")
    assert err.hint == "try again"
    assert str(err) == "wrong passphrase\nHint: try again"


def test_to_dict_is_what_the_rest_api_and_widgets_show():
    err = errors.NotFound("no analysis abc")
    assert err.to_dict() == {
        "error": "NotFound",
        "message": "no analysis abc",
        "hint": errors.NotFound.default_hint,
    }
