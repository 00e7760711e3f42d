"""The Slurm executor: each population is one element of a Slurm job array, submitted with submitit
(``--executor slurm``).

Every time populations become ready they are submitted together as one array (``sbatch --array=0-N%P``), with
the partition, time limit, CPUs and GPUs per task of the flags. ``cluster`` ``local`` runs the same jobs as
local processes through submitit (no Slurm needed: what CI exercises), ``debug`` in this process. submitit
keeps its job files (pickled tasks, logs) in ``folder``, which, like the store, must be on a file system every
node reaches; each job runs this same Python interpreter, so lth must be installed where it points.

On Slurm, a job's status comes from the queue (``squeue``, ``scontrol``: :mod:`lth.executor.slurm_query`), never
from ``sacct``, which fails where accounting is disabled: a job that left the queue ended, successfully if it
left its result or its runs are finished in the store, else failed (and retried). The queue is read every
``poll_s`` seconds, at most every ``poll_max_s`` (no back-off to minutes). Before anything is submitted the request
is checked against the partition (``sinfo``, ``sbatch --test-only``): one that could never run is refused
naming its flag. submitit's log messages go to stderr, never stdout.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import time
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lth.errors import UserError, ref
from lth.executor import slurm_query
from lth.executor.cluster import ClusterExecutor, need
from lth.executor.work import error_line, train_remote, whole_sentences
from lth.graph import Node
from lth.store import RunDir

CLUSTERS = ("slurm", "local", "debug")


def _submitit() -> Any:
    module = need("submitit", "submitit", "slurm", "--executor slurm")
    quiet_stdout()
    return module


def quiet_stdout() -> None:
    """submitit logs to stdout as well as stderr (its own logging configuration): drop the stdout handler, so
    that ``--json`` stdout holds one JSON document; warnings still reach stderr."""
    log = logging.getLogger("submitit")
    for h in list(log.handlers):
        stream = getattr(h, "stream", None)
        if h.get_name() == "submitit_out" or (stream is not None and stream in (sys.stdout, sys.__stdout__)):
            log.removeHandler(h)


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
    gpus_per_task: int | None = None  # None: 1 where the partition has GPUs, else 0
    cpus_per_task: int = 4
    array_parallelism: int = 64
    slurm_extra: dict[str, str] = field(default_factory=dict)  # more sbatch options: {"account": "proj"}
    poll_s: float = 2.0  # the queue is read this often at first, then less often, at most every poll_max_s
    poll_max_s: float = 10.0
    result_grace_s: float = 15.0  # a job that left the queue as COMPLETED may take this long to show its result
    outage_s: float = 1800.0  # stop waiting when Slurm's queue could not be read for this long (the jobs go on)
    _ex: Any = None
    _gpus: int | None = None  # gpus_per_task as resolved for the partition
    _gone: dict[str, float] = field(default_factory=dict, repr=False)  # job id -> when it was seen out of the queue
    _queue_error: str = ""  # the last error reading the queue, said once
    _outage_since: float | None = None  # when the queue could last not be read, since the last answer

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cluster not in CLUSTERS:
            raise UserError(f"{ref('slurm.cluster')}: unknown value {self.cluster!r}; allowed: {', '.join(CLUSTERS)}")
        for flag, v, low in ((ref("slurm.time"), self.time_min, 1), (ref("slurm.gpus_per_task"), self.gpus_per_task, 0),
                             (ref("slurm.cpus_per_task"), self.cpus_per_task, 1),
                             (ref("slurm.array_parallelism"), self.array_parallelism, 1)):
            if v is None and flag == ref("slurm.gpus_per_task"):
                continue
            if not isinstance(v, int) or v < low:
                raise UserError(f"{flag}: bad value {v!r}; expected a whole number >= {low}")
        _submitit()
        if self.max_in_flight is None and self.cluster != "slurm":  # Slurm queues an array itself (%P)
            self.max_in_flight = self.array_parallelism

    def parameters(self) -> dict[str, Any]:
        """What ``AutoExecutor.update_parameters`` receives: shared names, and ``slurm_``-prefixed ones that
        only a Slurm cluster reads (partition, GPUs per task, array parallelism, extra sbatch options)."""
        p: dict[str, Any] = {"name": "lth", "timeout_min": self.time_min, "cpus_per_task": self.cpus_per_task,
                             "slurm_gpus_per_task": self.gpus() or None,
                             "slurm_array_parallelism": self.array_parallelism,
                             "slurm_partition": self.partition}
        if self.slurm_extra:
            p["slurm_additional_parameters"] = dict(self.slurm_extra)
        if self.cluster == "local":
            import torch

            p["gpus_per_node"] = (1 if self.gpus_per_task is None else self.gpus_per_task) \
                if torch.cuda.is_available() else 0
        return {k: v for k, v in p.items() if v is not None}

    def gpus(self) -> int:
        """GPUs per task: as given, else 1 where the partition has GPUs and 0 where it has none (``sinfo``; 1 where
        Slurm cannot be asked)."""
        if self.gpus_per_task is not None:
            return self.gpus_per_task
        if self._gpus is None:
            part = self.partition_info() if self.cluster == "slurm" else None
            self._gpus = 1 if part is None else min(1, part.gpus)
        return self._gpus

    def partition_info(self) -> slurm_query.Partition | None:
        """The partition asked for (``partition``, else the cluster's default) as ``sinfo`` shows it; None where
        Slurm cannot be asked. UserError naming the flag for a partition Slurm does not know."""
        try:
            parts = slurm_query.partitions()
        except slurm_query.SlurmUnavailable:
            return None
        if self.partition is None:
            return next((p for p in parts.values() if p.default), None)
        if self.partition not in parts:
            raise UserError(f"{ref('slurm.partition')}: unknown partition {self.partition!r}; allowed: "
                            f"{', '.join(parts) or 'none (sinfo lists no partition)'}",
                            value=self.partition, allowed=list(parts))
        return parts[self.partition]

    def check(self, graph: list[Node]) -> None:
        """As every executor checks a graph, then the request against the partition: a job that could never run
        (more CPUs, GPUs or memory per task than any node has, a time limit above the partition's, anything else
        ``sbatch --test-only`` refuses) is refused here, naming the flag, before anything is submitted."""
        super().check(graph)
        if self.cluster == "slurm":
            self.check_request()

    def check_request(self) -> None:
        """UserError naming the flag where the request cannot run on the partition (see :meth:`check`)."""
        part = self.partition_info()
        if part is not None:
            where = f"partition {part.name}"
            gpus = self.gpus()
            if self.cpus_per_task > part.cpus:
                raise UserError(f"{ref('slurm.cpus_per_task')}: bad value {self.cpus_per_task}; the nodes of {where} "
                                f"have at most {part.cpus} CPUs", value=self.cpus_per_task, allowed=f"1..{part.cpus}")
            if gpus > part.gpus:
                allowed = f"0..{part.gpus}" if part.gpus else "0 (it has no GPUs)"
                raise UserError(f"{ref('slurm.gpus_per_task')}: bad value {gpus}; the nodes of {where} have at most "
                                f"{part.gpus} GPUs; allowed: {allowed}", value=gpus, allowed=allowed)
            if part.minutes is not None and self.time_min > part.minutes:
                raise UserError(f"{ref('slurm.time')}: bad value {self.time_min} minutes; {where} allows at most "
                                f"{part.minutes}", value=self.time_min, allowed=f"1..{part.minutes}")
            for key, per in (("mem", 1), ("mem-per-cpu", self.cpus_per_task), ("mem-per-gpu", max(gpus, 1))):
                value = {k.replace("_", "-"): v for k, v in self.slurm_extra.items()}.get(key)
                mb = None if value is None else slurm_query.memory_mb(value)
                if mb is not None and mb * per > part.memory_mb:
                    raise UserError(f"{ref('slurm.option')} {key}={value}: more memory than any node of {where} "
                                    f"has ({part.memory_mb} MB)", value=f"{key}={value}",
                                    allowed=f"at most {part.memory_mb} MB a node")
        args = [f"--cpus-per-task={self.cpus_per_task}", "--ntasks=1", f"--time={self.time_min}",
                *([f"--partition={self.partition}"] if self.partition else []),
                *([f"--gpus-per-task={self.gpus()}"] if self.gpus() else []),
                *(f"--{k.replace('_', '-')}={v}" for k, v in self.slurm_extra.items())]
        reason = slurm_query.refusal(args)
        if reason is not None:
            flags = [f"{ref('slurm.partition')} {self.partition or '(default)'}",
                     f"{ref('slurm.cpus_per_task')} {self.cpus_per_task}",
                     f"{ref('slurm.gpus_per_task')} {self.gpus()}",
                     f"{ref('slurm.time')} {self.time_min}",
                     *(f"{ref('slurm.option')} {k}={v}" for k, v in self.slurm_extra.items())]
            raise UserError(f"{', '.join(flags)}: Slurm refuses this request (sbatch --test-only: {reason})",
                            value=" ".join(args), allowed="a request the partition can run")

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
        cancelled (running the command again resumes them from their checkpoints). After a controller outage
        (:class:`~lth.executor.slurm_query.SlurmUnavailable` from :meth:`poll`) they are left to Slurm: ``scancel``
        could not reach it either."""
        try:
            yield
        except slurm_query.SlurmUnavailable:
            self._flying.clear()
            raise
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
        """Wait until at least one job ended: ``(job, error or None)`` for each that did. On Slurm, the queue says
        so (:meth:`_ended_on_slurm`), read every ``poll_s`` seconds, then less often, at most every ``poll_max_s``;
        elsewhere (``local``, ``debug``) submitit's own status, every ``poll_s`` seconds."""
        delay = self.poll_s
        while True:
            out = self._ended_on_slurm(handles) if self.cluster == "slurm" else self._ended(handles)
            if out:
                return out
            time.sleep(delay)
            if self.cluster == "slurm":
                delay = min(self.poll_max_s, delay * 1.5)

    @staticmethod
    def _outcome(job: Any) -> str | None:
        """The error of a job that ended (None: it succeeded), from the result submitit left."""
        try:
            e = job.exception()
        except Exception as err:  # noqa: BLE001 - the debug cluster raises the task's own error here
            e = err
        return None if e is None else f"{job_error(e)} (log: {job_log(job)})"

    def _ended(self, handles: list[Hashable]) -> list[tuple[Hashable, str | None]]:
        return [(job, self._outcome(job)) for job in handles if job.done()]  # type: ignore[attr-defined]

    def _ended_on_slurm(self, handles: list[Hashable]) -> list[tuple[Hashable, str | None]]:
        """The jobs that ended, judged without ``sacct``: a job that left its result ended; one that left the
        queue (``squeue``) without a result ended too: successfully if its runs are finished in the store, else
        failed, with the state ``scontrol`` still knows (after ``result_grace_s`` for a COMPLETED one, whose
        result may still be on its way through a shared file system)."""
        out: list[tuple[Hashable, str | None]] = []
        waiting = []
        for job in handles:
            if job.paths.result_pickle.exists():  # type: ignore[attr-defined]
                out.append((job, self._outcome(job)))
            else:
                waiting.append(job)
        if out or not waiting:
            return out
        try:
            queue = slurm_query.queued([j.job_id for j in waiting])  # type: ignore[attr-defined]
        except slurm_query.SlurmUnavailable as e:
            self._unreadable(e, waiting)
            return []
        self._queue_error, self._outage_since = "", None
        gone = [j for j in waiting if j.job_id not in queue]  # type: ignore[attr-defined]
        states = slurm_query.final_states([j.job_id for j in gone]) if gone else {}  # type: ignore[attr-defined]
        now = time.monotonic()
        for job in gone:
            jid = job.job_id  # type: ignore[attr-defined]
            since = self._gone.setdefault(jid, now)
            state = states.get(jid, "no longer known to Slurm")
            if job.paths.result_pickle.exists():  # type: ignore[attr-defined]
                out.append((job, self._outcome(job)))
            elif all(RunDir(n.path).finished() for n in self._flying.get(job, [])):
                out.append((job, None))
            elif state.startswith("COMPLETED") and now - since < self.result_grace_s:
                continue
            else:
                out.append((job, f"Slurm job {jid} left the queue ({state}) without finishing its runs "
                                 f"(log: {job_log(job)})"))
        for job, _ in out:
            self._gone.pop(job.job_id, None)  # type: ignore[attr-defined]
        return out

    def _unreadable(self, e: slurm_query.SlurmUnavailable, waiting: list[Any]) -> None:
        """The queue could not be read: said once per outage; after ``outage_s`` seconds without an answer,
        :class:`~lth.executor.slurm_query.SlurmUnavailable` naming the jobs left running (the command stops; run
        again, it resumes from what the jobs wrote)."""
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = now
        if str(e) != self._queue_error:  # once per outage, not at every poll
            print(f"lth: cannot read Slurm's queue ({e}); trying again for up to "
                  f"{self.outage_s / 60:g} min", file=sys.stderr)
        self._queue_error = str(e)
        if now - self._outage_since >= self.outage_s:
            jobs = ", ".join(str(j.job_id) for j in waiting[:5]) + (" ..." if len(waiting) > 5 else "")
            raise slurm_query.SlurmUnavailable(
                f"Slurm's controller did not answer for {(now - self._outage_since) / 60:.1f} min ({e}); jobs "
                f"{jobs} were left to Slurm; run the same command again to resume (wait longer: --slurm-unreachable "
                f"TIME; in Python slurm={{'unreachable': TIME}})")


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
        return whole_sentences(tail[-1] if tail else lines[-1])
    return error_line(e)
