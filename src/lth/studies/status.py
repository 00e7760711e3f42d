"""The status of a store against what its commands planned (``lth status``, ``lth.api.status``): every planned
run that is missing, unfinished, failed, blocked or damaged (:mod:`lth.store.plans`), and per level how many
runs are present of those planned. ``lth results`` and ``lth report`` carry the same account
(:func:`store_status`), so a verdict computed on fewer replicates than planned says so.

    from lth.studies.status import StatusOptions, status
    doc = status(StatusOptions(root="runs")).to_json()   # {"root", "planned", "present", "complete", "missing", ...}
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from lth.analysis.tables import check_store_root, empty_store
from lth.options import Options, option
from lth.store.plans import missing_text, store_status
from lth.studies.base import StudyResult
from lth.studies.runtime import DEFAULT_ROOT, existing_store


@dataclass(frozen=True)
class StatusOptions(Options):
    """Which store ``lth status`` checks."""

    PREFIX: ClassVar[str] = ""
    root: str = option(DEFAULT_ROOT, "the store to check (default: $LTH_ROOT or ./runs)")


def warn_missing(doc: dict[str, Any], root: str | Path) -> None:
    """The line of :func:`missing_text` on stderr as a warning (nothing when every planned run is present)."""
    text = missing_text(doc, root)
    if text:
        print(f"lth: warning: {text}", file=sys.stderr)


def status(options: StatusOptions) -> StudyResult:
    """The status of the store at ``options.root``: ``{"root", "planned", "present", "complete": bool, "missing":
    [...], "shortfalls": [...], "plans": [...]}`` (:func:`store_status`; ``complete``: every planned run is
    present). UserError naming ``root`` when it is not a store's root, or holds neither plans nor runs."""
    from lth.store import paths

    root = existing_store(options.root).resolve()
    check_store_root(root)
    doc = store_status(root)
    if not doc["plans"] and not any(root.rglob(paths.SPEC)):
        raise empty_store(root)
    return StudyResult({"root": str(root), **doc, "complete": not doc["missing"]}, table="missing")


__all__ = ["StatusOptions", "empty_store", "missing_text", "status", "store_status", "warn_missing"]
