"""The in-process executor: each population trains here, one after another; with several devices, side by side
(one worker process per device); a distributed population over processes spawned on this machine."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lth.executor.base import Executor
from lth.executor.distributed import DevicePool, RankPool, visible_devices
from lth.executor.work import train_group, worker_setup
from lth.graph import Node


@dataclass
class LocalExecutor(Executor):
    """Trains every population on this machine (errors propagate: a local failure is a bug to see).

    ``devices``: where populations train (default: ``options.device``; ``("auto",)``: every visible GPU). With
    more than one, the populations of a wave train side by side, one worker process per device; a distributed
    population (``options.world_size`` > 1, or chosen: :func:`lth.executor.distributed.choose_world_size`) spawns
    its ranks, one per device."""

    devices: tuple[str, ...] = ()
    # processes kept for the graph's run (stopped when it ends): the ranks of distributed populations (by world
    # size and devices), and one worker per device (key ("devices", ...)) that trains a wave's populations side by side
    _pools: dict[Any, Any] = field(default_factory=dict, repr=False)

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """While the graph runs: the rank processes of distributed populations and the per-device workers are
        spawned once (when first needed) and stopped at the end."""
        try:
            yield
        finally:
            pools, self._pools = list(self._pools.values()), {}
            for pool in pools:
                pool.close()

    def device_list(self) -> list[str]:
        """The devices populations train on."""
        if self.devices:
            return visible_devices(self.devices)
        return visible_devices(("auto",)) if self.options.device == "auto" else [self.options.device]

    def _distributed(self, groups: list[list[Node]]) -> list[list[Node]]:
        """Train the distributed groups (spawned ranks); the others are returned."""
        plain = []
        for g in groups:
            world = self.world_size(g)
            if world <= 1:
                plain.append(g)
                continue
            if self.on_population:
                self.on_population(len(g))
            devices = self.device_list() if self.devices or self.options.device == "auto" else []
            devices = [] if devices == ["cpu"] else devices
            key = (world, tuple(devices))
            if key not in self._pools or not self._pools[key].alive:
                self._pools[key] = RankPool(world, self.options, devices or None)
            try:
                self._pools[key].train(g, self.data_dir, self.options, worker_setup((), g, "local"))
            except BaseException:
                self._pools.pop(key).close(force=True)
                raise
        return plain

    def _spread(self, groups: list[list[Node]]) -> bool:
        """Train ``groups`` side by side when there are several devices and populations; whether it did."""
        devices = self.device_list()
        if len(devices) < 2 or len(groups) < 2:
            return False
        key = ("devices", tuple(devices))
        if key not in self._pools:
            self._pools[key] = DevicePool(devices)
        try:
            self._pools[key].train(groups, self.data_dir, self.options,
                                   worker_setup((), [n for g in groups for n in g], "local"), self.on_population)
        except BaseException:
            self._pools.pop(key).close()
            raise
        return True

    def train_populations(self, groups: list[list[Node]]) -> dict[Path, str]:
        """Train the groups one after another (waiting for a group another process is training)."""
        groups = self._distributed(groups)
        if not self._spread(groups):
            for g in groups:
                train_group(g, self.dataset(g[0].spec.data), self.options, self.on_population)
        return {}

    def wait(self) -> list[tuple[list[Node], dict[Path, str]]]:
        """Train the submitted groups one after another (one wave), skipping a group that another process
        started meanwhile: the graph loop finds it finished, or still busy, and goes on with other work, so
        that processes sharing a store split the work instead of queueing behind each other's locks."""
        groups, self._pending = self._pending, []
        plain = self._distributed(groups)
        if self._spread(plain):
            return [(g, {}) for g in groups]
        for g in plain:
            started: list[int] = []

            def on_population(size: int, started: list[int] = started) -> None:
                started.append(size)
                if self.on_population:
                    self.on_population(size)

            train_group(g, self.dataset(g[0].spec.data), self.options, on_population, wait=False)
            if not started:  # another process trains it, or trained it: nothing was trained here
                self._emit("skipped", names=[n.name for n in g])
        return [(g, {}) for g in groups]
