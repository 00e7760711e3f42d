"""Executors: run a graph of nodes to the end (skip what is done, train what is ready, as populations).

``LocalExecutor`` trains in this process; cluster executors implement the same :class:`Executor` interface.
"""

from lth.executor.base import Executor, default_population
from lth.executor.local import LocalExecutor
from lth.executor.work import CPU_POPULATION_MAX_PARAMS, train_group

EXECUTORS = {"local": LocalExecutor}

__all__ = ["CPU_POPULATION_MAX_PARAMS", "EXECUTORS", "Executor", "LocalExecutor", "default_population",
           "train_group"]
