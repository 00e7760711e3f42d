"""Launching one run over several processes, and spreading many runs over several devices.

A *distributed* population trains on ``world_size`` processes (:mod:`lth.engine.distributed`). Every executor
starts them its own way, and each process runs :func:`train_rank`: join the process group, load the data on its
device, (rank 0) lock the members' directories, train, (rank 0) finish the store:

- local: :func:`launch_local` spawns the ranks on this machine (``torch.multiprocessing``, the rendezvous on
  ``127.0.0.1`` at a free port; NCCL with one GPU per rank on CUDA, gloo on the CPU), as ``torchrun`` would;
- Slurm: :func:`slurm_submit` submits one job of ``world_size`` tasks over ``nodes`` nodes, and each task finds
  its rank and the rendezvous in submitit's ``TorchDistributedEnvironment``;
- Ray: :func:`ray_submit` reserves a placement group of ``world_size`` bundles, asks bundle 0 for its address and
  a free port, and starts one task per bundle.

A rank that dies takes the others down (the local launcher terminates them; elsewhere the collective it never
joins times out), the population fails with one line, and running the command again resumes every member from
its last checkpoint (written by rank 0).

*Many small runs*: :func:`spread` trains the populations of a wave side by side, one worker process per device
(``devices``), each worker a population at a time.

*Which to use* (:func:`choose_world_size`, ``world_size`` None): one process per run unless the run is large for
one device: on CUDA with more than one visible GPU, a network of at least :data:`DISTRIBUTED_MIN_PARAMS`
parameters on a dataset of at least :data:`DISTRIBUTED_MIN_EXAMPLES` training examples trains over every visible
GPU (the largest count that divides the batch); everything else trains as populations, spread over the devices.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lth.engine.train import EngineOptions, Job, summary, train_population
from lth.errors import UserError, ref
from lth.graph import Node
from lth.store import RunDir

DISTRIBUTED_MIN_PARAMS = 5_000_000  # ResNet-50 (25.6M) and VGG-16 (15M) are above; ResNet-20 (0.27M) is not
DISTRIBUTED_MIN_EXAMPLES = 200_000  # ImageNet (1.28M) is above; CIFAR-10 (50K) and MNIST (60K) are not


# ------------------------------------------------------------------------------------------------ choices
def check_world_size(world: int, batch_size: int, device: str = "auto", nodes: int = 1,
                     local: bool = True) -> None:
    """UserError (naming ``--world-size``) for a world size the batch or, on this machine, the devices cannot
    hold; ``nodes``: how many machines share it (a cluster executor's ``--nodes``)."""
    if world < 1:
        raise UserError.bad("world_size", world, "a whole number >= 1")
    if batch_size % world:
        divisors = [d for d in range(1, batch_size + 1) if batch_size % d == 0 and d <= 64]
        raise UserError(f"{ref('world_size')} {world}: the global batch of {batch_size} does not split into {world} "
                        f"equal shares; allowed: a divisor of the batch ({', '.join(map(str, divisors))})",
                        value=world, allowed="a divisor of the batch size")
    if nodes < 1 or world % nodes:
        raise UserError(f"{ref('executor.nodes')} {nodes}: {world} processes do not split evenly over {nodes} nodes; "
                        f"allowed: a divisor of {ref('world_size')} {world}", value=nodes,
                        allowed=f"a divisor of {world}")
    if not local or world == 1:
        return
    if _uses_cuda(device):
        have = torch.cuda.device_count()
        if world > have:
            raise UserError(f"{ref('world_size')} {world}: this machine has {have} GPU(s), one per process; allowed: "
                            f"1 to {have} (or a cluster executor with {ref('executor.nodes')})", value=world,
                            allowed=f"1 to {have}")
    else:
        cpus = os.cpu_count() or 1
        if world > cpus:
            raise UserError(f"{ref('world_size')} {world}: this machine has {cpus} CPU core(s), one per process; "
                            f"allowed: 1 to {cpus}", value=world, allowed=f"1 to {cpus}")


def _uses_cuda(device: str) -> bool:
    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def choose_world_size(params: int, n_train: int, batch_size: int, device: str = "auto") -> int:
    """How many processes one run trains on when not told (see the module docstring): every visible GPU for a
    large network on a large dataset, else 1."""
    if not _uses_cuda(device) or params < DISTRIBUTED_MIN_PARAMS or n_train < DISTRIBUTED_MIN_EXAMPLES:
        return 1
    gpus = torch.cuda.device_count()
    return max([w for w in range(1, gpus + 1) if batch_size % w == 0], default=1)


def world_size_of(executor: Any, group: list[Node]) -> int:
    """How many processes ``executor`` trains the population ``group`` on: its ``options.world_size``, else
    :func:`choose_world_size` for the group's network and data (1 for a cluster executor that spans no more than
    one node and has no GPU here to count)."""
    given = executor.options.world_size
    if given is not None:
        return int(given)
    from lth.executor.capacity import count_params

    spec = group[0].spec
    data = executor.dataset(spec.data)
    m = spec.model
    params = count_params(m.model, m.norm, m.width, data.example_shape, data.num_classes)
    return choose_world_size(params, data.train_x.shape[0], spec.data.batch_size, executor.options.device)


def check_distributed(executor: Any, graph: list[Node]) -> None:
    """Before anything is written: UserError where a population of ``graph`` cannot train on the world size
    asked for (its batch, this machine's devices for the local executor, ``--nodes`` for a cluster)."""
    given = executor.options.world_size
    nodes = int(getattr(executor, "nodes", 1) or 1)
    local = not hasattr(executor, "nodes")
    if given is None:
        if nodes > 1:
            raise UserError(f"{ref('executor.nodes')} {nodes} needs {ref('world_size')} (the processes of one run "
                            f"across the nodes)", value=nodes, allowed=f"with {ref('world_size')}")
        return
    if int(given) > 1 and getattr(executor, "cluster", None) == "debug":
        raise UserError(f"{ref('world_size')} {given}: the debug cluster runs one task in this process; allowed with "
                        f"it: 1 (use {ref('slurm.cluster')} local)", value=given, allowed="1")
    for batch in sorted({n.spec.data.batch_size for n in graph}):
        check_world_size(int(given), batch, executor.options.device, nodes, local)


def visible_devices(text: tuple[str, ...] | list[str] = ("auto",)) -> list[str]:
    """The devices ``--devices`` names (``auto``: every visible GPU, else the CPU once)."""
    items = [d for d in text if d]
    if not items or items == ["auto"]:
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return [f"cuda:{i}" for i in range(n)] or ["cpu"]
    import re

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    allowed = f"auto, or devices among cpu, cuda:0 to cuda:{gpus - 1}" if gpus else \
        "auto or cpu (no GPU is visible here)"
    for d in items:
        m = re.fullmatch(r"cuda(?::(\d+))?", d)
        if d != "cpu" and (m is None or not gpus or int(m.group(1) or 0) >= gpus):
            raise UserError(f"{ref('devices')} {d}: not a device of this machine; allowed: {allowed}", value=d,
                            allowed=allowed)
    return [("cuda:0" if d == "cuda" else d) for d in items]


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at ``address`` now."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------------------------ one rank
def rank_device(options: EngineOptions, local_rank: int, devices: list[str] | None = None) -> str:
    """The device of the rank ``local_rank`` on its machine: ``devices[local_rank]`` where given, else its GPU on
    CUDA, else the CPU."""
    if devices:
        return devices[local_rank % len(devices)]
    if _uses_cuda(options.device):
        return f"cuda:{local_rank}"
    return "cpu"


def train_rank(nodes: list[Node], data_dir: str | None, options: EngineOptions, setup: Any, rank: int, world: int,
               address: str, port: int, local_rank: int | None = None, devices: list[str] | None = None,
               timeout_s: float | None = None) -> list[dict[str, Any]]:
    """One rank of a distributed population: join the run's process group (:func:`join`), train
    (:func:`train_joined`), leave; the records of ``nodes`` as the store holds them afterwards."""
    from lth.engine import distributed as engine_dist

    dist, device = join(options, rank, world, address, port, local_rank, devices, timeout_s)
    try:
        return train_joined(dist, device, nodes, data_dir, options, setup)
    finally:
        engine_dist.teardown()


def join(options: EngineOptions, rank: int, world: int, address: str, port: int, local_rank: int | None = None,
         devices: list[str] | None = None, timeout_s: float | None = None) -> tuple[Any, str]:
    """Join a process group as ``rank`` of ``world`` at ``address:port``; (its Dist, this rank's device)."""
    from lth.engine import distributed as engine_dist

    local = rank if local_rank is None else local_rank
    device = rank_device(options, local, devices)
    if device == "cpu":  # the cores are shared by the ranks of this machine
        torch.set_num_threads(options.threads or max(1, (os.cpu_count() or 1) // max(1, world)))
    dist = engine_dist.setup(rank, world, address, port, device, local, timeout_s or options.dist_timeout)
    return dist, device


def train_joined(dist: Any, device: str, nodes: list[Node], data_dir: str | None, options: EngineOptions,
                 setup: Any) -> list[dict[str, Any]]:
    """Train ``nodes`` as one population on this rank of a joined process group. Rank 0 holds the members' locks
    (waiting for another process that holds them), decides which members are unfinished (told to every rank)
    and writes the store."""
    import torch.distributed as tdist

    from lth.data import load_dataset
    from lth.executor.work import (
        _WORKER_DATA,
        discard_damaged,
        discard_strays,
        import_modules,
        link_aliases,
        population_record,
        to_job,
    )

    import_modules(setup)
    opts = dataclasses.replace(options, device=device, dist=dist, callback=options.callback if dist.main else None)
    hp = nodes[0].spec.data
    key = (hp, str(data_dir), device)
    if key not in _WORKER_DATA:  # one rank process may train many populations
        _WORKER_DATA[key] = load_dataset(hp, data_dir, torch.device(device))
    data = _WORKER_DATA[key]
    with contextlib.ExitStack() as stack:
        todo_paths: list[Any] = [None]
        if dist.main:
            for n in sorted(nodes, key=lambda n: str(n.path)):
                stack.enter_context(RunDir(n.path).lock())
            todo_paths = [[str(n.path) for n in nodes if not RunDir(n.path).finished()]]
            for p in todo_paths[0]:
                discard_strays(RunDir(Path(p)))
                discard_damaged(RunDir(Path(p)))
        tdist.broadcast_object_list(todo_paths, src=0)
        todo = [n for n in nodes if str(n.path) in set(todo_paths[0])]
        if todo:
            jobs = [to_job(n, data) for n in todo]
            record = population_record(jobs, torch.device(device), options.tf32)
            for j in jobs:
                j.meta["population"] = record
            train_population(jobs, data, opts)
            dist.barrier()
            if dist.main:
                for n in todo:
                    link_aliases(n, data.train_x.shape[0] // n.spec.data.batch_size)
    return [summary(Job(n.spec, n.replicate, n.path), RunDir(n.path)) for n in nodes]


# ------------------------------------------------------------------------------------------------ local launch
def _rank_loop(rank: int, world: int, address: str, port: int, options: EngineOptions, devices: list[str] | None,
               timeout_s: float | None, inbox: Any, outbox: Any) -> None:
    """A rank process of :class:`RankPool`: join once, then train each population sent until told to stop."""
    import multiprocessing

    from lth.engine import distributed as engine_dist
    from lth.executor.work import error_line

    # A rank reading images from disk starts DataLoader worker processes, which a daemonic process may not: the
    # rank drops the flag for itself (the launcher's handle stays daemonic, so it still stops the rank at exit,
    # and the workers follow their parent)
    multiprocessing.current_process().daemon = False
    dist, device = join(options, rank, world, address, port, None, devices, timeout_s)
    try:
        while True:
            task = inbox.get()
            if task is None:
                break
            try:
                train_joined(dist, device, *task)
                outbox.put((rank, None))
            except Exception as e:  # noqa: BLE001 - said to the launcher, which stops every rank
                outbox.put((rank, error_line(e)))
    finally:
        engine_dist.teardown()


class RankPool:
    """``world`` rank processes spawned on this machine (as ``torchrun`` would: the rendezvous on ``127.0.0.1``
    at a free port; NCCL with one GPU per rank on CUDA, gloo on the CPU), joined once and kept for every
    distributed population of a command (a process start costs seconds). A rank that fails or dies stops
    them all: RuntimeError (one line) naming the rank and how to resume."""

    def __init__(self, world: int, options: EngineOptions, devices: list[str] | None = None,
                 timeout_s: float | None = None) -> None:
        import torch.multiprocessing as mp

        self.world = world
        ctx = mp.get_context("spawn")
        address = "127.0.0.1"
        port = free_port(address)
        self.inboxes = [ctx.SimpleQueue() for _ in range(world)]
        self.outbox = ctx.Queue()
        options = dataclasses.replace(options, callback=None, world_size=world)
        self.procs = [ctx.Process(target=_rank_loop, daemon=True, args=(
            r, world, address, port, options, list(devices) if devices else None, timeout_s, self.inboxes[r],
            self.outbox)) for r in range(world)]
        for p in self.procs:
            p.start()

    def train(self, nodes: list[Node], data_dir: str | None, options: EngineOptions, setup: Any) -> None:
        """Train ``nodes`` as one population on every rank; return when every rank is done."""
        import queue

        options = dataclasses.replace(options, callback=None)
        for box in self.inboxes:
            box.put((nodes, None if data_dir is None else str(data_dir), options, setup))
        done: set[int] = set()
        while len(done) < self.world:
            try:
                rank, error = self.outbox.get(timeout=0.2)
            except queue.Empty:
                self._check_alive()
                continue
            if error is not None:  # a rank whose peer died fails in a collective: name the dead one if any
                time.sleep(0.5)
                self._check_alive()
                self.close(force=True)
                raise RuntimeError(f"rank {rank} of {self.world} failed: {error}; run the command again to resume "
                                   f"from the last checkpoint")
            done.add(rank)

    def _check_alive(self) -> None:
        """RuntimeError (and every rank stopped) when a rank process has died."""
        for r, p in enumerate(self.procs):
            if p.exitcode is not None:
                code = p.exitcode
                self.close(force=True)
                why = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
                raise RuntimeError(f"rank {r} of {self.world} died ({why}); run the command again to resume from "
                                   f"the last checkpoint") from None

    def close(self, force: bool = False) -> None:
        """Stop the rank processes (``force``: at once, without waiting for them to leave the group)."""
        for p, box in zip(self.procs, self.inboxes, strict=True):
            if p.is_alive() and not force:
                with contextlib.suppress(Exception):
                    box.put(None)
        for p in self.procs:
            if force and p.is_alive():
                p.kill()
            p.join(timeout=None if force else 30)
            if p.is_alive():
                p.kill()
                p.join()

    @property
    def alive(self) -> bool:
        """Whether every rank process still runs."""
        return all(p.is_alive() for p in self.procs)


def launch_local(nodes: list[Node], data_dir: str | None, options: EngineOptions, world: int, setup: Any,
                 devices: list[str] | None = None, timeout_s: float | None = None) -> None:
    """Train ``nodes`` as one population over ``world`` processes spawned on this machine for it alone
    (:class:`RankPool`)."""
    pool = RankPool(world, options, devices, timeout_s)
    try:
        pool.train(nodes, data_dir, options, setup)
    finally:
        pool.close()


# ------------------------------------------------------------------------------------------------ many devices
_WORKER_DEVICE: list[str] = []


def _take_device(queue: Any) -> None:
    _WORKER_DEVICE.append(queue.get())


def _on_worker(nodes: list[Node], data_dir: str | None, options: EngineOptions, setup: Any) -> list[Any] | None:
    from lth.executor.work import train_remote

    options = dataclasses.replace(options, device=_WORKER_DEVICE[0])
    return train_remote(nodes, data_dir, options, setup)


class DevicePool:
    """One worker process per device (spawned at the first population, kept for every wave of a command), each
    training one population at a time on its device."""

    def __init__(self, devices: list[str]) -> None:
        import concurrent.futures as cf
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        for d in devices:
            queue.put(d)
        self.devices = list(devices)
        self.pool = cf.ProcessPoolExecutor(max_workers=len(devices), mp_context=ctx, initializer=_take_device,
                                           initargs=(queue,))

    def train(self, groups: list[list[Node]], data_dir: str | None, options: EngineOptions, setup: Any,
              on_population: Callable[[int], None] | None = None) -> None:
        """Train ``groups`` (each one population) side by side; the first error is raised once every group of
        them has ended."""
        options = dataclasses.replace(options, callback=None)
        if options.threads is None and all(d == "cpu" for d in self.devices):  # the cores are shared
            options = dataclasses.replace(options, threads=max(1, (os.cpu_count() or 1) // len(self.devices)))
        futures = []
        for g in groups:
            if on_population:
                on_population(len(g))
            futures.append(self.pool.submit(_on_worker, g, None if data_dir is None else str(data_dir), options,
                                            setup))
        errors = [f.exception() for f in futures]
        for e in errors:
            if e is not None:
                raise e

    def close(self) -> None:
        """Stop the workers."""
        self.pool.shutdown(wait=True, cancel_futures=True)


def spread(groups: list[list[Node]], data_dir: str | None, options: EngineOptions, devices: list[str], setup: Any,
           on_population: Callable[[int], None] | None = None) -> None:
    """Train ``groups`` (each one population) side by side, one worker process per device of ``devices``
    (a :class:`DevicePool` for these groups alone)."""
    pool = DevicePool(devices)
    try:
        pool.train(groups, data_dir, options, setup, on_population)
    finally:
        pool.close()


# ------------------------------------------------------------------------------------------------ Slurm
def _slurm_task(nodes: list[Node], data_dir: str | None, options: EngineOptions, setup: Any,
                timeout_s: float | None = None) -> list[dict[str, Any]]:
    """One task of a distributed Slurm job: its rank and the rendezvous from submitit's environment."""
    from submitit.helpers import TorchDistributedEnvironment

    env = TorchDistributedEnvironment()
    return train_rank(nodes, data_dir, options, setup, env.rank, env.world_size, env.master_addr, env.master_port,
                      env.local_rank, timeout_s=timeout_s)


def slurm_submit(executor: Any, groups: list[list[Node]], args: tuple[Any, ...], world: int, nodes: int) -> list[Any]:
    """Submit each group as one Slurm job of ``world`` tasks over ``nodes`` nodes (one GPU per task on a GPU
    cluster); the handles of the jobs."""
    import submitit

    folder = Path(executor.folder)
    ex = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=executor.cluster)
    with contextlib.suppress(OSError):
        (folder / "%j").rmdir()
    params = {k: v for k, v in executor.parameters().items() if k != "slurm_array_parallelism"}
    gpus = params.pop("slurm_gpus_per_task", None)
    params.update(tasks_per_node=world // nodes)
    if executor.cluster == "slurm":
        params.update(nodes=nodes, **({"slurm_gpus_per_task": gpus} if gpus else {}))
    elif executor.cluster == "local":
        params["gpus_per_node"] = (world // nodes) if torch.cuda.is_available() and gpus else 0
    ex.update_parameters(**params)
    return [ex.submit(_slurm_task, g, *args) for g in groups]


# ------------------------------------------------------------------------------------------------ Ray
def _where() -> tuple[str, int]:
    """This node's address and a free port on it (run in bundle 0 of a placement group)."""
    import ray

    address = ray.util.get_node_ip_address()
    return address, free_port("0.0.0.0")


def _join(ranks: list[Any], group: Any) -> list[dict[str, Any]]:
    """Wait for every rank of a distributed Ray run (rank 0's records), then free its placement group."""
    import ray
    from ray.util.placement_group import remove_placement_group

    try:
        return ray.get(ranks)[0]
    finally:
        remove_placement_group(group)


def ray_submit(groups: list[list[Node]], args: tuple[Any, ...], world: int, nodes: int, cpus: float,
               gpus: float) -> list[Any]:
    """Start each group as ``world`` Ray tasks in a placement group of ``world`` bundles (spread over at least
    ``nodes`` nodes where more than one is asked for); one handle per group (a task that waits for its ranks)."""
    import ray
    from ray.util.placement_group import placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    bundle = {"CPU": cpus, **({"GPU": gpus} if gpus else {})}
    handles = []
    for g in groups:
        group = placement_group([dict(bundle) for _ in range(world)], strategy="SPREAD" if nodes > 1 else "PACK")
        ray.get(group.ready())

        def at(i: int, group: Any = group) -> Any:
            return PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=i)

        address, port = ray.get(ray.remote(_where).options(num_cpus=0, scheduling_strategy=at(0)).remote())
        task = ray.remote(train_rank)
        ranks = [task.options(num_cpus=cpus, num_gpus=gpus, max_retries=0, scheduling_strategy=at(r)).remote(
            g, *args, r, world, address, port, 0 if gpus else None) for r in range(world)]
        handles.append(ray.remote(_join).options(num_cpus=0, max_retries=0).remote(ranks, group))
    return handles


__all__ = ["DISTRIBUTED_MIN_EXAMPLES", "DISTRIBUTED_MIN_PARAMS", "DevicePool", "RankPool", "check_distributed",
           "check_world_size", "choose_world_size", "free_port", "launch_local", "ray_submit", "slurm_submit", "spread",
           "train_rank", "visible_devices", "world_size_of"]
