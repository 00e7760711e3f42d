"""One run's directory (:class:`RunDir`): every file name inside a run, a lock against concurrent trainers, and
the completion marker.

Files are written whole (:mod:`lth.store.atomic`); the CSV tables' text formats live in :mod:`lth.store.tables`.
A file that is nevertheless damaged (a truncated copy, a disk error) raises :class:`DamagedFile` naming the file
and its run, never a bare parser error.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import pickle
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from lth.errors import UserError
from lth.store import paths
from lth.store.atomic import atomic_link, atomic_write_bytes
from lth.store.tables import (
    METRIC_COLUMNS,
    BadTable,
    hessian_csv,
    metrics_csv,
    parse_hessian,
    parse_metrics,
    telemetry_csv,
)

__all__ = ["DONE_STATUSES", "METRIC_COLUMNS", "Busy", "DamagedFile", "RunDir", "atomic_write_bytes"]

_OBJECT_FILES = frozenset({paths.SPEC, paths.DONE, f"{paths.STATES}/index.json"})  # each holds one JSON object


class Busy(Exception):
    """A run's lock is held by another process (:meth:`RunDir.lock` with ``wait=False``)."""


DONE_STATUSES = ("complete", "diverged")  # what a finished run's done.json says (engine/population.py)


class DamagedFile(UserError):
    """A store file that exists but cannot be read (truncated, corrupt). ``path`` is the file, ``run`` its run
    directory; the message names both and says how to recover (the CLI prints it on one line, exit code 2)."""

    def __init__(self, path: Path, run: Path, reason: str) -> None:
        self.path, self.run, self.reason = Path(path), Path(run), reason
        super().__init__(f"damaged file {self.path} (run {self.run}): {reason}; run the command that trained it "
                         "again: it retrains a run with a damaged file")


