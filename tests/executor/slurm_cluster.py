"""A real single-node Slurm cluster for the tests, without accounting: munged, slurmctld and slurmd (Debian's
``slurm-wlm`` and ``munge``; ``.ci/run`` installs them), with their configuration, key, sockets, state and logs in
a temporary folder, on ports nobody else uses, started for the test module and stopped by their process ids.

Where it cannot run (the packages are not installed, not root: slurmd starts jobs as their user) the tests that
use it skip and say why.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo")


def why_not() -> str | None:
    """Why no cluster can be started here, or None."""
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    if missing:
        return f"Slurm is not installed ({', '.join(missing)} not on PATH; apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "slurmd must run as root to start jobs (run the tests as root, as CI does)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SlurmCluster:
    """A running cluster: ``env`` is this process's environment with ``SLURM_CONF`` pointing at it."""

    folder: Path
    env: dict[str, str]
    pids: dict[str, int]

    def cmd(self, *argv: str, check: bool = True) -> str:
        """A Slurm command's stdout, run against this cluster."""
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, check=check, timeout=60).stdout

    def clear(self, timeout: float = 30) -> None:
        """Cancel every job and wait until the queue is empty."""
        self.cmd("scancel", "--full", f"--user={os.geteuid()}", check=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.cmd("squeue", "--noheader", check=False).strip():
            time.sleep(0.3)

    def jobs(self) -> dict[str, str]:
        """``{array element id: state}`` of every job in the queue."""
        out = self.cmd("squeue", "--noheader", "--array", "--format=%i|%T")
        return dict(line.split("|", 1) for line in out.split())


def _config(folder: Path, ports: tuple[int, int], cpus: int) -> str:
    host = socket.gethostname()
    return "\n".join([
        "ClusterName=lthtest", f"SlurmctldHost={host}(127.0.0.1)", f"SlurmctldPort={ports[0]}",
        f"SlurmdPort={ports[1]}", "SlurmUser=root", "SlurmdUser=root",
        "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={folder}/munge.sock",
        f"StateSaveLocation={folder}/state", f"SlurmdSpoolDir={folder}/spool",
        f"SlurmctldPidFile={folder}/slurmctld.pid", f"SlurmdPidFile={folder}/slurmd.pid",
        f"SlurmctldLogFile={folder}/slurmctld.log", f"SlurmdLogFile={folder}/slurmd.log",
        "ProctrackType=proctrack/pgid", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none", "JobCompType=jobcomp/none", "MpiDefault=none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "SchedulerType=sched/backfill",
        "ReturnToService=2", "InactiveLimit=0", "MinJobAge=300", "KillWait=2",
        f"NodeName=lthnode NodeHostname={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1000 State=UNKNOWN",
        "PartitionName=debug Nodes=lthnode Default=YES MaxTime=60 State=UP", ""])


def _stop(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A single-node cluster without accounting for the module; skips (saying why) where it cannot run."""
    reason = why_not()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("slurm")
    folder.chmod(0o755)  # munged wants its socket's folder searchable by everyone
    for d in ("state", "spool"):
        (folder / d).mkdir()
    key = folder / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    conf = folder / "slurm.conf"
    conf.write_text(_config(folder, (free_port(), free_port()), max(2, os.cpu_count() or 2)))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    logs = open(folder / "daemons.log", "ab")  # noqa: SIM115 - open for the daemons' lifetime
    pids: dict[str, int] = {}
    argvs = {"munged": ["munged", "--foreground", "--force", f"--socket={folder}/munge.sock", f"--key-file={key}",
                        f"--log-file={folder}/munged.log", f"--pid-file={folder}/munged.pid",
                        f"--seed-file={folder}/munged.seed"],
             "slurmctld": ["slurmctld", "-D", "-i", "-f", str(conf)],
             "slurmd": ["slurmd", "-D", "-f", str(conf), "-N", "lthnode"]}
    cluster = SlurmCluster(folder, env, pids)
    try:
        for name, argv in argvs.items():
            pids[name] = subprocess.Popen(argv, env=env, stdout=logs, stderr=logs).pid
            time.sleep(0.3)
        deadline = time.monotonic() + 30
        while "idle" not in cluster.cmd("sinfo", "--noheader", "--format=%T", check=False):
            if time.monotonic() > deadline:
                logs.flush()
                tail = [line for name in ("daemons.log", "slurmctld.log", "slurmd.log") if (folder / name).exists()
                        for line in (folder / name).read_text(errors="replace").splitlines()[-5:]]
                pytest.fail(f"the test cluster did not come up in 30 s (logs in {folder}): " + " | ".join(tail))
            time.sleep(0.3)
        yield cluster
    finally:
        if "slurmctld" in pids:
            cluster.clear()
        for name in ("slurmd", "slurmctld", "munged"):
            if name in pids:
                _stop(pids[name])
        logs.close()
