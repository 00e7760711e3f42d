"""Atomic file writes: a reader sees the old file or the new one, never a part of one.

Every store file (and every report file) is written to a temporary name in the target's folder and renamed over
the target, with the permissions the user's umask gives a new file, so a store shared through a group-readable
folder stays readable.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (``/proc/self/status``)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes, durable: bool = False) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part (a temporary file
    renamed over it), with the permissions the umask gives a new file (0644 under umask 022). ``durable`` also
    flushes it to disk first (the completion marker), which costs milliseconds, so metrics and states written
    every epoch skip it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a new file gets what open() would give it
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_link(src: Path, dst: Path) -> None:
    """Make ``dst`` the file ``src``: a hard link where the file system allows one, else a copy; atomic (a
    temporary name renamed over ``dst``). Store files are replaced by renaming, never written in place, so a link
    never sees a later change of ``src``."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f".{dst.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        try:
            os.link(src, tmp)
        except OSError:  # another file system, or one without hard links
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
