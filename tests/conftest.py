"""Fixtures every test shares."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def batch_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh CHERT_BATCH_HOME for every test, inherited by the subprocesses it starts.

    Runs share claims (and later a send history) through the per-user home: no test may
    see another's, nor the home of whoever runs the tests.
    """
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("CHERT_BATCH_HOME", str(home))
    return home
