"""The Ray executor: each population is one Ray task on a Ray cluster (``--executor ray``).

``address`` None starts a local Ray instance for the command and stops it afterwards; ``auto`` or
``HOST:PORT`` joins a running cluster (``ray start --head``; see docs/cluster.md). If this process is already
connected (``ray.init`` was called), that connection is used and left open. Every worker must reach the store
at the same path, and have lth (and any ``--plugin``) importable.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lth.errors import UserError, ref
from lth.executor.cluster import ClusterExecutor, need
from lth.executor.work import error_line, train_remote
from lth.graph import Node


def _ray() -> Any:
    return need("ray", "Ray", "ray", "--executor ray")


@contextlib.contextmanager
def _workers_import_this_lth(local: bool) -> Iterator[None]:
    """While a local Ray instance starts: this lth's source folder first on ``PYTHONPATH``, which its worker
    processes inherit (a ``runtime_env`` would do the same at several seconds per worker start)."""
    old = os.environ.get("PYTHONPATH")
    if local:
        src = str(Path(__file__).resolve().parents[2])
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (src, old) if p)
    try:
        yield
    finally:
        if local:
            if old is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = old


def auth_hint() -> str:
    """What to add to a connection error when this process does not use Ray's token authentication."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        return ""
    return f" ({TOKEN_CASE}; {TOKEN_FIX})"


TOKEN_CASE = ("Ray 2.60 turns token authentication on for `ray start --head` wherever ~/.ray/auth_token exists, which "
              "any local ray.init() creates, but never for a driver or node given an address")
TOKEN_FIX = "run with RAY_AUTH_MODE=token and the cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN"


@contextlib.contextmanager
def _quiet_fd2() -> Iterator[None]:
    """File descriptor 2 (where C++ code logs) to /dev/null for a while."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def auth_problem(address: str, timeout: float = 10.0) -> str | None:
    """One line saying why this process cannot talk to the Ray cluster at ``HOST:PORT`` with its authentication
    settings, and what to do; None if it can (or this cannot be told). Asked of the cluster's GCS directly,
    which answers at once: ``ray.init`` would print warnings for half a minute and then report a generic
    connection error."""
    try:
        from ray._raylet import GcsClient
        from ray.exceptions import AuthenticationError
    except ImportError:  # another Ray: leave it to ray.init
        return None
    try:
        with _quiet_fd2():  # Ray's C++ client logs the refusal on stderr too
            GcsClient(address=address).internal_kv_get(b"lth-auth-probe", None, timeout=timeout)
    except AuthenticationError:
        mode = os.environ.get("RAY_AUTH_MODE", "").lower()
        if mode == "token":
            return (f"the cluster at {address} refuses this process's Ray token (RAY_AUTH_MODE=token here); give the "
                    f"cluster's token in RAY_AUTH_TOKEN or ~/.ray/auth_token")
        return f"the cluster at {address} uses token authentication and this process does not ({TOKEN_CASE}); " \
               f"{TOKEN_FIX}"
    except Exception:  # noqa: BLE001 - anything else is for ray.init to report
        return None
    return None


def worker_logs(ray: Any) -> str:
    """`` (log: ...)``: the Ray session's log folder (worker-*.err of the node that ran the task), or ''."""
    try:
        return f" (log: worker-*.err in {ray._private.worker._global_node.get_logs_dir_path()} on the node that " \
               f"ran it)"
    except Exception:  # noqa: BLE001 - another Ray, or a connection without a local node
        return ""


def reachable(address: str, timeout: float = 5.0) -> str:
    """``--address`` checked before Ray is asked to join it: ``auto`` resolved as Ray resolves it (``RAY_ADDRESS``,
    then the cluster the last ``ray start`` on this machine recorded), then a TCP connection to its host and port.
    Ray itself waits minutes, printing warnings, for an address where nothing answers. UserError (one line)
    when the address is malformed, none is found, or nothing answers there; else the address as given."""
    allowed = "allowed: auto, or HOST:PORT of a running Ray head (ray start --head)"
    target = address.removeprefix("ray://")
    if target == "auto":
        if os.environ.get("RAY_ADDRESS", "").startswith("ray://"):  # Ray Client: ray.init resolves and checks it
            return address
        try:
            from ray._private.services import canonicalize_bootstrap_address

            target = canonicalize_bootstrap_address("auto") or ""
        except ConnectionError:
            raise UserError(f"{ref('ray.address')} auto: no running Ray cluster found on this machine (nothing in "
                            f"RAY_ADDRESS, no `ray start`); {allowed}") from None
        except ValueError as e:  # a malformed RAY_ADDRESS
            raise UserError(f"{ref('ray.address')} auto: RAY_ADDRESS={os.environ.get('RAY_ADDRESS', '')!r} is not an "
                            f"address ({error_line(e)}); {allowed}") from None
        except (ImportError, AttributeError):  # another Ray: leave resolving to ray.init
            return address
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"{ref('ray.address')}: bad value {address!r}; {allowed}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise UserError(f"{ref('ray.address')} {address}: cannot connect to Ray: nothing answers at {host}:{port} "
                        f"({e.strerror or type(e).__name__}); {allowed}") from None
    return address


