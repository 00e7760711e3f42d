"""The Slurm executor through submitit: jobs run as local processes (``cluster="local"``, no Slurm needed), so
the Slurm path is exercised here; the sbatch script submitit would send to Slurm carries the flags' values; with
fake Slurm commands, a job's status comes from the queue (never ``sacct``) and a request is checked against the
partition; and on a real single-node Slurm without accounting (:mod:`slurm_cluster`), a lottery with a branch
equals the local run, ``scancel`` and SIGTERM end the command by itself and a rerun finishes what is missing."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

submitit = pytest.importorskip("submitit")

import cluster_cases as cases  # noqa: E402  (beside this file: pytest puts its folder on sys.path)
import slurm_cluster  # noqa: E402
from conftest import lth  # noqa: E402
from slurm_cluster import SlurmCluster  # noqa: E402

from lth.errors import UserError  # noqa: E402
from lth.executor import EXECUTORS  # noqa: E402
from lth.executor.slurm import parse_minutes  # noqa: E402
from lth.executor.slurm_query import SlurmUnavailable, gpu_count, limit_minutes, memory_mb  # noqa: E402
from lth.studies.runtime import SlurmOptions  # noqa: E402

SRC = str(Path(__file__).resolve().parents[2] / "src")
slurm = slurm_cluster.slurm  # the fixture: a real single-node cluster without accounting


def local(tmp: Path, **kw) -> object:
    return EXECUTORS["slurm"](options=cases.OPTIONS, folder=tmp / "submitit", cluster="local", poll_s=0.2, **kw)


def test_lottery_with_a_branch_equals_the_local_executor(tmp_path: Path) -> None:
    cases.check_lottery_equals_local(local(tmp_path), tmp_path)


def test_a_failing_node_is_retried_then_reported(tmp_path: Path) -> None:
    records = cases.check_failure_is_retried_then_reported(local(tmp_path, retries=1), tmp_path, 1, small=True)
    error = records["bad"]["error"]  # the one line names the failed element's log, which holds the traceback
    assert error.endswith("_log.err)") and len(error.splitlines()) == 1, error
    log = Path(error.rsplit("(log: ", 1)[1][:-1])
    assert log.parent.parent == tmp_path / "submitit" and "injected failure in bad" in log.read_text()


def test_the_sbatch_script_carries_the_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With fake ``srun`` and ``sbatch`` on PATH, submitit's Slurm executor writes the script it would send."""
    sent = cases.fake_sbatch(tmp_path, monkeypatch)
    ex = EXECUTORS["slurm"](options=cases.OPTIONS, folder=tmp_path / "submitit", partition="gpu",
                            time_min=parse_minutes("4:30"), gpus_per_task=2, cpus_per_task=6, array_parallelism=2,
                            slurm_extra={"account": "lottery"})
    g = cases.failing_graph(tmp_path / "store", tmp_path / "log")
    jobs = ex.start([[g["p"]], [g["alone"]], [g["good"]]], (None, ex.remote_options(), []))
    assert [j.job_id for j in jobs] == ["4242_0", "4242_1", "4242_2"]  # one array, one element per population
    lines = set(sent.read_text().splitlines())
    for want in ("#SBATCH --partition=gpu", "#SBATCH --time=270", "#SBATCH --gpus-per-task=2",
                 "#SBATCH --cpus-per-task=6", "#SBATCH --array=0-2%2", "#SBATCH --account=lottery",
                 "#SBATCH --job-name=lth"):
        assert want in lines, (want, sorted(lines))


@pytest.mark.parametrize("text, minutes", [("90", 90), ("4:00", 240), ("1-02:30", 1590)])
def test_time_limits(text: str, minutes: int) -> None:
    assert parse_minutes(text) == minutes


@pytest.mark.parametrize("text", ["0", "4h", "1-02", "", "-5"])
def test_bad_time_limits_name_the_flag(text: str) -> None:
    with pytest.raises(UserError, match="--slurm-time"):
        parse_minutes(text)


def test_the_job_folder_holds_only_jobs(tmp_path: Path) -> None:
    local(tmp_path).executor()
    assert not (tmp_path / "submitit" / "%j").exists()  # submitit made an empty folder named after the pattern


