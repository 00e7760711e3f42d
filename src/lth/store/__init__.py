"""The store: a directory tree of runs. Every path is built in :mod:`lth.store.paths`; writes are atomic."""

from lth.store.paths import run_path
from lth.store.run import RunDir

__all__ = ["RunDir", "run_path"]
