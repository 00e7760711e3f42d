"""The Ray executor on a local Ray instance (2 CPUs): a lottery experiment with a branch, run with
``lth lottery --executor ray``, equals the local executor's run for run; a failing node is retried, then
reported, and independent nodes finish; the executor starts a Ray instance only when none is up, and stops
only what it started."""

from __future__ import annotations

import json
import os
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
