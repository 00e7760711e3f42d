"""One run over several processes (gloo on the CPU, 2 processes): ``lth lottery --world-size 2`` equals
``--world-size 1`` at the same global batch (masks exactly, weights within float tolerance after 60 steps), with
one copy of every file; a rank killed mid-run and the command run again ends equal to the uninterrupted run;
bad world sizes, nodes and devices are refused in one line; the local executor given two devices trains four
populations side by side with the results of one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, lth

import lth.api as api
from lth.engine.train import EngineOptions
from lth.executor import LocalExecutor
from lth.store import RunDir

LOTTERY = ("lottery", "--preset", "digits_mlp", "--levels", "2", "--branches", "reinit", "--training-steps", "60it",
           "--device", "cpu", "--json")


def files(root: Path) -> list[str]:
    """Every file of the runs under ``root``, relative to it (not submitit's job files; the store's plans/ records
    are named by the time of each command: only their number is compared)."""
    plans = len(list((root / "plans").glob("*.json")))
    return [f"plans: {plans}"] + sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
                                        and ".submitit" not in p.parts and p.relative_to(root).parts[0] != "plans")


def check_same_runs(root: Path, other: Path, exact: bool = False) -> None:
    """The same files under both stores; masks and initial states equal, final weights equal (``exact``) or
    within float tolerance; accuracies equal, losses within float tolerance."""
    assert files(root) == files(other)
    runs = sorted(p.parent.relative_to(root) for p in root.rglob("done.json"))
    assert runs
    for run in runs:
        a, b = RunDir(root / run), RunDir(other / run)
        assert a.done["status"] == b.done["status"] == "complete"
        if a.has_mask():
            ma, mb = a.load_mask(), b.load_mask()
            assert ma.keys() == mb.keys() and all(torch.equal(ma[k], mb[k]) for k in ma), run
        for name in a.states():
            sa, sb = a.load_state(name), b.load_state(name)
            for k in sa:
                if exact or name == "init":
                    assert torch.equal(sa[k], sb[k]), (run, name, k)
                else:
                    torch.testing.assert_close(sa[k], sb[k], rtol=1e-4, atol=1e-5)
        rows_a, rows_b = a.read_metrics(), b.read_metrics()
        assert [r["iteration"] for r in rows_a] == [r["iteration"] for r in rows_b]
        for ra, rb in zip(rows_a, rows_b, strict=True):
            assert ra["test_accuracy"] == rb["test_accuracy"], run
            for k in ("test_loss", "train_loss"):
                if ra[k] is not None:
                    assert abs(ra[k] - rb[k]) < 1e-5, (run, k)


def test_world_size_2_equals_world_size_1(tmp_path: Path) -> None:
    code, out2, err = lth(*LOTTERY, "--root", str(tmp_path / "w2"), "--world-size", "2")
    assert code == 0, err
    code, out1, err = lth(*LOTTERY, "--root", str(tmp_path / "w1"), "--world-size", "1")
    assert code == 0, err
    got, want = json.loads(out2), json.loads(out1)
    assert len(got["runs"]) == 3 and len(got["branches"]) == 2
    for key in ("runs", "branches"):  # the same runs at the same paths: the world size is no part of a run's name
        assert [str(Path(r["path"]).relative_to(tmp_path / "w2")) for r in got[key]] == \
               [str(Path(r["path"]).relative_to(tmp_path / "w1")) for r in want[key]]
    check_same_runs(tmp_path / "w2", tmp_path / "w1")
    assert not list((tmp_path / "w2").rglob("*.tmp")) and not list((tmp_path / "w2").rglob("checkpoint.pt"))
    for spec in (tmp_path / "w2").rglob("spec.json"):  # how it was distributed, recorded
        assert json.loads(spec.read_text())["distributed"]["world_size"] == 2
    assert all("distributed" not in json.loads(s.read_text()) for s in (tmp_path / "w1").rglob("spec.json"))
    code, _, err = lth(*LOTTERY, "--root", str(tmp_path / "w2"), "--world-size", "2")
    assert code == 0 and "training a population" not in err  # again: everything is done


def _ranks(pid: int) -> list[int]:
    """The rank processes a command spawned (multiprocessing's spawned children, not its resource tracker)."""
    import psutil

    kids = [p for p in psutil.Process(pid).children(recursive=True)
            if "spawn_main" in " ".join(p.cmdline()) and "resource_tracker" not in " ".join(p.cmdline())]
    return [p.pid for p in sorted(kids, key=lambda p: p.create_time())]


def test_a_killed_rank_and_the_command_run_again_end_as_the_uninterrupted_run(tmp_path: Path) -> None:
    pytest.importorskip("psutil")
    argv = ("lottery", "--preset", "digits_mlp", "--levels", "1", "--training-steps", "400it", "--eval-every",
            "100it", "--checkpoint-every", "10it", "--device", "cpu", "--world-size", "2")
    root = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "lth", *argv, "--root", str(root)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while not list(root.rglob("checkpoint.pt")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    ranks = _ranks(proc.pid)
    assert len(ranks) == 2 and proc.poll() is None, "no checkpoint before the end"
    os.kill(ranks[1], signal.SIGKILL)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 1, err
    line = err.strip().splitlines()[-1]
    assert "rank 1 of 2 died (killed by SIGKILL)" in line and "run the command again" in line, err
    assert not all(RunDir(p.parent).finished() for p in root.rglob("spec.json"))
    code, _, err = lth(*argv, "--root", str(root))
    assert code == 0, err
    code, _, err = lth(*argv, "--root", str(tmp_path / "whole"))
    assert code == 0, err
    check_same_runs(root, tmp_path / "whole", exact=True)


@pytest.mark.parametrize("flags, named", [
    (("--world-size", "3"), "--world-size 3: the global batch of 32 does not split into 3"),
    (("--world-size", "16"), "--world-size 16: this machine has"),
    (("--world-size", "2", "--executor", "slurm", "--slurm-cluster", "local", "--nodes", "4"), "--nodes 4"),
    (("--nodes", "2",), "--nodes is for --executor ray or slurm"),
    (("--world-size", "2", "--executor", "slurm", "--slurm-cluster", "debug"), "the debug cluster runs one task"),
    (("--devices", "cuda:7",), "--devices cuda:7"),
])
def test_bad_world_sizes_nodes_and_devices_are_refused_in_one_line(tmp_path: Path, flags: tuple[str, ...],
                                                                   named: str) -> None:
    if flags == ("--world-size", "16") and (os.cpu_count() or 1) >= 16:
        pytest.skip("a machine with 16 cores")
    code, out, err = lth(*LOTTERY, "--root", str(tmp_path / "s"), *flags)
    assert code == 2 and out == "", err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lth: error: ") and named in lines[0], err
    assert not (tmp_path / "s").exists() or not files(tmp_path / "s")


def test_a_rendezvous_that_never_forms_names_the_address() -> None:
    """The wait is --dist-timeout (RuntimeOptions -> EngineOptions -> each rank's join)."""
    from lth.engine.distributed import teardown
    from lth.executor.distributed import free_port, join
    from lth.studies.runtime import RuntimeOptions

    opts = RuntimeOptions.from_values({"dist_timeout": "2", "device": "cpu"})
    assert opts.engine_options().dist_timeout == 2.0
    assert EngineOptions().dist_timeout == 120.0  # the default
    port = free_port()
    began = time.perf_counter()
    with pytest.raises(RuntimeError, match=f"rendezvous at 127.0.0.1:{port} did not form within 2 s"):
        join(opts.engine_options(), 1, 2, "127.0.0.1", port)  # rank 0 never comes
    teardown()
    assert time.perf_counter() - began < 60


@pytest.mark.parametrize("value, shown", [("0", "0.0; allowed: a number > 0"), ("-5", "-5.0; allowed: a number > 0"),
                                          ("soon", "'soon'")])
def test_a_bad_dist_timeout_names_its_flag(value: str, shown: str) -> None:
    code, _, err = lth("train", "--preset", "digits_mlp", "--dist-timeout", value, "--root", "/nonexistent/never")
    assert code == 2
    assert err.startswith(f"lth: error: --dist-timeout: bad value {shown}"), err
    assert len(err.strip().splitlines()) == 1


def test_four_populations_on_two_devices_equal_one_device(tmp_path: Path) -> None:
    """Four independent runs (one population each) trained on two CPU stand-in devices at once (two worker
    processes of one thread) store the weights one device (one thread) does, bit for bit."""
    def plan(root: Path) -> object:
        return api.train("digits_mlp", replicates=4, root=root, training_steps="30it", eval_every="15it")

    opts = EngineOptions(device="cpu", checkpoint_every=None)
    two, one = plan(tmp_path / "two"), plan(tmp_path / "one")
    sizes: list[int] = []
    assert LocalExecutor(options=opts, devices=("cpu", "cpu"), max_population=1,
                         on_population=sizes.append).device_list() == ["cpu", "cpu"]
    ex = LocalExecutor(options=opts, devices=("cpu", "cpu"), max_population=1, on_population=sizes.append)
    records = ex.run(list(two))
    assert sizes == [1, 1, 1, 1] and all(r["status"] == "complete" for r in records)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        LocalExecutor(options=opts, max_population=1).run(list(one))
    finally:
        torch.set_num_threads(threads)
    check_same_runs(tmp_path / "two", tmp_path / "one", exact=True)


def test_a_two_task_slurm_job_through_submitit_equals_the_local_run(tmp_path: Path) -> None:
    """submitit's local cluster runs the distributed population as one job of 2 tasks (each task's rank and the
    rendezvous from submitit's TorchDistributedEnvironment), equal to the run on one process."""
    pytest.importorskip("submitit")
    argv = ("lottery", "--preset", "digits_mlp", "--levels", "1", "--training-steps", "60it", "--device", "cpu",
            "--json")
    code, _, err = lth(*argv, "--root", str(tmp_path / "slurm"), "--world-size", "2", "--executor", "slurm",
                       "--slurm-cluster", "local", "--slurm-cpus-per-task", "1", "--retries", "0")
    assert code == 0, err
    code, _, err = lth(*argv, "--root", str(tmp_path / "local"))
    assert code == 0, err
    check_same_runs(tmp_path / "slurm", tmp_path / "local")
    logs = sorted((tmp_path / "slurm" / ".submitit").rglob("*_log.out"))
    assert {p.name.rsplit("_", 2)[-2] for p in logs} >= {"0", "1"}  # task 0 and task 1 of each job
    for spec in (tmp_path / "slurm").rglob("spec.json"):
        assert json.loads(spec.read_text())["distributed"]["world_size"] == 2


def test_the_sbatch_script_of_a_distributed_run_asks_for_its_tasks_and_nodes(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """With fake ``srun`` and ``sbatch`` on PATH: a distributed population is one job of world-size tasks over
    --nodes nodes, one GPU per task."""

    pytest.importorskip("submitit")
    import dataclasses

    import cluster_cases as cases

    from lth.executor import EXECUTORS

    sent = cases.fake_sbatch(tmp_path, monkeypatch)
    ex = EXECUTORS["slurm"](options=dataclasses.replace(cases.OPTIONS, world_size=4), folder=tmp_path / "submitit",
                            gpus_per_task=1, cpus_per_task=6, nodes=2)
    g = cases.failing_graph(tmp_path / "store", tmp_path / "log")
    (job,) = ex.start([[g["p"]]], (None, ex.remote_options(), []))
    assert job.job_id == "4242"
    lines = set(sent.read_text().splitlines())
    for want in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=2", "#SBATCH --gpus-per-task=1",
                 "#SBATCH --cpus-per-task=6"):
        assert want in lines, (want, sorted(lines))
    assert not any(line.startswith("#SBATCH --array") for line in lines)


def test_a_two_worker_ray_run_equals_the_local_run(tmp_path: Path) -> None:
    """A local Ray instance of 2 CPUs: the distributed population as 2 tasks in a placement group of 2 bundles,
    equal to the run on one process."""
    pytest.importorskip("ray")
    argv = ("lottery", "--preset", "digits_mlp", "--levels", "1", "--training-steps", "60it", "--device", "cpu",
            "--json")
    code, _, err = lth(*argv, "--root", str(tmp_path / "ray"), "--world-size", "2", "--executor", "ray",
                       "--ray-cpus-per-task", "1", "--retries", "0")
    assert code == 0, err
    code, _, err = lth(*argv, "--root", str(tmp_path / "local"))
    assert code == 0, err
    check_same_runs(tmp_path / "ray", tmp_path / "local")
    for spec in (tmp_path / "ray").rglob("spec.json"):
        assert json.loads(spec.read_text())["distributed"]["world_size"] == 2


def test_the_world_size_is_chosen_from_the_network_the_data_and_the_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    from lth.executor import distributed as d

    assert d.choose_world_size(25_600_000, 1_281_167, 1024, "cpu") == 1  # no GPU: one process
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    assert d.choose_world_size(25_600_000, 1_281_167, 1024, "auto") == 8  # ResNet-50 on ImageNet: every GPU
    assert d.choose_world_size(25_600_000, 1_281_167, 60, "cuda") == 6  # the largest count dividing the batch
    assert d.choose_world_size(272_474, 50_000, 128, "auto") == 1  # ResNet-20 on CIFAR-10: populations
    assert d.choose_world_size(25_600_000, 50_000, 128, "auto") == 1  # a small dataset: populations
    assert d.visible_devices(("auto",)) == [f"cuda:{i}" for i in range(8)]
