"""What the Slurm executor asks Slurm itself, without accounting: the partitions' resources (``sinfo``), whether
a request could ever run (``sbatch --test-only``), which jobs are still queued (``squeue``) and how a job that
left the queue ended (``scontrol show job``).

``sacct`` is never used: where accounting is disabled (``AccountingStorageType=accounting_storage/none``, common
on small clusters) it fails, and submitit, which polls it, then never sees a job end. ``squeue`` and
``scontrol`` talk to the controller only and work on every cluster. Each function runs one command with a
timeout, so a slow or unreachable controller cannot hang the driver.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

TIMEOUT_S = 60.0  # one Slurm command; the controller answers in well under a second when it is up


class SlurmUnavailable(RuntimeError):
    """A Slurm command could not be run or failed (not on PATH, the controller unreachable)."""


def run(argv: list[str], timeout: float = TIMEOUT_S) -> str:
    """``argv``'s stdout; SlurmUnavailable with its one-line error when it cannot run or exits non-zero."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise SlurmUnavailable(f"{argv[0]}: not found on PATH") from None
    except subprocess.TimeoutExpired:
        raise SlurmUnavailable(f"{argv[0]}: no answer in {timeout:.0f} s") from None
    if p.returncode != 0:
        lines = [ln.strip() for ln in (p.stderr + p.stdout).splitlines() if ln.strip()]
        raise SlurmUnavailable(f"{' '.join(argv[:2])}: exit {p.returncode}: {lines[-1] if lines else 'no message'}")
    return p.stdout


@dataclass(frozen=True)
class Partition:
    """One partition, as far as a request per task can use it: the most any one node offers."""

    name: str
    default: bool
    cpus: int  # most CPUs of one node
    memory_mb: int  # most memory of one node (MB)
    gpus: int  # most GPUs of one node (0: none)
    minutes: int | None  # time limit (None: infinite)


def gpu_count(gres: str) -> int:
    """GPUs in one node's GRES text (``gpu:4``, ``gpu:a100:2(S:0-1),gpu:v100:2``, ``(null)``)."""
    return sum(int(n) for n in re.findall(r"(?:^|,)gpu(?::[^:,(]+)?:(\d+)", gres))


def limit_minutes(text: str) -> int | None:
    """A Slurm time limit (``infinite``, ``30``, ``4:00:00``, ``1-00:00:00``, ``45:00`` = mm:ss) in minutes."""
    text = text.strip()
    if text in ("infinite", "UNLIMITED", "n/a", ""):
        return None
    days, _, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    h, m = (parts[0], parts[1]) if len(parts) == 3 else (0, parts[0])
    return int(days or 0) * 24 * 60 + h * 60 + m


def partitions() -> dict[str, Partition]:
    """Every partition this user sees, by name (``sinfo``; SlurmUnavailable if it cannot be asked)."""
    out: dict[str, Partition] = {}
    for line in run(["sinfo", "--noheader", "--exact", "--format=%P|%c|%m|%G|%l"]).splitlines():
        fields = line.strip().split("|")
        if len(fields) != 5:
            continue
        name, cpus, mem, gres, limit = fields
        default = name.endswith("*")
        name = name.rstrip("*")
        try:
            p = Partition(name, default, int(cpus.rstrip("+")), int(mem.rstrip("+")), gpu_count(gres),
                          limit_minutes(limit))
        except ValueError:  # a field this parser does not know: leave the partition to sbatch --test-only
            continue
        if name in out:  # nodes of several shapes: the most any node offers
            q = out[name]
            p = Partition(name, default or q.default, max(p.cpus, q.cpus), max(p.memory_mb, q.memory_mb),
                          max(p.gpus, q.gpus), p.minutes)
        out[name] = p
    return out


def memory_mb(text: str) -> int | None:
    """An sbatch memory value (``16G``, ``16000``, ``512M``) in MB; None if it is not one."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)B?\s*", text.upper())
    if m is None:
        return None
    return int(int(m.group(1)) * {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}[m.group(2)])


def refusal(args: list[str]) -> str | None:
    """Slurm's reason why a job with ``args`` could never run (``sbatch --test-only``), or None if it could."""
    try:
        run(["sbatch", "--test-only", *args, "--wrap=true"])
    except SlurmUnavailable as e:
        if "not found on PATH" in str(e) or "no answer" in str(e):
            return None  # cannot tell: leave it to the submission itself
        return str(e).split(": ", 2)[-1]
    return None


def queued(job_ids: list[str]) -> dict[str, str]:
    """``{array element id: state}`` of the given jobs still in the queue (pending, running, completing, ...), as
    ``squeue`` lists them one element each (``1234_5``); a job that left the queue is absent."""
    arrays = sorted({j.split("_")[0] for j in job_ids})
    try:
        text = run(["squeue", "--noheader", "--array", f"--jobs={','.join(arrays)}", "--format=%i|%T"])
    except SlurmUnavailable as e:
        if "Invalid job id" in str(e):  # every one of them left the queue (and was purged)
            return {}
        raise
    out = {}
    for line in text.splitlines():
        jid, _, state = line.strip().partition("|")
        out[jid] = state
    return out


def final_states(job_ids: list[str]) -> dict[str, str]:
    """``{array element id: JobState}`` that ``scontrol show job`` still knows (for ``MinJobAge`` seconds after a
    job ended, 300 by default); empty where it cannot tell."""
    out: dict[str, str] = {}
    for array in sorted({j.split("_")[0] for j in job_ids}):
        try:
            text = run(["scontrol", "--oneliner", "show", "job", array])
        except SlurmUnavailable:
            continue
        for line in text.splitlines():
            f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            jid = f"{f.get('ArrayJobId', f.get('JobId', ''))}_{f['ArrayTaskId']}" if "ArrayTaskId" in f \
                else f.get("JobId", "")
            if jid and "JobState" in f:
                out[jid] = f["JobState"]
    return out
