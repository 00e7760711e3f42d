"""The in-process executor: populations train here, one after another, or (``streams > 1`` on a GPU) several at
once, each in its own thread on its own CUDA stream.

Why at once: a population of small networks (LeNet-300-100 at batch 60) leaves most of a GPU idle, since each
kernel of its step is small and the step is bound by the latency of one kernel after another. Two populations
replaying their CUDA graphs on two streams fill it together. In a lottery graph the trunk is a chain (level l+1
starts from level l's ticket) and the branches are leaves that nothing waits for; with ``streams > 1`` the
executor keeps them apart so the chain never waits for leaf work: ready nodes are grouped by population key,
by whether other nodes start from them (chain nodes first in line), and by depth in the graph (so a
population's members do not depend on which thread finished first: the same graph gives the same populations).
Leaf populations use at most ``streams - 1`` slots while chain nodes remain.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lth.errors import UserError
from lth.executor.base import Executor
from lth.executor.work import train_group
from lth.graph import Node
from lth.store import RunDir


@dataclass
class LocalExecutor(Executor):
    """Trains every population in this process (errors propagate: a local failure is a bug to see).

    ``streams``: how many populations train at once (threads, each on its own CUDA stream on a GPU); None: one
    on a CPU, :data:`AUTO_STREAMS` on a GPU."""

    streams: int | None = None
    _running: dict[cf.Future, list[Node]] = field(default_factory=dict, repr=False)
    _queue: list[list[Node]] = field(default_factory=list, repr=False)
    _pool: cf.ThreadPoolExecutor | None = field(default=None, repr=False)
    _announcing: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.streams is not None and self.streams < 1:
            raise UserError(f"--streams: bad value {self.streams}; allowed: a positive integer")

    def slots(self) -> int:
        """How many populations train at once."""
        if self.streams is not None:
            return self.streams
        return AUTO_STREAMS if self.options.torch_device().type == "cuda" else 1

    def train_populations(self, groups: list[list[Node]]) -> dict[Path, str]:
        """Train the groups one after another."""
        for g in groups:
            train_group(g, self.dataset(g[0].spec.data), self.options, self.on_population)
        return {}

    # -- several populations at once
    def populations(self, ready: list[Node]) -> list[list[Node]]:
        """One at a time: by population key. At once: by population key, chain or leaf, and depth."""
        if self.slots() == 1 or not hasattr(self, "feeds"):
            return super().populations(ready)
        by: dict[tuple[bool, int], list[Node]] = {}
        for n in ready:
            by.setdefault((n.path not in self.feeds, self.depth.get(n.path, 0)), []).append(n)
        out: list[list[Node]] = []
        for _, nodes in sorted(by.items(), key=lambda kv: kv[0]):
            out += super().populations(nodes)
        return out

    def submit(self, groups: list[list[Node]]) -> None:
        """One at a time: keep them for :meth:`wait`. At once: queue them (chain populations first)."""
        if self.slots() == 1:
            return super().submit(groups)
        for g in groups:
            self.dataset(g[0].spec.data)  # loaded here, in this thread, before any worker reads it
        self._queue += groups
        self._queue.sort(key=lambda g: (not self._chain(g), min(self.depth.get(n.path, 0) for n in g)))

    def wait(self) -> list[tuple[list[Node], dict[Path, str]]]:
        """One at a time: train the pending groups now. At once: start queued populations on free slots (a leaf
        population leaves one slot free while chain nodes remain), then wait for the first to end."""
        if self.slots() == 1:
            return super().wait()
        if self._pool is None:
            self._pool = cf.ThreadPoolExecutor(max_workers=self.slots(), thread_name_prefix="lth-population")
        chain_left = any(self._chain(g) for g in self._queue) or any(self._chain(g) for g in self._running.values())
        for g in list(self._queue):
            if len(self._running) >= self.slots():
                break
            leaves = sum(not self._chain(r) for r in self._running.values())
            if not self._chain(g) and chain_left and self.slots() > 1 and leaves >= self.slots() - 1:
                continue
            self._queue.remove(g)
            self._running[self._pool.submit(self._train, g)] = g
        done, _ = cf.wait(list(self._running), return_when=cf.FIRST_COMPLETED)
        out = []
        for f in done:
            g = self._running.pop(f)
            f.result()  # a local failure is raised here, in the caller's thread
            out.append((g, {}))
        return out

    def _chain(self, group: list[Node]) -> bool:
        return any(n.path in getattr(self, "feeds", ()) for n in group)

    def _emit(self, event: str, **info: Any) -> None:
        # at once, a population is announced ("wave", then on_population) by its own thread when it starts
        if event == "wave" and self.slots() > 1 and not info.pop("starting", False):
            return
        super()._emit(event, **info)

    def _announce(self, group: list[Node]) -> Any:
        def announce(size: int) -> None:
            with self._announcing:
                names = [n.name for n in group if not RunDir(n.path).finished()]
                self._emit("wave", ready=size, populations=[size], names=[names], starting=True)
                if self.on_population is not None:
                    self.on_population(size)
        return announce

    def _train(self, group: list[Node]) -> None:
        data = self.dataset(group[0].spec.data)
        device = self.options.torch_device()
        if device.type != "cuda":
            train_group(group, data, self.options, self._announce(group))
            return
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.default_stream(device))  # the data were copied on the default stream
        with torch.cuda.stream(stream):
            train_group(group, data, self.options, self._announce(group))
        stream.synchronize()

    def session(self) -> Any:
        """Shut the worker threads down when the graph ends."""
        import contextlib

        @contextlib.contextmanager
        def held() -> Any:
            try:
                yield
            finally:
                if self._pool is not None:
                    self._pool.shutdown(wait=True, cancel_futures=True)
                    self._pool = None
                self._queue.clear()
                self._running.clear()
        return held()


AUTO_STREAMS = 1  # populations at once on a GPU by default (bench/RESULTS.md, "Populations at once")
