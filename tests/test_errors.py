"""The error log: $LTH_LOG, else ~/.cache/lth/error.log, else a temporary file, else None - never an exception."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from lth.errors import write_error_log


def test_error_log_home_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LTH_LOG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    p = write_error_log("Traceback one")
    assert p == tmp_path / "home" / ".cache" / "lth" / "error.log" and p.read_text() == "Traceback one"
    monkeypatch.setenv("LTH_LOG", str(tmp_path / "logs" / "x.log"))
    p = write_error_log("Traceback two")
    assert p == tmp_path / "logs" / "x.log" and p.read_text() == "Traceback two"


def test_error_log_unwritable_home_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LTH_LOG", raising=False)
    home = tmp_path / "home"
    home.write_text("a file, so no folder can be made under it (holds even for root)")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    p = write_error_log("Traceback three")
    assert p is not None and p.parent == tmp_path / "tmp" and p.read_text() == "Traceback three"
    monkeypatch.setattr(tempfile, "tempdir", str(home / "no"))  # the temporary folder is unusable too
    assert write_error_log("Traceback four") is None
