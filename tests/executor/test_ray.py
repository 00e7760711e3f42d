"""The Ray executor on a local Ray instance (2 CPUs): a lottery experiment with a branch, run with
``lth lottery --executor ray``, equals the local executor's run for run; a failing node is retried, then
reported, and independent nodes finish; the executor starts a Ray instance only when none is up, and stops
only what it started."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

import cluster_cases as cases  # noqa: E402  (beside this file: pytest puts its folder on sys.path)
from conftest import lth  # noqa: E402

import lth.executor.ray as ray_executor  # noqa: E402
from lth.executor import EXECUTORS  # noqa: E402


@pytest.fixture(scope="module")
def ray_instance():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)  # not a `ray start` one
    yield
    ray.shutdown()


def test_lottery_with_a_branch_equals_the_local_executor(ray_instance, tmp_path: Path) -> None:
    """Same JSON (paths relative to the store, accuracies, statuses, states) and the same weights, bit for bit."""
    argv = ["lottery", "--preset", "digits_mlp", "--levels", "1", "--replicates", "2", "--branches", "reinit",
            "--training-steps", "20it", "--eval-every", "10it", "--device", "cpu", "--json"]
    code, out, err = lth(*argv, "--root", str(tmp_path / "ray"), "--executor", "ray", "--retries", "0")
    assert code == 0, err
    code, local_out, err = cases.local_reference(lambda: lth(*argv, "--root", str(tmp_path / "local")))
    assert code == 0, err
    got, want = json.loads(out), json.loads(local_out)
    assert got.keys() == want.keys() == {"runs", "branches"} and len(got["runs"]) == 4
    for key in got:
        assert cases.relative(got[key], tmp_path / "ray") == cases.relative(want[key], tmp_path / "local")
        assert all(r["status"] == "complete" for r in got[key])
    cases.check_same_weights(tmp_path / "ray", tmp_path / "local")
    code, _, err = lth(*argv, "--root", str(tmp_path / "ray"), "--executor", "ray")
    assert code == 0 and "training a population" not in err  # again: everything is done, nothing submitted


def test_a_failing_node_is_retried_then_reported(ray_instance, tmp_path: Path) -> None:
    records = cases.check_failure_is_retried_then_reported(EXECUTORS["ray"](options=cases.OPTIONS, retries=2),
                                                           tmp_path, 2)
    assert "(log: worker-*.err in " in records["bad"]["error"]  # where the traceback is


class FakeRay:
    """What the executor's session asks of Ray, recorded."""

    def __init__(self, up: bool) -> None:
        self.up, self.calls = up, []

    def is_initialized(self) -> bool:
        return self.up

    def init(self, **kwargs: Any) -> None:
        self.calls.append(("init", kwargs, os.environ.get("PYTHONPATH", "")))
        self.up = True

    def shutdown(self) -> None:
        self.calls.append(("shutdown",))
        self.up = False

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": 8.0, "GPU": 2.0}

    def remote(self, fn: Any) -> Any:
        self.calls.append(("remote", fn.__name__))
        return self

    def options(self, **kwargs: Any) -> Any:
        self.calls.append(("options", kwargs))
        return self


@pytest.mark.parametrize("up, address", [(False, None), (False, "10.0.0.1:6379"), (True, None)])
def test_the_session_starts_and_stops_only_its_own_ray(monkeypatch: pytest.MonkeyPatch, up: bool,
                                                       address: str | None) -> None:
    fake = FakeRay(up)
    monkeypatch.setattr(ray_executor, "_ray", lambda: fake)
    monkeypatch.setattr(ray_executor, "reachable", lambda a: a)  # no cluster answers at 10.0.0.1 here
    monkeypatch.setattr(ray_executor, "auth_problem", lambda a: None)
    before = os.environ.get("PYTHONPATH")
    with EXECUTORS["ray"](address=address, init_options={"num_cpus": 2}).session():
        pass
    kinds = [c[0] for c in fake.calls]
    assert kinds == (["remote", "options"] if up else ["init", "remote", "options", "shutdown"])
    assert ("options", {"num_cpus": 1.0, "num_gpus": 1.0, "max_retries": 0}) in fake.calls  # the cluster has GPUs
    if not up:
        _, kwargs, path = fake.calls[0]
        src = str(Path(ray_executor.__file__).resolve().parents[2])
        if address is None:  # a new local instance (not a `ray start` cluster that Ray would join by default):
            # its workers import this lth; num_cpus passed on
            assert kwargs["address"] == "local" and kwargs["num_cpus"] == 2 and path.split(os.pathsep)[0] == src
        else:
            assert kwargs["address"] == address and "num_cpus" not in kwargs
    assert os.environ.get("PYTHONPATH") == before


