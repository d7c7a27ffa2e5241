"""tests/lablib.py skip_unless_installed: a missing system package skips a test on a developer's
machine and fails it under CI, where a skip would hide a missing install step."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lablib


def test_nothing_missing_is_a_no_op(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert lablib.skip_unless_installed([], "the lab") is None


def test_missing_outside_ci_skips_with_what_is_missing(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="the lab needs PgBouncer, Java 17; run tools/install"):
        lablib.skip_unless_installed(["PgBouncer", "Java 17"], "the lab")


def test_missing_under_ci_fails_instead_of_skipping(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"ansible-rulebook needs Java 17.*a skip would hide it"):
        lablib.skip_unless_installed(["Java 17"], "ansible-rulebook")
