"""One run's directory: atomic writes, a lock against concurrent trainers, and the completion marker."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from lth.store import paths

METRIC_COLUMNS = ("iteration", "step", "train_loss", "test_loss", "test_accuracy", "val_loss", "val_accuracy", "lr")


def atomic_write_bytes(path: Path, data: bytes, durable: bool = False) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part (a temporary file
    renamed over it). ``durable`` also flushes it to disk first (the completion marker), which costs
    milliseconds, so metrics and states written every epoch skip it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
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


class RunDir:
    """The directory of one run and the files in it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).resolve()

    # -- generic atomic IO
    def write_json(self, name: str, obj: Any, durable: bool = False) -> None:
        """Write ``obj`` as indented JSON."""
        atomic_write_bytes(self.path / name, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode(), durable)

    def read_json(self, name: str) -> Any | None:
        """The JSON in ``name``, or None when absent."""
        p = self.path / name
        return json.loads(p.read_text()) if p.exists() else None

    def save_tensors(self, rel: str | Path, obj: Any) -> Path:
        """``torch.save`` ``obj`` atomically to ``rel`` inside the run; returns the absolute path."""
        buf = io.BytesIO()
        torch.save(obj, buf)
        p = self.path / rel
        atomic_write_bytes(p, buf.getvalue())
        return p

    def load_tensors(self, rel: str | Path) -> Any:
        """Load a file written by :meth:`save_tensors` (``weights_only=True``, onto the CPU)."""
        return torch.load(self.path / rel, map_location="cpu", weights_only=True)

    # -- run files
    @property
    def done(self) -> dict | None:
        """The completion marker's contents, or None while the run is not finished."""
        return self.read_json(paths.DONE)

    def save_state(self, name: str, state: dict[str, torch.Tensor], iteration: int | None = None) -> Path:
        """Store a model state under ``states/<name>.pt`` and, given its iteration, note it in
        ``states/index.json`` (``{name: iteration}``, what telemetry orders states by)."""
        p = self.save_tensors(Path(paths.STATES) / f"{name}.pt", {k: v.detach().cpu() for k, v in state.items()})
        if iteration is not None:
            index = self.state_iterations()
            index[name] = int(iteration)
            self.write_json(f"{paths.STATES}/index.json", index)
        return p

    def state_iterations(self) -> dict[str, int]:
        """``{state name: iteration}`` of the stored states that recorded one."""
        return self.read_json(f"{paths.STATES}/index.json") or {}

    def states(self) -> dict[str, str]:
        """``{name: absolute path}`` of the stored states."""
        d = self.path / paths.STATES
        return {p.stem: str(p) for p in sorted(d.glob("*.pt"))} if d.exists() else {}

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Write every evaluation row as CSV (atomically)."""
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in METRIC_COLUMNS})
        atomic_write_bytes(self.path / paths.METRICS, buf.getvalue().encode())

    def read_metrics(self) -> list[dict[str, Any]]:
        """The rows of ``metrics.csv`` with numbers parsed."""
        p = self.path / paths.METRICS
        if not p.exists():
            return []
        rows = []
        with p.open() as f:
            for r in csv.DictReader(f):
                rows.append({k: _num(v) if k != "step" else v for k, v in r.items()})
        return rows

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive lock on this run (blocks while another process holds it)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / paths.LOCK, "a+") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _num(v: str) -> float | int | None:
    if v == "":
        return None
    try:
        return int(v)
    except ValueError:
        return float(v)
