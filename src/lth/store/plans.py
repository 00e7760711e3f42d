"""What the store was asked to hold: one plan file per command that planned a graph, and the status of every
planned run against what the store holds now.

Each command that runs a graph (``lth train``, ``lottery``, ``branch``, ``stability``, ``landscape``, ``recipe``,
``demo``, ``lth.api.run``) records it before anything trains, in ``<root>/plans/<UTC time>-<pid>-<command>.json``
(written atomically; one file per invocation, rewritten whole when the same command runs a second graph)::

    {"command": "lottery", "created": "2026-12-06T08:30:00.123456+00:00",
     "runs": [{"path": "lottery_<hash>/replicate_0/level_1", "node": "<digest>", "kind": "lottery",
               "what": "trunk level 1", "replicate": 0, "level": 1, "branch": null, "copy": null,
               "parents": ["lottery_<hash>/replicate_0/level_0"]}, ...]}

Paths are relative to the store (a store can be moved). :func:`planned` merges every plan file (a later plan's
entry for a path replaces an earlier one's); :func:`plan_status` gives each planned run's status:

- ``complete`` / ``diverged``: finished (``done.json`` readable, the final state a zip archive where complete);
- ``damaged``: a done marker, but a file of the run cannot be read (:meth:`lth.store.RunDir.damaged`);
- ``running``: another process holds the run's lock now;
- ``failed``: training raised (the executor wrote ``failed.json`` with the error);
- ``blocked``: not finished, and a run it starts from failed, diverged or is blocked;
- ``unfinished``: started (``spec.json`` or a checkpoint) but not finished (interrupted, or a job that died);
- ``missing``: nothing of it is in the store (never trained, or its folder was deleted).

Only ``complete`` and ``diverged`` count as present (:data:`PRESENT`).
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from lth.store import paths
from lth.store.atomic import atomic_write_bytes
from lth.store.run import DamagedFile, RunDir

PRESENT = ("complete", "diverged")  # statuses of a run whose results are in the store
STATUSES = ("complete", "diverged", "damaged", "running", "failed", "blocked", "unfinished", "missing")


class PlannedNode(Protocol):
    """What a plan records of a run node (:class:`lth.graph.Node` is one)."""

    path: Path
    replicate: int
    meta: dict[str, Any]

    @property
    def digest(self) -> str: ...

    def parents(self) -> list[Any]: ...


def _rel(root: Path, path: Path) -> str:
    """``path`` relative to ``root`` (posix), or absolute where it lies outside it."""
    path = Path(path).resolve()
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def describe(meta: dict[str, Any], replicate: int) -> str:
    """What a run is, in words, from its node's ``meta``: ``trunk level 5``, ``branch reinit level 2``,
    ``stability copy 1 of level 3``, ``training run``, ``pretraining``, ``ticket``."""
    kind, level = meta.get("kind"), meta.get("level")
    if kind == "lottery":
        return f"trunk level {level}"
    if kind == "branch":
        return f"branch {meta.get('branch')} level {level}"
    if kind == "stability":
        return f"stability copy {meta.get('copy')} of level {level}"
    if kind == "train":
        return "training run"
    if kind == "pretrain":
        return "pretraining" + (f" of level {level}" if level is not None else "")
    return str(kind or "run")


def entry(root: Path, node: PlannedNode) -> dict[str, Any]:
    """The plan record of one node (paths relative to ``root``)."""
    meta = node.meta or {}
    return {"path": _rel(root, node.path), "node": node.digest, "kind": meta.get("kind"),
            "what": describe(meta, node.replicate), "replicate": node.replicate, "level": meta.get("level"),
            "branch": meta.get("branch"), "copy": meta.get("copy"),
            "parents": [_rel(root, p.path) for p in node.parents()]}


def plan_name(command: str, now: datetime.datetime | None = None) -> str:
    """``<UTC time, microseconds>-<pid>-<command>.json``: names sort by time, and two commands never share one."""
    now = now or datetime.datetime.now(datetime.UTC)
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in command) or "run"
    return f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{os.getpid()}-{safe}.json"


def record_plan(root: str | Path, command: str, nodes: Iterable[PlannedNode], file: Path | None = None) -> Path:
    """Record ``nodes`` (a whole graph: ancestors included) as planned by ``command`` in ``<root>/plans/``;
    returns the plan file. ``file``: a plan file this invocation already wrote: its runs and the new ones are
    written back to it (one file per invocation). A plan file recording exactly this graph for this command is
    reused (nothing written: the command ran again)."""
    root = Path(root).expanduser().resolve()
    runs = {e["path"]: e for e in (entry(root, n) for n in nodes)}
    if file is None:  # the same command planning the same graph again: its plan is in the store already
        same = _same_plan(root, command, list(runs.values()))
        if same is not None:
            return same
    created = datetime.datetime.now(datetime.UTC)
    if file is not None and file.is_file():
        try:
            old = json.loads(file.read_text())
            runs = {**{e["path"]: e for e in old.get("runs", [])}, **runs}
            created = datetime.datetime.fromisoformat(old["created"])
        except (ValueError, KeyError, TypeError, OSError):
            pass  # ours, but unreadable: written again whole below
    file = file or root / paths.PLANS / plan_name(command, created)
    doc = {"command": command, "created": created.isoformat(), "runs": list(runs.values())}
    atomic_write_bytes(file, _dumps(doc).encode())
    return file


def _same_plan(root: Path, command: str, runs: list[dict[str, Any]]) -> Path | None:
    """The newest plan file of ``root`` that records exactly ``runs`` for ``command`` (None when none does), so a
    command run again writes nothing (a graph already planned and trained stays as it was)."""
    for f in reversed(plan_files(root)):
        if not f.name.endswith(f"-{command}.json"):
            continue
        try:
            doc = json.loads(f.read_text())
        except (ValueError, OSError, UnicodeDecodeError):
            continue
        if doc.get("command") == command and doc.get("runs") == runs:
            return f
    return None


def _dumps(doc: dict[str, Any]) -> str:
    """The plan as JSON with one run a line (readable, and small for graphs of thousands of runs)."""
    head = json.dumps({k: v for k, v in doc.items() if k != "runs"})[:-1]
    lines = ",\n  ".join(json.dumps(r, separators=(",", ":")) for r in doc["runs"])
    return f'{head}, "runs": [\n  {lines}\n]}}\n'


def plan_files(root: str | Path) -> list[Path]:
    """The store's plan files, oldest first."""
    d = Path(root).expanduser().resolve() / paths.PLANS
    return sorted(d.glob("*.json")) if d.is_dir() else []


