"""The in-process executor: runs what is not yet in the store, grouping compatible jobs into populations.

Jobs that share a :func:`~lth.engine.train.population_key` (replicates, branches at one level, rewinding
sweeps, stability copies) train together without being asked, in groups of at most ``max_population``.
Finished runs are skipped; a run another process is training is waited for, never trained twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lth.data import Dataset, load_dataset
from lth.engine.train import EngineOptions, Job, check_jobs, population_key, summary, train_population
from lth.spec import DataHparams
from lth.store import RunDir

# A population pays on a GPU (one wide network fills it); on 2 CPU cores it pays only for tiny networks,
# where per-step overhead dominates. Measured in bench/population.py; see bench/RESULTS.md.
CPU_POPULATION_MAX_PARAMS = 20_000


@dataclass
class Executor:
    """Trains jobs in-process. ``max_population`` None: chosen from the device (see :func:`default_population`)."""

    data_dir: str | Path | None = None
    options: EngineOptions = field(default_factory=EngineOptions)
    max_population: int | None = None
    on_population: Callable[[int], None] | None = None  # told the size of each population it trains
    _data: dict[tuple[DataHparams, str], Dataset] = field(default_factory=dict)

    def dataset(self, hp: DataHparams) -> Dataset:
        """The dataset for ``hp`` on the training device, loaded once per executor."""
        device = self.options.torch_device()
        key = (hp, str(device))
        if key not in self._data:
            self._data[key] = load_dataset(hp, self.data_dir, device)
        return self._data[key]

    def run(self, jobs: list[Job]) -> list[dict[str, Any]]:
        """Train every job not yet finished; return the run records in the order of ``jobs``."""
        todo = [j for j in jobs if RunDir(j.run_dir).done is None]
        groups: dict[tuple, list[Job]] = {}
        for j in todo:
            groups.setdefault(population_key(j.spec), []).append(j)
        for group in groups.values():
            # data and model are checked before any directory is made: bad input writes nothing
            data = self.dataset(group[0].spec.data)
            check_jobs(group, data)
            fits = default_population(group[0], data, self.options.torch_device())
            size = self.max_population or fits
            for a in range(0, len(group), size):
                self._train_locked(group[a:a + size], data)
        return [summary(j, RunDir(j.run_dir)) for j in jobs]

    def _train_locked(self, members: list[Job], data: Dataset) -> None:
        with contextlib.ExitStack() as stack:
            for j in sorted(members, key=lambda j: str(j.run_dir)):
                stack.enter_context(RunDir(j.run_dir).lock())
            members = [j for j in members if RunDir(j.run_dir).done is None]  # another process may have won
            if members:
                if self.on_population:
                    self.on_population(len(members))
                train_population(members, data, self.options)


def default_population(job: Job, data: Dataset, device: torch.device) -> int:
    """How many members to train at once when the user did not say: from free memory on a GPU; on a CPU,
    one at a time unless the network is tiny."""
    from lth.models import build_model

    probe = build_model(job.spec.model.model, 1, data.example_shape, data.num_classes, job.spec.model.norm,
                        job.spec.model.width)
    params = probe.num_params()
    if device.type != "cuda":
        return 16 if params <= CPU_POPULATION_MAX_PARAMS else 1
    free, _ = torch.cuda.mem_get_info(device)
    example = int(torch.tensor(data.example_shape).prod())
    # weights, grads, two optimiser moments (4 x fp32) + activations (a generous 64 floats per input value)
    per_member = params * 16 + job.spec.data.batch_size * example * 4 * 64
    return max(1, min(256, int(free * 0.5) // per_member))
