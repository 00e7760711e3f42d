"""The CSV tables of a run: metrics (``metrics.csv``), Hessian eigenvalues (``hessian.csv``) and weight telemetry
(``telemetry.csv``), as text. Writers turn rows into the bytes of the file; readers parse its text and raise
:class:`BadTable` with the reason when it is not what the writer writes (:class:`~lth.store.run.RunDir` names
the file and its run in a :class:`~lth.store.run.DamagedFile`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

METRIC_COLUMNS = ("iteration", "step", "train_loss", "test_loss", "test_accuracy", "val_loss", "val_accuracy", "lr")
_TEXT_COLUMNS = frozenset({"step"})  # every other known column holds a number or nothing


class BadTable(ValueError):
    """A table's text is not what its writer writes; the message is the reason."""


def _csv(columns: list[str], rows: list[dict[str, Any]], cell: Callable[[str, Any], Any]) -> bytes:
    """``rows`` as CSV (``\\n`` line ends) with the header ``columns``; each value is ``cell(column, value)``
    (a missing value is None)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: cell(k, r.get(k)) for k in columns})
    return buf.getvalue().encode()


def _lines(text: str) -> list[list[str]]:
    """The cells of each line of a table written whole (its last line ends with a line end)."""
    if not text.endswith("\n"):
        raise BadTable("empty" if not text else "the last line is cut short")
    return list(csv.reader(io.StringIO(text)))


def _body(lines: list[list[str]], header: list[str]) -> Iterator[tuple[int, list[str]]]:
    """``(line number, cells)`` of each row after the header, checked as it comes: a row with another cell count
    than the header's raises :class:`BadTable`."""
    for n, cells in enumerate(lines[1:], start=2):
        if len(cells) != len(header):
            raise BadTable(f"line {n} has {len(cells)} cells, the header {len(header)}")
        yield n, cells


# ------------------------------------------------------------------------------------------------ metrics
def metrics_csv(rows: list[dict[str, Any]]) -> bytes:
    """Every evaluation row as CSV (``\\n`` line ends).

    Columns: :data:`METRIC_COLUMNS` first, then every other key found in any row, sorted by name, so a new
    metric is never dropped. Missing values are empty cells. Learning rates (``lr``) come from the engine's
    float32 schedule table; they are written as the shortest decimal that reads back as the same float32
    (``numpy.format_float_positional(numpy.float32(x), unique=True)``), so 1.2e-3 is ``0.0012``, not
    ``0.0012000000569``."""
    extra = sorted({k for r in rows for k in r} - set(METRIC_COLUMNS))
    return _csv([*METRIC_COLUMNS, *extra], rows, _cell)


def parse_metrics(text: str) -> list[dict[str, Any]]:
    """The rows of a ``metrics.csv`` text with numbers parsed (every column, known or extra; empty cells are None).

    Raises :class:`BadTable` when the text is not what :func:`metrics_csv` writes: no header with ``iteration``,
    a last line without its line end (a truncated file), a row whose cell count differs from the header's, or a
    non-number in a numeric column."""
    lines = _lines(text)
    header = lines[0] if lines else []
    if "iteration" not in header:
        raise BadTable(f"header {','.join(header)!r} has no 'iteration' column")
    rows = []
    for n, cells in _body(lines, header):
        row = {}
        for k, v in zip(header, cells, strict=True):
            if k in _TEXT_COLUMNS:
                row[k] = v
                continue
            try:
                row[k] = _num(v)
            except ValueError:
                if k in METRIC_COLUMNS:
                    raise BadTable(f"line {n}: {k} {v!r} is not a number") from None
                row[k] = v  # an extra column may hold text
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------ Hessian
def hessian_csv(rows: list[dict[str, Any]]) -> bytes:
    """Hessian eigenvalue rows as CSV (columns in the rows' order)."""
    return _csv(list(dict.fromkeys(k for r in rows for k in r)), rows, lambda _, v: v)


def parse_hessian(text: str) -> list[dict[str, Any]]:
    """The rows of a ``hessian.csv`` text (values as written, numbers parsed).

    Raises :class:`BadTable` when the text is not what :func:`hessian_csv` writes: no header with ``state``,
    ``rank`` and ``eigenvalue``, a last line without its line end, or a row whose cell count differs from the
    header's."""
    try:
        lines = _lines(text)
    except csv.Error as e:
        raise BadTable(f"not CSV ({e})") from None
    header = lines[0] if lines else []
    missing = [c for c in ("state", "rank", "eigenvalue") if c not in header]
    if missing:
        raise BadTable(f"header {','.join(header)!r} has no {', '.join(missing)} column")
    return [{k: _num_or_text(v) for k, v in zip(header, cells, strict=True)} for _, cells in _body(lines, header)]


# ------------------------------------------------------------------------------------------------ telemetry
def telemetry_csv(rows: list[dict[str, Any]]) -> bytes:
    """Weight-telemetry rows as CSV: ``iteration`` and ``step`` first, then every other key found in any row,
    sorted by name; missing values are empty cells."""
    columns = ["iteration", "step", *sorted({k for r in rows for k in r} - {"iteration", "step"})]
    return _csv(columns, rows, lambda _, v: "" if v is None else v)


# ------------------------------------------------------------------------------------------------ cells
def _cell(column: str, v: Any) -> Any:
    """A metrics cell: empty for None, the shortest float32 round trip for a learning rate, else as is."""
    if v is None:
        return ""
    if column == "lr" and isinstance(v, float | np.floating):
        return np.format_float_positional(np.float32(v), unique=True, trim="0")
    return v


def _num_or_text(v: str | None) -> float | int | str | None:
    try:
        return v if v is None else _num(v)
    except ValueError:
        return v


def _num(v: str) -> float | int | None:
    if v == "":
        return None
    try:
        return int(v)
    except ValueError:
        return float(v)
