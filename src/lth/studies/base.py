"""What every study shares: its result object (a DataFrame and the CLI's JSON document from one place), the
progress it reports to, and the spec it trains (a preset's, or a :class:`~lth.spec.TrainSpec` given as is)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from lth.errors import UserError
from lth.progress import Progress
from lth.spec import TrainSpec


@dataclass
class StudyResult:
    """A study's result: ``document`` is the JSON document ``lth <command> --json`` prints (absolute paths,
    fractions, steps beside their iterations), ``table`` the name of its list of rows that :meth:`frame` turns
    into a DataFrame."""

    document: dict[str, Any] = field(default_factory=dict)
    table: str = "runs"

    def to_json(self) -> dict[str, Any]:
        """The JSON document of the CLI's ``--json``."""
        return self.document

    def frame(self, name: str | None = None) -> pd.DataFrame:
        """The rows of ``name`` (default: the study's main table) as a DataFrame."""
        key = name or self.table
        if key not in self.document:
            raise UserError(f"table: bad value {key!r}; allowed: {', '.join(self.document)}")
        rows = self.document[key]
        return pd.DataFrame(rows if isinstance(rows, list) else [rows])

    def __getitem__(self, key: str) -> Any:
        return self.document[key]

    def __contains__(self, key: object) -> bool:
        return key in self.document


@contextlib.contextmanager
def progress_of(progress: Progress | bool | None) -> Iterator[Progress]:
    """The progress a study reports to: the one given (the CLI's), a new one (``True`` or None: plain lines on
    stderr in a notebook or a pipe, the rich view on a terminal), or a quiet one (``False``: only populations)."""
    if isinstance(progress, Progress):
        yield progress
        return
    with Progress(quiet=progress is False) as p:
        yield p


def resolve_spec(preset: str | TrainSpec, overrides: Mapping[str, Any] | None = None,
                 own: tuple[str, ...] = ()) -> tuple[TrainSpec, str]:
    """(spec, preset name) of a preset name or a TrainSpec given as is, with field ``overrides`` (``lr=0.01``,
    parsed as the CLI parses its flags) applied and validated. A TrainSpec's preset name is ``"custom"``.
    ``own``: the study's other keywords, listed beside the hyperparameters when a keyword is neither."""
    from lth.options import unknown_name
    from lth.presets import PRESETS, get_preset
    from lth.spec import GROUPS, hparam_fields, replace_fields

    if isinstance(preset, TrainSpec):
        base, name = preset, "custom"
    elif isinstance(preset, str):
        base, name = get_preset(preset).spec, preset
    else:
        raise UserError(f"preset: bad value {preset!r}; allowed: a TrainSpec or a preset name: {', '.join(PRESETS)}")
    known = sorted({n for g in GROUPS for n, _, _ in hparam_fields(type(getattr(base, g)))})
    for key in overrides or {}:
        if key not in known:
            raise unknown_name(key, [*own, *known], extra="")
    spec = replace_fields(base, dict(overrides or {}))
    spec.validate()
    return spec, name
