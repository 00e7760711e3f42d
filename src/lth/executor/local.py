"""The in-process executor: each population trains here, one after another."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lth.executor.base import Executor
from lth.executor.work import train_group
from lth.graph import Node


@dataclass
class LocalExecutor(Executor):
    """Trains every population in this process (errors propagate: a local failure is a bug to see)."""

    def train_populations(self, groups: list[list[Node]]) -> dict[Path, str]:
        """Train the groups one after another (waiting for a group another process is training)."""
        for g in groups:
            train_group(g, self.dataset(g[0].spec.data), self.options, self.on_population)
        return {}

    def wait(self) -> list[tuple[list[Node], dict[Path, str]]]:
        """Train the submitted groups one after another (one wave), skipping a group that another process
        started meanwhile: the graph loop finds it finished, or still busy, and goes on with other work, so
        that processes sharing a store split the work instead of queueing behind each other's locks."""
        groups, self._pending = self._pending, []
        for g in groups:
            started: list[int] = []

            def on_population(size: int, started: list[int] = started) -> None:
                started.append(size)
                if self.on_population:
                    self.on_population(size)

            train_group(g, self.dataset(g[0].spec.data), self.options, on_population, wait=False)
            if not started:  # another process trains it, or trained it: nothing was trained here
                self._emit("skipped", names=[n.name for n in g])
        return [(g, {}) for g in groups]