# ----------------------------------------------------------------------------------- with fake Slurm commands
def fake_slurm(tmp: Path, monkeypatch: pytest.MonkeyPatch, **scripts: str) -> None:
    """Shell scripts named after Slurm's commands first on PATH (``srun`` and ``sbatch`` by default)."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    scripts = {"srun": "exit 0", "sbatch": 'echo "Submitted batch job 4242"', **scripts}
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def bounded(fn, timeout: float = 30.0):
    """``fn()`` in a daemon thread; fails (instead of hanging) when it has not returned after ``timeout``."""
    box: dict[str, object] = {}
    t = threading.Thread(target=lambda: box.setdefault("out", fn()), daemon=True)
    t.start()
    t.join(timeout)
    assert "out" in box, f"still waiting after {timeout} s"
    return box["out"]


def test_a_job_that_left_the_queue_without_its_runs_is_failed_without_sacct(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """No sacct on PATH (accounting disabled): while squeue lists the job it is waited for; once it left the
    queue without a result and its run is unfinished, it is failed with the state scontrol still knows."""
    queued = tmp_path / "queued"
    queued.touch()
    fake_slurm(tmp_path, monkeypatch, squeue=f'[ -e {queued} ] && printf "4242_0|RUNNING\\n4242_1|PENDING\\n"; exit 0',
               scontrol='printf "JobId=4243 ArrayJobId=4242 ArrayTaskId=0 JobState=CANCELLED Reason=None\\n'
                        'JobId=4244 ArrayJobId=4242 ArrayTaskId=1 JobState=CANCELLED Reason=None\\n"',
               sacct='echo "Slurm accounting storage is disabled" >&2; exit 1')
    ex = EXECUTORS["slurm"](options=cases.OPTIONS, folder=tmp_path / "submitit", poll_s=0.1, poll_max_s=0.3)
    g = cases.failing_graph(tmp_path / "store", tmp_path / "log")
    groups = [[g["alone"]], [g["p"]]]
    jobs = ex.start(groups, (None, ex.remote_options(), []))
    ex._flying = dict(zip(jobs, groups, strict=True))
    threading.Timer(1.0, queued.unlink).start()
    t = time.monotonic()
    ended = bounded(lambda: ex.poll(jobs))
    assert time.monotonic() - t >= 0.9  # it waited while the jobs were queued
    assert [j for j, _ in ended] == jobs
    for i, (_, error) in enumerate(ended):
        assert error.startswith(f"Slurm job 4242_{i} left the queue (CANCELLED) without finishing its runs (log: "), \
            error


def test_an_unreachable_controller_is_waited_for_then_the_command_stops(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """squeue fails (controller down): the executor says so once and keeps trying; after ``outage_s`` without an
    answer it stops with one line naming the jobs left to Slurm, and the session does not try to scancel them."""
    fake_slurm(tmp_path, monkeypatch,
               squeue='echo "slurm_load_jobs error: Unable to contact slurm controller (connect failure)" >&2; exit 1',
               scancel=f'touch {tmp_path / "scancelled"}')
    ex = EXECUTORS["slurm"](options=cases.OPTIONS, folder=tmp_path / "submitit", poll_s=0.1, poll_max_s=0.2,
                            outage_s=1.0)
    g = cases.failing_graph(tmp_path / "store", tmp_path / "log")
    groups = [[g["alone"]], [g["p"]]]
    t = time.monotonic()

    def run() -> str:
        with pytest.raises(SlurmUnavailable) as e, ex.session():
            jobs = ex.start(groups, (None, ex.remote_options(), []))
            ex._flying = dict(zip(jobs, groups, strict=True))
            ex.poll(jobs)
        return str(e.value)

    message = bounded(run)
    assert time.monotonic() - t >= 1.0
    assert message.startswith("Slurm's controller did not answer for ")
    assert "jobs 4242_0, 4242_1 were left to Slurm; run the same command again to resume" in message, message
    assert "Unable to contact slurm controller" in message
    assert capsys.readouterr().err.count("cannot read Slurm's queue") == 1
    assert not (tmp_path / "scancelled").exists()


@pytest.mark.parametrize("given, seconds", [("5", 300.0), ("1:30", 5400.0)])
def test_the_unreachable_wait_is_an_option(tmp_path: Path, given: str, seconds: float) -> None:
    opts = SlurmOptions(unreachable=given)
    opts.validate()
    assert opts.executor_kwargs(tmp_path)["outage_s"] == seconds


def test_a_bad_unreachable_wait_names_its_flag() -> None:
    with pytest.raises(UserError) as e:
        SlurmOptions(unreachable="soon").validate()
    assert str(e.value).startswith("--slurm-unreachable: bad value 'soon'; expected minutes")


def partition_line(cpus: int = 8, mem: int = 32000, gres: str = "(null)", limit: str = "1-00:00:00",
                   name: str = "cpu*") -> str:
    return f"{name}|{cpus}|{mem}|{gres}|{limit}"


@pytest.mark.parametrize("kw, flag, message", [
    ({"cpus_per_task": 64}, "--slurm-cpus-per-task", "bad value 64; the nodes of partition cpu have at most 8 CPUs"),
    ({"gpus_per_task": 1}, "--slurm-gpus-per-task", "at most 0 GPUs; allowed: 0 (it has no GPUs)"),
    ({"partition": "nope"}, "--slurm-partition", "unknown partition 'nope'; allowed: cpu, gpu"),
    ({"partition": "gpu", "gpus_per_task": 8}, "--slurm-gpus-per-task", "bad value 8; the nodes of partition gpu"),
    ({"time_min": 2 * 24 * 60}, "--slurm-time", "bad value 2880 minutes; partition cpu allows at most 1440"),
    ({"slurm_extra": {"mem": "64G"}}, "--slurm-option mem=64G", "more memory than any node of partition cpu"),
    ({"slurm_extra": {"account": "nobody"}}, "--slurm-option account=nobody",
     "Slurm refuses this request (sbatch --test-only: allocation failure: Invalid account or account/partition"),
])
def test_a_request_that_could_never_run_is_refused_naming_its_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   kw: dict, flag: str, message: str) -> None:
    """Checked against sinfo's partitions and sbatch --test-only before anything is submitted (Slurm would
    leave such a job pending for ever: reason PartitionConfig)."""
    lines = "\\n".join([partition_line(), partition_line(gres="gpu:a100:4(S:0-1)", name="gpu")])
    fake_slurm(tmp_path, monkeypatch, sinfo=f'printf "{lines}\\n"',
               sbatch='case "$*" in *account=nobody*) echo "allocation failure: Invalid account or '
                      'account/partition combination specified" >&2; exit 1;; esac; echo "Submitted batch job 1"')
    g = cases.failing_graph(tmp_path / "store", tmp_path / "log")
    ex = EXECUTORS["slurm"](options=cases.OPTIONS, folder=tmp_path / "submitit", **kw)
    with pytest.raises(UserError) as e:
        ex.check([g["alone"]])
    text = e.value.render("cli")
    assert flag in text.split(": ", 1)[0] and message in text and len(text.splitlines()) == 1, text
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("partition, gpus", [(None, 0), ("gpu", 1)])
def test_the_gpu_default_follows_the_partition(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               partition: str | None, gpus: int) -> None:
    lines = "\\n".join([partition_line(), partition_line(gres="gpu:4", name="gpu")])
    fake_slurm(tmp_path, monkeypatch, sinfo=f'printf "{lines}\\n"')
    ex = EXECUTORS["slurm"](options=cases.OPTIONS, folder=tmp_path / "submitit", partition=partition)
    ex.check([cases.failing_graph(tmp_path / "store", tmp_path / "log")["alone"]])
    assert ex.gpus() == gpus and ex.parameters().get("slurm_gpus_per_task") == (gpus or None)


@pytest.mark.parametrize("gres, n", [("(null)", 0), ("gpu:4", 4), ("gpu:a100:2(S:0-1),gpu:v100:2", 4),
                                     ("shard:8,gpu:1", 1), ("gpuish:3", 0)])
def test_gpus_are_counted_from_gres(gres: str, n: int) -> None:
    assert gpu_count(gres) == n


@pytest.mark.parametrize("text, minutes", [("infinite", None), ("30", 30), ("4:00:00", 240), ("45:00", 45),
                                           ("1-02:00:00", 1560)])
def test_partition_limits_in_minutes(text: str, minutes: int | None) -> None:
    assert limit_minutes(text) == minutes


def test_memory_values() -> None:
    assert (memory_mb("16G"), memory_mb("512M"), memory_mb("2000"), memory_mb("lots")) == (16384, 512, 2000, None)


def test_submitit_logs_never_reach_stdout() -> None:
    """submitit configures its logger to write to stdout as well as stderr; the driver's stdout must stay the
    one JSON document of --json."""
    code = ("from lth.executor.slurm import _submitit; _submitit(); import logging; "
            "logging.getLogger('submitit').warning('Bypassing sacct error')")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": SRC})
    assert p.returncode == 0 and p.stdout == "" and "Bypassing sacct error" in p.stderr, (p.stdout, p.stderr)


# ------------------------------------------------------------------ on a real Slurm without accounting
DRIVER = [sys.executable, "-m", "lth"]
LOTTERY = ["lottery", "--preset", "digits_mlp", "--levels", "1", "--replicates", "2", "--branches", "reinit",
           "--training-steps", "20it", "--eval-every", "10it", "--device", "cpu"]
ON_SLURM = ["--executor", "slurm", "--slurm-cpus-per-task", "1", "--slurm-time", "10"]


_DRIVERS: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_driver_left_behind():
    """A test that fails part-way leaves no driver running."""
    yield
    for p in _DRIVERS:
        if p.poll() is None:
            p.kill()
            p.communicate()
    _DRIVERS.clear()


def driver(cluster: SlurmCluster, argv: list[str]) -> subprocess.Popen:
    """``lth ARGV`` started against the cluster (with an empty queue: no job of an earlier test left)."""
    cluster.clear()
    p = subprocess.Popen([*DRIVER, *argv], env={**cluster.env, "PYTHONPATH": SRC}, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    _DRIVERS.append(p)
    return p


def ended(p: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """The driver's (stdout, stderr) once it ended by itself; killed, and the test failed, if it has not after
    ``timeout`` seconds (a driver that never sees its jobs end)."""
    try:
        return p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        raise AssertionError(f"the command did not end by itself in {timeout} s: {err[-2000:]}") from None


def running_job(cluster: SlurmCluster, but: set[str] = frozenset(), timeout: float = 60) -> str:
    """The id of a job of the queue that runs (other than ``but``), once one does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ids = [j for j, state in cluster.jobs().items() if state == "RUNNING" and j not in but]
        if ids:
            return ids[0]
        time.sleep(0.2)
    raise AssertionError(f"no job ran within {timeout} s: {cluster.jobs()}")