def planned(root: str | Path, warn: bool = True) -> dict[str, dict[str, Any]]:
    """Every run the store's plans name, by path relative to ``root`` (merged: a later plan's entry replaces an
    earlier one's), each with ``command`` (the command that last planned it). A plan file that cannot be read is
    skipped with one warning line on stderr (``warn``)."""
    out: dict[str, dict[str, Any]] = {}
    for f in plan_files(root):
        try:
            doc = json.loads(f.read_text())
            runs = doc["runs"]
            if not isinstance(runs, list):
                raise TypeError("runs is not a list")
        except (ValueError, KeyError, TypeError, OSError, UnicodeDecodeError) as e:
            if warn:
                print(f"lth: warning: skipping unreadable plan file {f} ({type(e).__name__})", file=sys.stderr)
            continue
        for e in runs:
            if isinstance(e, dict) and isinstance(e.get("path"), str):
                out[e["path"]] = {**e, "command": doc.get("command")}
    return out


def run_status(run: RunDir, parents: list[str]) -> str:
    """The status of one planned run (see the module docstring); ``parents``: its parents' statuses."""
    if run.has_done():
        bad = [b for b in run.damaged() if Path(b).name != paths.SCAFFOLD]
        if bad:
            return "damaged"
        if run.complete():
            return "complete"
        try:
            done = run.done or {}
        except DamagedFile:
            return "damaged"
        return "diverged" if done.get("status") == "diverged" else "damaged"  # complete, but no final state
    if not run.path.exists():
        return "blocked" if any(s in ("failed", "diverged", "blocked") for s in parents) else "missing"
    if run.busy():
        return "running"
    if (run.path / paths.FAILED).exists():
        return "failed"
    if any(s in ("failed", "diverged", "blocked") for s in parents):
        return "blocked"
    if (run.path / paths.SPEC).exists() or (run.path / paths.CHECKPOINT).exists():
        return "unfinished"
    return "missing"