class RunDir:
    """The directory of one run and the files in it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).resolve()

    def _damaged(self, name: str | Path, reason: str) -> DamagedFile:
        return DamagedFile(self.path / name, self.path, reason)

    # -- generic atomic IO
    def write_json(self, name: str, obj: Any, durable: bool = False) -> None:
        """Write ``obj`` as indented JSON."""
        atomic_write_bytes(self.path / name, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode(), durable)

    def read_json(self, name: str) -> Any | None:
        """The JSON in ``name``, or None when absent; :class:`DamagedFile` when it does not parse."""
        p = self.path / name
        try:
            text = p.read_text()
        except FileNotFoundError:
            return None
        except (UnicodeDecodeError, IsADirectoryError) as e:
            raise self._damaged(name, f"not JSON text ({e})") from None
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise self._damaged(name, f"not valid JSON ({e})" if text else "empty") from None

    def read_object(self, name: str) -> dict | None:
        """The JSON object in ``name``, or None when absent; :class:`DamagedFile` when it does not parse or holds
        another JSON value (a list, a string, ``null``): the run's own files (``spec.json``, ``done.json``,
        ``states/index.json``) each hold one object."""
        value = self.read_json(name)
        if value is None and not (self.path / name).exists():
            return None
        if not isinstance(value, dict):
            raise self._damaged(name, f"not a JSON object ({type(value).__name__})")
        return value

    def save_tensors(self, rel: str | Path, obj: Any) -> Path:
        """``torch.save`` ``obj`` atomically to ``rel`` inside the run; returns the absolute path."""
        buf = io.BytesIO()
        torch.save(obj, buf)
        p = self.path / rel
        atomic_write_bytes(p, buf.getvalue())
        return p

    def load_tensors(self, rel: str | Path) -> Any:
        """Load a file written by :meth:`save_tensors` (``weights_only=True``, onto the CPU).

        FileNotFoundError when absent; :class:`DamagedFile` when it exists but cannot be read."""
        p = self.path / rel
        try:
            return torch.load(p, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise
        except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise self._damaged(rel, f"not a readable torch file ({first})") from None

    # -- run files (every name comes from lth.store.paths)
    @property
    def spec(self) -> dict | None:
        """``spec.json`` (hyperparameters and what the run records about itself), or None when absent."""
        return self.read_object(paths.SPEC)

    def write_spec(self, obj: dict) -> None:
        """Write ``spec.json``."""
        self.write_json(paths.SPEC, obj)

    @property
    def mask_file(self) -> Path:
        """Where the run's mask lives (whether or not it has one)."""
        return self.path / paths.MASK

    def has_mask(self) -> bool:
        """Whether the run trained under a mask."""
        return self.mask_file.exists()

    def load_mask(self) -> dict[str, torch.Tensor]:
        """The mask the run trained under."""
        return self.load_tensors(paths.MASK)

    def save_mask(self, mask: dict[str, torch.Tensor]) -> None:
        """Store the run's mask (as booleans)."""
        self.save_tensors(paths.MASK, {k: v.bool() for k, v in mask.items()})

    def state_file(self, name: str) -> Path:
        """``states/<name>.pt``."""
        return paths.state_path(self.path, name)

    def has_state(self, name: str) -> bool:
        """Whether the state ``name`` is stored."""
        return self.state_file(name).exists()

    def load_state(self, name: str) -> dict[str, torch.Tensor]:
        """A stored state (``init``, ``final``, ``rewind``, a step such as ``500it``)."""
        return self.load_tensors(Path(paths.STATES) / f"{name}.pt")

    def load_checkpoint(self) -> dict | None:
        """The checkpoint of an interrupted run, or None."""
        return self.load_tensors(paths.CHECKPOINT) if (self.path / paths.CHECKPOINT).exists() else None

    def save_checkpoint(self, obj: dict) -> None:
        """Store the checkpoint (model, optimiser, metrics so far)."""
        self.save_tensors(paths.CHECKPOINT, obj)

    def drop_checkpoint(self) -> None:
        """Remove the checkpoint (the run finished, or it cannot be read)."""
        (self.path / paths.CHECKPOINT).unlink(missing_ok=True)

    def write_done(self, obj: dict) -> None:
        """Write the completion marker, durably (the last file a run writes); a failure recorded earlier
        (``failed.json``) is removed."""
        self.write_json(paths.DONE, obj, durable=True)
        (self.path / paths.FAILED).unlink(missing_ok=True)

    def has_done(self) -> bool:
        """Whether a completion marker exists (readable or not)."""
        return (self.path / paths.DONE).exists()

    def drop_done(self) -> None:
        """Remove the completion marker (the run will be trained again)."""
        (self.path / paths.DONE).unlink(missing_ok=True)

    @property
    def done(self) -> dict | None:
        """The completion marker's contents, or None while the run is not finished (DamagedFile if unreadable)."""
        return self.read_object(paths.DONE)

    def finished(self) -> bool:
        """True when training ended: :meth:`complete`, or a readable ``done.json`` whose status is ``diverged``
        (a diverged run is finished, with no final state). Never raises: a damaged marker counts as unfinished."""
        try:
            done = self.done
        except DamagedFile:
            return False
        if not isinstance(done, dict):
            return False
        return done.get("status") == "diverged" or self.complete()

    def complete(self) -> bool:
        """True when ``done.json`` parses, says ``complete`` and ``states/final.pt`` is a readable zip archive
        (the cheap check of :func:`zipfile.is_zipfile`: it reads the archive's end record). Never raises."""
        try:
            done = self.done
        except DamagedFile:
            return False
        if not isinstance(done, dict) or done.get("status") != "complete":
            return False
        final = self.path / paths.STATES / "final.pt"
        return final.is_file() and zipfile.is_zipfile(final)

    def damaged(self) -> list[str]:
        """Absolute paths of the run's files that exist but cannot be read: JSON files that do not parse (or, for
        ``spec.json``, ``done.json`` and ``states/index.json``, hold no JSON object; a ``done.json`` whose status
        is not one of :data:`DONE_STATUSES`), a
        ``metrics.csv`` that :meth:`read_metrics` rejects, ``.pt`` files that are not zip archives (torch's
        format; checked with :func:`zipfile.is_zipfile`, not loaded). Empty for a healthy run. Never raises."""
        bad = []
        for p in sorted(self.path.glob("*.json")) + sorted(self.path.glob(f"{paths.STATES}/*.json")):
            rel = p.relative_to(self.path).as_posix()
            try:
                obj = self.read_object(rel) if rel in _OBJECT_FILES else self.read_json(rel)
            except DamagedFile:
                bad.append(str(p))
                continue
            if rel == paths.DONE and obj is not None and obj.get("status") not in DONE_STATUSES:  # hand-edited
                bad.append(str(p))
        try:
            self.read_metrics()
        except DamagedFile as e:
            bad.append(str(e.path))
        for p in sorted(self.path.glob("*.pt")) + sorted(self.path.glob(f"{paths.STATES}/*.pt")):
            if not zipfile.is_zipfile(p):
                bad.append(str(p))
        return bad

    def save_state(self, name: str, state: dict[str, torch.Tensor], iteration: int | None = None) -> Path:
        """Store a model state under ``states/<name>.pt`` and, given its iteration, note it in
        ``states/index.json`` (``{name: iteration}``, what telemetry orders states by)."""
        p = self.save_tensors(Path(paths.STATES) / f"{name}.pt", {k: v.detach().cpu() for k, v in state.items()})
        if iteration is not None:
            index = self.state_iterations()
            index[name] = int(iteration)
            self.write_json(f"{paths.STATES}/index.json", index)
        return p

    def link_state(self, other: RunDir, name: str, as_name: str | None = None) -> bool:
        """Take ``other``'s state ``name`` as this run's state ``as_name`` (default: the same name), with its
        iteration in ``states/index.json``: a hard link where the file system allows, else a copy (see
        :meth:`link_file`). False when ``other`` does not hold it."""
        as_name = as_name or name
        rel = Path(paths.STATES) / f"{name}.pt"
        if not self.link_file(other, rel, Path(paths.STATES) / f"{as_name}.pt"):
            return False
        iteration = other.state_iterations().get(name)
        if iteration is not None:
            index = self.state_iterations()
            index[as_name] = int(iteration)
            self.write_json(f"{paths.STATES}/index.json", index)
        return True

    def drop_state(self, name: str) -> None:
        """Remove the state ``name`` and its entry in ``states/index.json`` (absent: nothing to do)."""
        self.state_file(name).unlink(missing_ok=True)
        index = self.state_iterations()
        if name in index:
            del index[name]
            self.write_json(f"{paths.STATES}/index.json", index)

    def link_results(self, other: RunDir) -> None:
        """Take the files ``other``'s training wrote besides its states and markers (metrics, mask, telemetry),
        each where ``other`` has it (:meth:`link_file`)."""
        for rel in (paths.METRICS, paths.MASK, paths.TELEMETRY):
            self.link_file(other, rel)

    def link_file(self, other: RunDir, rel: str | Path, as_rel: str | Path | None = None) -> bool:
        """Take ``other``'s file ``rel`` (relative to its run) as this run's ``as_rel`` (default: ``rel``): a hard
        link where the file system allows one, else a copy; atomic (:func:`~lth.store.atomic.atomic_link`).
        Every store file is replaced by renaming, never written in place, so a link never sees a later change of
        the other run. False when ``other`` has no such file."""
        src = other.path / rel
        if not src.is_file():
            return False
        atomic_link(src, self.path / (rel if as_rel is None else as_rel))
        return True

    def scaffold(self) -> list[str]:
        """The extra states a representative holds (or will hold) for its duplicates until they are filled
        (:func:`lth.executor.dedupe.deduplicate`): ``scaffold.json`` (empty when none or unreadable)."""
        try:
            names = self.read_json(paths.SCAFFOLD)
        except DamagedFile:
            return []
        return [str(n) for n in names] if isinstance(names, list) else []

    def write_scaffold(self, names: list[str]) -> None:
        """Record ``names`` as the run's scaffold states (``scaffold.json``); an empty list removes the record."""
        if names:
            self.write_json(paths.SCAFFOLD, names)
        else:
            (self.path / paths.SCAFFOLD).unlink(missing_ok=True)

    def state_iterations(self) -> dict[str, int]:
        """``{state name: iteration}`` of the stored states that recorded one."""
        return self.read_object(f"{paths.STATES}/index.json") or {}

    def state_at(self, iteration: int, prefer: str | None = None) -> str | None:
        """The name of a stored state at ``iteration`` (``prefer`` when it is one of them; states at one iteration
        hold the same weights, whatever their names), or None."""
        index = self.state_iterations()
        if prefer is not None and index.get(prefer) == iteration:
            return prefer
        return next((name for name, it in index.items() if int(it) == iteration), None)

    def states(self) -> dict[str, str]:
        """``{name: absolute path}`` of the stored states."""
        d = self.path / paths.STATES
        return {p.stem: str(p) for p in sorted(d.glob("*.pt"))} if d.exists() else {}

    def read_hessian(self) -> list[dict[str, Any]]:
        """The Hessian eigenvalue rows of ``hessian.csv`` (values as written, numbers parsed; [] without one).

        Raises :class:`DamagedFile` when the file is not what :meth:`write_hessian` writes: not UTF-8 text, no
        header with ``state``, ``rank`` and ``eigenvalue``, a last line without its line end, or a row whose cell
        count differs from the header's."""
        return self._read_table(paths.HESSIAN, parse_hessian, encoding="utf-8")

    def write_hessian(self, rows: list[dict[str, Any]]) -> None:
        """Write Hessian eigenvalue rows (``hessian.csv``, atomically; columns in the rows' order)."""
        atomic_write_bytes(self.path / paths.HESSIAN, hessian_csv(rows))

    @property
    def telemetry_file(self) -> Path:
        """Where the run's weight telemetry lives (whether or not it has one)."""
        return self.path / paths.TELEMETRY

    def has_telemetry(self) -> bool:
        """Whether the run recorded weight telemetry (``telemetry.csv``)."""
        return self.telemetry_file.exists()

    def copy_telemetry(self, other: RunDir) -> None:
        """Take ``other``'s telemetry file (a replay of this run), atomically."""
        atomic_write_bytes(self.path / paths.TELEMETRY, (other.path / paths.TELEMETRY).read_bytes())

    def write_telemetry(self, rows: list[dict[str, Any]]) -> None:
        """Write the weight-telemetry rows (``telemetry.csv``, atomically): ``iteration`` and ``step`` first, then
        every other key found in any row, sorted by name; missing values are empty cells."""
        atomic_write_bytes(self.path / paths.TELEMETRY, telemetry_csv(rows))

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Write every evaluation row as CSV (atomically; the format: :func:`lth.store.tables.metrics_csv`)."""
        atomic_write_bytes(self.path / paths.METRICS, metrics_csv(rows))

    def read_metrics(self) -> list[dict[str, Any]]:
        """The rows of ``metrics.csv`` with numbers parsed (every column, known or extra; empty cells are None).

        Raises :class:`DamagedFile` when the file is not what :meth:`write_metrics` writes: no header with
        ``iteration``, a last line without its line end (a truncated file), a row whose cell count differs from
        the header's, or a non-number in a numeric column."""
        return self._read_table(paths.METRICS, parse_metrics)

    def _read_table(self, name: str, parse: Callable[[str], list[dict[str, Any]]], encoding: str | None = None
                    ) -> list[dict[str, Any]]:
        """The rows ``parse`` reads from the run's table ``name`` ([] when absent); :class:`DamagedFile` when its
        text cannot be read or ``parse`` rejects it (:class:`~lth.store.tables.BadTable`: the reason)."""
        try:
            text = (self.path / name).read_text(encoding=encoding)
        except FileNotFoundError:
            return []
        except UnicodeDecodeError as e:
            raise self._damaged(name, f"not CSV text ({e})") from None
        try:
            return parse(text)
        except BadTable as e:
            raise self._damaged(name, str(e)) from None

    @contextlib.contextmanager
    def lock(self, wait: bool = True) -> Iterator[None]:
        """Hold an exclusive lock on this run. While another process holds it: block (``wait``), or raise
        :class:`Busy` at once (``wait=False``: an executor goes on with other work meanwhile)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / paths.LOCK, "a+") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Busy(f"{self.path} is locked by another process") from None
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def busy(self) -> bool:
        """Whether another process (or another open lock in this one) holds this run's lock now; creates
        nothing."""
        if not (self.path / paths.LOCK).exists():
            return False
        try:
            with self.lock(wait=False):
                return False
        except Busy:
            return True
