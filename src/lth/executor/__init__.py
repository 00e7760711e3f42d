"""Executors: run a graph of nodes to the end (skip what is done, train what is ready, as populations).

``LocalExecutor`` trains in this process; ``RayExecutor`` (``lth[ray]``) and ``SlurmExecutor`` (``lth[slurm]``,
through submitit) implement the same :class:`Executor` interface on a cluster. The cluster executors are
imported only when asked for, so importing lth never imports Ray or submitit.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from lth.executor.base import Executor, default_population
from lth.executor.local import LocalExecutor
from lth.executor.work import CPU_POPULATION_MAX_PARAMS, train_group


class _Registry(Mapping[str, Any]):
    """``name -> executor class``; a value given as ``"module:Class"`` is imported on first use."""

    def __init__(self, entries: dict[str, Any]) -> None:
        self._entries = dict(entries)

    def __getitem__(self, name: str) -> Any:
        value = self._entries[name]
        if isinstance(value, str):
            module, cls = value.split(":")
            value = self._entries[name] = getattr(importlib.import_module(module), cls)
        return value

    def __setitem__(self, name: str, value: Any) -> None:
        self._entries[name] = value

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


EXECUTORS = _Registry({"local": LocalExecutor, "ray": "lth.executor.ray:RayExecutor",
                       "slurm": "lth.executor.slurm:SlurmExecutor"})

__all__ = ["CPU_POPULATION_MAX_PARAMS", "EXECUTORS", "Executor", "LocalExecutor", "default_population",
           "train_group"]