def plan_status(root: str | Path, warn: bool = True) -> list[dict[str, Any]]:
    """Every planned run of the store at ``root`` (:func:`planned`) with ``status`` (one of :data:`STATUSES`),
    its absolute ``path`` and ``experiment`` (the absolute experiment folder), parents before children; for a
    failed run, its ``error``. Empty for a store without plans."""
    root = Path(root).expanduser().resolve()
    plan = planned(root, warn)
    status: dict[str, str] = {}

    def of(rel: str, stack: tuple[str, ...] = ()) -> str:
        if rel not in status:
            e = plan.get(rel)
            parents = [] if e is None else [of(p, stack + (rel,)) for p in e.get("parents", []) if p not in stack]
            status[rel] = run_status(RunDir(root / rel), parents)
        return status[rel]

    out = []
    for rel, e in plan.items():
        path = root / rel
        row = {**e, "path": str(path), "status": of(rel),
               "experiment": str(root / Path(rel).parts[0]) if not Path(rel).is_absolute() else str(path.parent)}
        if row["status"] == "failed":
            try:
                row["error"] = (RunDir(path).read_object(paths.FAILED) or {}).get("error")
            except DamagedFile:
                row["error"] = None
        out.append(row)
    return out


def not_present(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of :func:`plan_status` whose results are not in the store (status not in :data:`PRESENT`)."""
    return [r for r in rows if r["status"] not in PRESENT]


def shortfalls(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per experiment folder, kind, branch, copy and level with fewer runs present than planned: ``{"experiment",
    "kind", "branch", "level", "planned", "present", "replicates_missing": [...]}`` (rows of
    :func:`plan_status`)."""
    groups: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        key = (r["experiment"], r.get("kind"), r.get("branch"), r.get("copy"), r.get("level"))
        g = groups.setdefault(key, {"experiment": r["experiment"], "kind": r.get("kind"), "branch": r.get("branch"),
                                    "copy": r.get("copy"), "level": r.get("level"), "planned": 0, "present": 0,
                                    "replicates_missing": []})
        g["planned"] += 1
        if r["status"] in PRESENT:
            g["present"] += 1
        else:
            g["replicates_missing"].append(r.get("replicate"))
    return [g for g in groups.values() if g["present"] < g["planned"]]


# what a missing run's record carries (the plan's entry without its parents, with its status)
MISSING_KEYS = ("path", "what", "status", "kind", "replicate", "level", "branch", "copy", "experiment", "node",
                "command", "error")


def store_status(root: str | Path, warn: bool = True) -> dict[str, Any]:
    """The store's account of its plans: ``{"planned": N, "present": M, "missing": [run, ...], "shortfalls":
    [...]}``. ``missing`` lists every planned run whose results are not in the store (``path``, ``what`` it is,
    ``status``: missing | unfinished | running | failed | blocked | damaged, ``replicate``, ``level``, ``branch``,
    ...); ``shortfalls`` each experiment, kind, branch and level with fewer runs present than planned
    (``planned``, ``present``, ``replicates_missing``). A store without plans (written before lth recorded them)
    has ``planned`` 0 and nothing missing."""
    rows = plan_status(root, warn)
    gone = [{k: r.get(k) for k in MISSING_KEYS if k != "error" or r.get("error") is not None}
            for r in rows if r["status"] not in PRESENT]
    return {"planned": len(rows), "present": len(rows) - len(gone), "missing": gone, "shortfalls": shortfalls(rows),
            "plans": [str(f) for f in plan_files(root)]}


def missing_text(doc: dict[str, Any], root: str | Path, most: int = 3) -> str:
    """One line saying which planned runs are not in the store (empty when none): how many of how many, by status,
    the first ``most`` of them, and the command that lists them all."""
    gone = doc["missing"]
    if not gone:
        return ""
    counts: dict[str, int] = {}
    for r in gone:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    named = "; ".join(f"{r['path']} ({r['what']}, replicate {r['replicate']}: {r['status']})" for r in gone[:most])
    more = f"; and {len(gone) - most} more" if len(gone) > most else ""
    by = ", ".join(f"{n} {s}" for s, n in counts.items())
    return (f"{len(gone)} of {doc['planned']} planned runs are not in the store ({by}): {named}{more}; results "
            f"computed from this store cover fewer runs than planned (lth status --root "
            f"{shlex.quote(str(Path(root).expanduser().resolve()))} lists them)")


def mark_failed(path: Path, error: str) -> None:
    """Record that training the run at ``path`` failed with ``error`` (``failed.json``; removed when the run
    finishes: :meth:`lth.store.RunDir.write_done`)."""
    RunDir(path).write_json(paths.FAILED, {"error": error,
                                           "time": datetime.datetime.now(datetime.UTC).isoformat()})


__all__ = ["MISSING_KEYS", "PRESENT", "STATUSES", "describe", "entry", "mark_failed", "missing_text", "not_present",
           "plan_files", "plan_name", "plan_status", "planned", "record_plan", "run_status", "shortfalls",
           "store_status"]
