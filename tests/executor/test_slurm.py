"""The Slurm executor through submitit: jobs run as local processes (``cluster="local"``, no Slurm needed), so
the Slurm path is exercised here; the sbatch script submitit would send to Slurm carries the flags' values."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

submitit = pytest.importorskip("submitit")

import cluster_cases as cases  # noqa: E402  (beside this file: pytest puts its folder on sys.path)

from lth.errors import UserError  # noqa: E402
from lth.executor import EXECUTORS  # noqa: E402
from lth.executor.slurm import parse_minutes  # noqa: E402


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
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sent = tmp_path / "sent.sh"
    for name, body in (("srun", "exit 0"), ("sbatch", f'cp "$1" {sent}; echo "Submitted batch job 4242"')):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
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