@pytest.mark.parametrize("address, message", [
    ("garbage", "--address: bad value 'garbage'; allowed: auto, or HOST:PORT"),
    ("10.0.0.1:99999", "--address: bad value '10.0.0.1:99999'"),
    ("127.0.0.1:{port}", "--address 127.0.0.1:{port}: cannot connect to Ray: nothing answers at 127.0.0.1:{port}"),
])
def test_a_bad_address_is_one_line_exit_2_at_once(tmp_path: Path, address: str, message: str) -> None:
    """Ray itself waits minutes, printing warnings, where nothing answers; lth says so in one line, at once."""
    import socket
    import time

    with socket.socket() as s:  # a port where nothing listens: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        t = time.perf_counter()
        code, _, err = lth("train", "--preset", "digits_mlp", "--root", str(tmp_path / "s"), "--executor", "ray",
                           "--address", address.format(port=port))
    assert code == 2 and len(err.strip().splitlines()) == 1 and message.format(port=port) in err, err
    assert time.perf_counter() - t < 20 and not (tmp_path / "s").exists()


def test_a_listening_address_is_left_to_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        address = f"127.0.0.1:{s.getsockname()[1]}"
        assert ray_executor.reachable(address) == address
        assert ray_executor.reachable("ray://" + address) == "ray://" + address


def test_address_auto_with_a_malformed_ray_address_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--address auto`` reads RAY_ADDRESS as Ray does: a malformed one is named (a UserError, not a ValueError
    from inside Ray); a Ray Client address (``ray://``) is left to ray.init."""
    from lth.errors import UserError

    monkeypatch.setenv("RAY_ADDRESS", "not an address")
    with pytest.raises(UserError, match="--address auto: RAY_ADDRESS='not an address' is not an address"):
        ray_executor.reachable("auto")
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    assert ray_executor.reachable("auto") == "auto"


# ------------------------------------------------- two Ray nodes on this machine, started by `ray start`
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_start(env: dict[str, str], temp: str, *args: str) -> Any:
    """``ray start --block ARGS`` on free ports; the process (its children are the node's)."""
    import shutil
    import subprocess

    ports = [f"--{name}={_free_port()}" for name in (
        "node-manager-port", "object-manager-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
        "runtime-env-agent-port", "metrics-export-port")]
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    return subprocess.Popen([ray_cli, "start", "--block", "--num-cpus=1", "--node-ip-address=127.0.0.1",
                             "--disable-usage-stats", f"--temp-dir={temp}", *ports, *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop_node(proc: Any) -> None:
    """Stop a ``ray start --block`` process and every process it started, by process id (SIGKILL: a test node
    holds nothing worth a graceful drain)."""
    import psutil

    try:
        procs = [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]
    except psutil.NoSuchProcess:
        procs = []
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    proc.wait()
    psutil.wait_procs(procs, timeout=10)


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory):
    """A head and a worker node (one CPU each) started with `ray start` as a new user would on a machine where
    ~/.ray/auth_token exists (any local ray.init() leaves one): the head turns token authentication on by itself;
    the worker is given RAY_AUTH_MODE=token, as docs/cluster.md says. Yields (address, env, worker process)."""
    import secrets
    import tempfile
    import time

    from lth.errors import UserError

    home = tmp_path_factory.mktemp("home")
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
    temp = tempfile.mkdtemp(prefix="lthray")  # short: Ray's socket paths must fit in 107 characters
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), PYTHONPATH=str(Path(ray_executor.__file__).resolve().parents[2]))
    port = _free_port()
    head = _ray_start(env, temp, "--head", f"--port={port}", "--include-dashboard=false")
    address = f"127.0.0.1:{port}"
    worker = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the head listens
        try:
            ray_executor.reachable(address, timeout=1.0)
            break
        except UserError:
            time.sleep(0.3)
    try:
        worker = _ray_start({**env, "RAY_AUTH_MODE": "token"}, temp, f"--address={address}")
        import psutil

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(c.name() == "raylet" for c in
                                                      psutil.Process(worker.pid).children(recursive=True)):
            time.sleep(0.3)
        time.sleep(5)  # the raylet registers with the head
        yield address, env, worker
    finally:
        for proc in (worker, head):
            if proc is not None:
                _stop_node(proc)
        import shutil

        shutil.rmtree(temp, ignore_errors=True)


