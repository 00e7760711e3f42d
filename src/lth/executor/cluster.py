"""What the cluster executors (Ray, Slurm) share: populations run elsewhere, at once, and may fail.

A :class:`ClusterExecutor` submits every ready population as a task (:meth:`ClusterExecutor.start`), and as
soon as any ends (:meth:`ClusterExecutor.poll`) the shared loop in :meth:`lth.executor.base.Executor.run`
looks again for ready nodes, so independent chains (replicates, rewinding points, branches) progress at their
own speed, up to the cluster's capacity. The store is the one source of truth: a task trains with
:func:`lth.executor.work.train_remote` into the store directories, and the driver reads the results there.

A population that fails is tried again, each unfinished member as a population of its own (so one bad member
cannot take its population down twice), up to ``retries`` more times; then its nodes are reported ``failed``
with the error, their descendants ``blocked``, and everything else goes on.
"""

from __future__ import annotations

import abc
import dataclasses
import sys
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lth.engine.train import EngineOptions
from lth.errors import UserError, ref
from lth.executor.base import Executor
from lth.executor.work import worker_setup
from lth.graph import Node
from lth.store import RunDir


def need(module: str, what: str, extra: str, flag: str) -> Any:
    """Import an optional dependency, or a UserError that says how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"{flag} needs {what}: pip install 'lth[{extra}]'") from None


@dataclass
class ClusterExecutor(Executor):
    """An executor whose populations train in other processes or machines, several at once."""

    retries: int = 1  # how many more times a failed population's members are tried
    plugins: tuple[str, ...] = ()  # --plugin modules every worker imports
    max_in_flight: int | None = None  # most populations submitted at once (None: the cluster decides)
    nodes: int = 1  # machines one distributed population spans (options.world_size processes split over them)
    _attempts: dict[Path, int] = field(default_factory=dict, repr=False)  # failures so far, per node
    _queue: list[list[Node]] = field(default_factory=list, repr=False)  # ready, not yet submitted
    _flying: dict[Hashable, list[Node]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise UserError(f"{ref('executor.retries')} {self.retries}: expected a whole number >= 0")
        if self.max_in_flight is not None and self.max_in_flight < 1:
            raise UserError(f"max_in_flight {self.max_in_flight}: expected a whole number >= 1")

    # -- what a cluster implements
    @abc.abstractmethod
    def start(self, groups: list[list[Node]], args: tuple[Any, ...]) -> list[Hashable]:
        """Submit ``train_remote(group, *args)`` for each group; one handle per group."""

    @abc.abstractmethod
    def poll(self, handles: list[Hashable]) -> list[tuple[Hashable, str | None]]:
        """Block until at least one handle ended; ``(handle, error or None)`` for each that ended."""

    # -- the shared part
    def remote_options(self) -> EngineOptions:
        """The engine options a worker trains with (the progress callback stays here; CPU threads = the task's
        CPUs, so a run's arithmetic does not depend on the worker's machine or environment)."""
        cpus = getattr(self, "cpus_per_task", None)
        threads = self.options.threads or (max(1, int(cpus)) if cpus else None)
        return dataclasses.replace(self.options, callback=None, threads=threads)

    def populations(self, ready: list[Node]) -> list[list[Node]]:
        """As every executor groups them, except that a node that failed before trains alone."""
        again = [n for n in ready if self._attempts.get(n.path)]
        fresh = [n for n in ready if not self._attempts.get(n.path)]
        return (super().populations(fresh) if fresh else []) + [[n] for n in again]

    def submit(self, groups: list[list[Node]]) -> None:
        """Queue the groups and submit as many as the cluster may run at once."""
        self._queue += groups
        self._launch()

    def _launch(self) -> None:
        room = len(self._queue) if self.max_in_flight is None else self.max_in_flight - len(self._flying)
        groups, self._queue = self._queue[:max(0, room)], self._queue[max(0, room):]
        if not groups:
            return
        args = (None if self.data_dir is None else str(self.data_dir), self.remote_options(),
                worker_setup(self.plugins, [n for g in groups for n in g],
                             type(self).__name__.removesuffix("Executor").lower()))
        for g in groups:
            if self.on_population:
                self.on_population(len(g))
        for h, g in zip(self.start(groups, args), groups, strict=True):
            self._flying[h] = g

    def wait(self) -> list[tuple[list[Node], dict[Path, str]]]:
        """The populations that ended; members of a failed one are retried (alone) or reported failed."""
        if not self._flying:
            return []
        out = []
        for h, error in self.poll(list(self._flying)):
            group = self._flying.pop(h)
            errors: dict[Path, str] = {}
            if error is not None:
                todo = [n for n in group if not RunDir(n.path).finished()]
                for n in todo:
                    self._attempts[n.path] = self._attempts.get(n.path, 0) + 1
                    if self._attempts[n.path] > self.retries:
                        errors[n.path] = error
                again = [n for n in todo if n.path not in errors]
                what = f"a population of {len(group)} ({', '.join(n.name for n in group[:3])}" \
                       f"{' ...' if len(group) > 3 else ''})"
                if again:
                    print(f"lth: {what} failed: {error}; trying {len(again)} run(s) again, each alone",
                          file=sys.stderr)
                if errors:
                    print(f"lth: {what} failed after {self.retries + 1} attempt(s): {error}", file=sys.stderr)
                self._emit("failed", nodes=[str(n.path) for n in todo], error=error, retrying=len(again))
            out.append((group, errors))
        self._launch()
        return out

    def attempts(self, path: Path) -> int:
        """How many times the node at ``path`` failed in this executor."""
        return self._attempts.get(path, 0)
