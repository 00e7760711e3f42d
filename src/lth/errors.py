"""Errors that the CLI reports as one line, and where the traceback of an unexpected one is kept."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class UserError(Exception):
    """Bad input from the user: the CLI prints the message on one line and exits with code 2."""


def error_log_path() -> Path:
    """Where the traceback of an unexpected error goes: ``$LTH_LOG`` when set, else ``~/.cache/lth/error.log``."""
    env = os.environ.get("LTH_LOG")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lth" / "error.log"


def write_error_log(text: str) -> Path | None:
    """Write ``text`` (a traceback) to :func:`error_log_path`, replacing what was there; returns the file.

    When that place cannot be written (an unwritable or missing HOME, a read-only ``$LTH_LOG``), the text goes
    to a new file ``lth-error-*.log`` in the temporary folder (:func:`tempfile.mkstemp`) instead; when that fails
    too, returns None. Never raises: it runs while the CLI is already reporting another error."""
    try:
        path = error_log_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path
    except Exception:  # any failure here falls back: none may escape
        pass
    try:
        fd, tmp = tempfile.mkstemp(prefix="lth-error-", suffix=".log")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return Path(tmp)
    except Exception:
        return None