def test_on_slurm_a_lottery_with_a_branch_equals_the_local_executor(slurm: SlurmCluster, tmp_path: Path) -> None:
    """Run for run and tensor for tensor; --json stdout is one JSON document although sacct fails throughout;
    the GPU default on a partition without GPUs is none."""
    p = driver(slurm, [*LOTTERY, "--root", str(tmp_path / "slurm"), *ON_SLURM, "--json"])
    out, err = ended(p, 240)
    assert p.returncode == 0, err
    got = json.loads(out)  # one document, nothing else
    code, local_out, err = cases.local_reference(lambda: lth(*LOTTERY, "--root", str(tmp_path / "local"), "--json"))
    want = json.loads(local_out)
    for key in ("runs", "branches"):
        assert cases.relative(got[key], tmp_path / "slurm") == cases.relative(want[key], tmp_path / "local")
        assert all(r["status"] == "complete" for r in got[key])
    cases.check_same_weights(tmp_path / "slurm", tmp_path / "local")
    scripts = list((tmp_path / "slurm" / ".submitit").rglob("*_submission.sh"))
    assert scripts and not any("--gpus" in s.read_text() for s in scripts)


def test_on_slurm_scancel_ends_the_command_retries_and_a_rerun_finishes(slurm: SlurmCluster, tmp_path: Path) -> None:
    """A cancelled job leaves the queue without a result: its run is retried; cancelled again, the command ends
    by itself (exit 1, the run failed) and running it again finishes it."""
    argv = ["train", "--preset", "digits_mlp", "--training-steps", "20it", "--device", "cpu",
            "--root", str(tmp_path / "s"), *ON_SLURM, "--retries", "1", "--json"]
    p = driver(slurm, argv)
    first = running_job(slurm)
    slurm.cmd("scancel", first.split("_")[0])
    slurm.cmd("scancel", running_job(slurm, {first}).split("_")[0])
    out, err = ended(p, 120)
    assert p.returncode == 1, err
    assert "left the queue (CANCELLED) without finishing its runs" in err and "trying 1 run(s) again" in err, err
    assert "failed after 2 attempt(s)" in err and json.loads(out)["runs"][0]["status"] == "failed"
    p = driver(slurm, argv)
    out, err = ended(p, 120)
    assert p.returncode == 0, err
    assert json.loads(out)["runs"][0]["status"] == "complete"