@dataclass
class RayExecutor(ClusterExecutor):
    """Trains each population as a Ray task with ``cpus_per_task`` CPUs and ``gpus_per_task`` GPUs (None: one GPU
    when the cluster has any, else none)."""

    address: str | None = None
    cpus_per_task: float = 1.0
    gpus_per_task: float | None = None
    init_options: dict[str, Any] | None = None  # extra ray.init arguments for a local instance (num_cpus=2)
    _remote: Any = None
    _log: str = ""  # where the workers' logs are, said with a task's error

    def __post_init__(self) -> None:
        super().__post_init__()
        _ray()  # a clear error now, not after planning
        if self.address is not None:  # also where this process is connected already (then it is not used)
            reachable(self.address)
        if self.cpus_per_task < 0 or (self.gpus_per_task is not None and self.gpus_per_task < 0):
            raise UserError(f"{ref('ray.cpus_per_task')} / {ref('ray.gpus_per_task')}: expected numbers >= 0")

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Connect to Ray (or start a local instance) for the run; stop what this executor started. Meanwhile
        stdout goes to stderr: Ray prints its nodes' and workers' log lines (a raylet that died, a task's prints)
        on this process's stdout, which must hold nothing but the ``--json`` document."""
        with contextlib.redirect_stdout(sys.stderr):
            with self._session():
                yield

    @contextlib.contextmanager
    def _session(self) -> Iterator[None]:
        ray = _ray()
        started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
            if self.address is None:  # "local": a new instance, even where `ray start` left one to join
                kwargs.update({"address": "local", **(self.init_options or {})})
            else:
                kwargs["address"] = self.address
                target = self.address.removeprefix("ray://")
                if target != "auto" and not self.address.startswith("ray://"):
                    problem = auth_problem(target)
                    if problem:
                        raise UserError(f"{ref('ray.address')} {self.address}: cannot connect to Ray: {problem}")
            try:
                with _workers_import_this_lth(self.address is None):
                    ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise UserError(f"{ref('ray.address')} {self.address}: cannot connect to Ray: {error_line(e)}"
                                f"{auth_hint()}") from None
            started = True
        gpus = self.gpus_per_task
        if gpus is None:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        self._log = worker_logs(ray)
        self._remote = ray.remote(train_remote).options(num_cpus=self.cpus_per_task, num_gpus=gpus, max_retries=0)
        try:
            yield
        finally:
            for task in list(self._flying):  # interrupted: nothing left running for nobody
                with contextlib.suppress(Exception):
                    ray.cancel(task, force=True)
            self._flying.clear()
            self._queue.clear()
            if started:
                ray.shutdown()

    def start(self, groups: list[list[Node]], args: tuple[Any, ...]) -> list[Hashable]:
        """One Ray task per group; a distributed population as ``world_size`` tasks in a placement group
        (:func:`lth.executor.distributed.ray_submit`)."""
        worlds = [self.world_size(g) for g in groups]
        if any(w > 1 for w in worlds):
            from lth.executor.distributed import ray_submit

            gpus = self.gpus_per_task
            if gpus is None:
                gpus = 1.0 if _ray().cluster_resources().get("GPU", 0) > 0 else 0.0
            return [ray_submit([g], args, w, self.nodes, self.cpus_per_task, gpus)[0] if w > 1
                    else self.start([g], args)[0] for g, w in zip(groups, worlds, strict=True)]
        return [self._remote.remote(g, *args) for g in groups]

    def poll(self, handles: list[Hashable]) -> list[tuple[Hashable, str | None]]:
        """Wait for one task, then take every other that has also ended."""
        ray = _ray()
        done, rest = ray.wait(handles, num_returns=1)
        if rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            done += more
        out: list[tuple[Hashable, str | None]] = []
        for task in done:
            try:
                ray.get(task)
                out.append((task, None))
            except Exception as e:  # noqa: BLE001 - a task's error is reported, the graph goes on
                cause = getattr(e, "cause", None)
                out.append((task, f"{error_line(cause if isinstance(cause, BaseException) else e)}{self._log}"))
        return out
