"""The Slurm executor: each population is one element of a Slurm job array, submitted with submitit
(``--executor slurm``).

Every time populations become ready they are submitted together as one array (``sbatch --array=0-N%P``), with
the partition, time limit, CPUs and GPUs per task of the flags. ``cluster`` ``local`` runs the same jobs as
local processes through submitit (no Slurm needed: what CI exercises), ``debug`` in this process. submitit
keeps its job files (pickled tasks, logs) in ``folder``, which, like the store, must be on a file system every
node reaches; each job runs this same Python interpreter, so lth must be installed where it points.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lth.errors import UserError, ref
from lth.executor.cluster import ClusterExecutor, need
from lth.executor.work import error_line, train_remote
from lth.graph import Node

CLUSTERS = ("slurm", "local", "debug")


def _submitit() -> Any:
    return need("submitit", "submitit", "slurm", "--executor slurm")


def parse_minutes(text: str | int, flag: str | None = None) -> int:
    """A time limit in whole minutes from ``90``, ``4:00`` (h:mm) or ``1-00:00`` (days-h:mm); UserError naming
    ``flag`` (default: the field ``slurm.time``) else."""
    flag = flag or ref("slurm.time")
    s = str(text).strip()
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?", s)
    if m is None:
        raise UserError(f"{flag}: bad value {s!r}; expected minutes (90), h:mm (4:00) or days-h:mm (1-00:00)")
    days, first, second = m.groups()
    if days is None and second is None:
        minutes = int(first)
    elif second is None:
        raise UserError(f"{flag}: bad value {s!r}; expected minutes (90), h:mm (4:00) or days-h:mm (1-00:00)")
    else:
        minutes = int(days or 0) * 24 * 60 + int(first) * 60 + int(second)
    if minutes < 1:
        raise UserError(f"{flag}: bad value {s!r}; expected at least one minute")
    return minutes


@dataclass
class SlurmExecutor(ClusterExecutor):
    """Trains each population as a Slurm array element (or a local process, ``cluster="local"``).

    The defaults suit a lottery-ticket study: one GPU and a few CPUs per population (a population is one wide
    network on one GPU), 4 hours per element (a timed-out element resumes from its checkpoint when retried),
    at most 64 elements of an array at once (``local``/``debug``: at most that many populations at once).
    """

    folder: str | Path = "runs/.submitit"
    cluster: str = "slurm"
    partition: str | None = None
    time_min: int = 240
    gpus_per_task: int = 1
    cpus_per_task: int = 4
    array_parallelism: int = 64
    slurm_extra: dict[str, str] = field(default_factory=dict)  # more sbatch options: {"account": "proj"}
    poll_s: float = 2.0
    _ex: Any = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cluster not in CLUSTERS:
            raise UserError(f"{ref('slurm.cluster')}: unknown value {self.cluster!r}; allowed: {', '.join(CLUSTERS)}")
        for flag, v, low in ((ref("slurm.time"), self.time_min, 1), (ref("slurm.gpus_per_task"), self.gpus_per_task, 0),
                             (ref("slurm.cpus_per_task"), self.cpus_per_task, 1),
                             (ref("slurm.array_parallelism"), self.array_parallelism, 1)):
            if not isinstance(v, int) or v < low:
                raise UserError(f"{flag}: bad value {v!r}; expected a whole number >= {low}")
        _submitit()
        if self.max_in_flight is None and self.cluster != "slurm":  # Slurm queues an array itself (%P)
            self.max_in_flight = self.array_parallelism

    def parameters(self) -> dict[str, Any]:
        """What ``AutoExecutor.update_parameters`` receives: shared names, and ``slurm_``-prefixed ones that
        only a Slurm cluster reads (partition, GPUs per task, array parallelism, extra sbatch options)."""
        p: dict[str, Any] = {"name": "lth", "timeout_min": self.time_min, "cpus_per_task": self.cpus_per_task,
                             "slurm_gpus_per_task": self.gpus_per_task or None,
                             "slurm_array_parallelism": self.array_parallelism,
                             "slurm_partition": self.partition}
        if self.slurm_extra:
            p["slurm_additional_parameters"] = dict(self.slurm_extra)
        if self.cluster == "local":
            import torch

            p["gpus_per_node"] = self.gpus_per_task if torch.cuda.is_available() else 0
        return {k: v for k, v in p.items() if v is not None}

    def executor(self) -> Any:
        """The submitit executor, configured (made once)."""
        if self._ex is None:
            submitit = _submitit()
            Path(self.folder).mkdir(parents=True, exist_ok=True)
            try:
                self._ex = submitit.AutoExecutor(folder=str(Path(self.folder) / "%j"), cluster=self.cluster)
            except RuntimeError as e:  # no sbatch/srun here
                raise UserError(f"{ref('executor.kind')} slurm: {error_line(e)} (use {ref('slurm.cluster')} local to "
                                f"run the jobs as local processes)") from None
            with contextlib.suppress(OSError):  # the empty folder submitit makes of the "%j" pattern itself
                (Path(self.folder) / "%j").rmdir()
            self._ex.update_parameters(**self.parameters())
        return self._ex

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """While the graph runs; if it stops early (interrupted, an error), the jobs still in flight are
        cancelled (running the command again resumes them from their checkpoints)."""
        try:
            yield
        finally:
            for job in list(self._flying):
                with contextlib.suppress(Exception):
                    job.cancel(check=False)  # type: ignore[attr-defined]
            self._flying.clear()
            self._queue.clear()

    def start(self, groups: list[list[Node]], args: tuple[Any, ...]) -> list[Hashable]:
        """The groups as one job array (one element per group); a distributed population as a job of its own,
        ``world_size`` tasks over ``nodes`` nodes (:func:`lth.executor.distributed.slurm_submit`)."""
        worlds = [self.world_size(g) for g in groups]
        if any(w > 1 for w in worlds):
            from lth.executor.distributed import slurm_submit

            return [slurm_submit(self, [g], args, w, self.nodes)[0] if w > 1 else self.start([g], args)[0]
                    for g, w in zip(groups, worlds, strict=True)]
        n = len(groups)
        return list(self.executor().map_array(train_remote, groups, [args[0]] * n, [args[1]] * n, [args[2]] * n))

    def poll(self, handles: list[Hashable]) -> list[tuple[Hashable, str | None]]:
        """Wait (polling every ``poll_s`` seconds) until at least one job ended."""
        while True:
            out: list[tuple[Hashable, str | None]] = []
            for job in handles:
                try:
                    if not job.done():  # type: ignore[attr-defined]
                        continue
                    e = job.exception()  # type: ignore[attr-defined]
                except Exception as err:  # noqa: BLE001 - the debug cluster raises the task's own error here
                    e = err
                out.append((job, None if e is None else f"{job_error(e)} (log: {job_log(job)})"))
            if out:
                return out
            time.sleep(self.poll_s)


def job_log(job: Any) -> str:
    """Where a job's error output is (``<folder>/<job id>/<job id>_<index>_log.err``)."""
    try:
        return str(job.paths.stderr)
    except Exception:  # noqa: BLE001 - a job without files (the debug cluster)
        return "none: it ran in this process"


def job_error(e: BaseException) -> str:
    """One line for a failed job: the task's own exception (the last line of the trace submitit reports)."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    if type(e).__name__ in ("FailedJobError", "UncompletedJobError") and lines:
        tail = [ln for ln in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b", ln)]
        return tail[-1][:300] if tail else lines[-1][:300]
    return error_line(e)