def test_on_slurm_sigterm_ends_the_driver_like_ctrl_c(slurm: SlurmCluster, tmp_path: Path) -> None:
    """What Slurm sends a driver at its time limit: the interrupted line with the resume hint, exit 143, and the
    driver's jobs cancelled (nothing left running for nobody)."""
    p = driver(slurm, ["train", "--preset", "digits_mlp", "--training-steps", "20it", "--device", "cpu",
                       "--root", str(tmp_path / "s"), *ON_SLURM])
    job = running_job(slurm)
    p.send_signal(signal.SIGTERM)
    _, err = ended(p, 60)
    assert p.returncode == 143 and "run the same command again to resume" in err, err
    deadline = time.monotonic() + 20
    while job in slurm.jobs() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job not in slurm.jobs()


def test_on_slurm_an_impossible_request_is_refused_at_once(slurm: SlurmCluster, tmp_path: Path) -> None:
    p = driver(slurm, ["train", "--preset", "digits_mlp", "--device", "cpu", "--root", str(tmp_path / "s"),
                       *ON_SLURM, "--slurm-cpus-per-task", "64"])
    _, err = ended(p, 60)
    assert p.returncode == 2 and err.startswith("lth: error: --slurm-cpus-per-task: bad value 64") \
        and len(err.splitlines()) == 1, err
    assert not slurm.jobs() and not (tmp_path / "s").exists()