def _driver(env: dict[str, str], argv: list[str]) -> Any:
    import subprocess

    return subprocess.Popen([sys.executable, "-m", "lth", *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_token_cluster_joined_without_a_token_is_one_line_at_once(two_nodes, tmp_path: Path) -> None:
    """The head turned token authentication on by itself (~/.ray/auth_token exists); a driver given its address
    does not: one line saying so and what to do, in seconds (Ray itself warns for half a minute, then reports a
    generic connection error)."""
    import time

    address, env, _ = two_nodes
    t = time.perf_counter()
    p = _driver(env, ["train", "--preset", "digits_mlp", "--root", str(tmp_path / "s"), "--device", "cpu",
                      "--executor", "ray", "--address", address])
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2 and len(err.strip().splitlines()) == 1, err
    assert f"cluster at {address} uses token authentication and this process does not" in err
    assert "run with RAY_AUTH_MODE=token" in err and time.perf_counter() - t < 28


def test_a_killed_worker_nodes_run_is_retried_on_the_head_and_equals_local(two_nodes, tmp_path: Path) -> None:
    """Two populations (one per node); the worker node's raylet is killed while its task trains: the task is
    retried on the head, and every run equals the local executor's, tensor for tensor; Ray's report of the dead
    raylet goes to stderr (stdout holds the --json document only)."""
    import time

    import psutil

    address, env, worker = two_nodes
    argv = ["train", "--preset", "digits_mlp", "--replicates", "2", "--max-population", "1", "--training-steps",
            "6000it", "--eval-every", "2000it", "--device", "cpu"]  # long enough to be killed mid-task
    p = _driver({**env, "RAY_AUTH_MODE": "token"}, [*argv, "--root", str(tmp_path / "ray"), "--executor", "ray",
                                                     "--address", address, "--retries", "1", "--json"])
    (raylet,) = [c for c in psutil.Process(worker.pid).children(recursive=True) if c.name() == "raylet"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any("train_remote" in " ".join(c.cmdline())
                                                  for c in raylet.children(recursive=True)):
        time.sleep(0.1)
    assert time.monotonic() < deadline, "no task reached the worker node"
    raylet.kill()
    out, err = p.communicate(timeout=240)
    assert p.returncode == 0, err
    assert "trying 1 run(s) again" in err, err
    got = json.loads(out)["runs"]
    code, local_out, lerr = cases.local_reference(lambda: lth(*argv, "--root", str(tmp_path / "local"), "--json"))
    assert code == 0, lerr
    assert cases.relative(got, tmp_path / "ray") == cases.relative(json.loads(local_out)["runs"], tmp_path / "local")
    assert all(r["status"] == "complete" for r in got)
    cases.check_same_weights(tmp_path / "ray", tmp_path / "local")
