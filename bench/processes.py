"""On a CPU, do N commands on one store train a graph faster than one? Runs of networks too large for a CPU
population (LeNet-300-100: one at a time) leave cores idle in one process; started N times with ``--threads 1``
on one store, the commands split the graph's runs (each skips a run another holds). Times the same
``lth lottery`` graph (level 0 of R replicates: R independent runs) once as one command with torch's default
threads, once as one command with one thread, and once as N commands with one thread each, each on a fresh
store; the N commands' final weights must equal the one-thread command's bit for bit.
Prints one JSON object.

    python bench/processes.py --data-dir ../shared/data [--replicates 4] [--processes 2] [--training-steps 2ep]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from lth.store import RunDir


def run(root: Path, args: argparse.Namespace, processes: int, threads: int | None = None) -> float:
    """Wall seconds for ``processes`` commands on ``root`` (one command: ``threads``, default torch's)."""
    cmd = [sys.executable, "-m", "lth", "lottery", "--preset", "lenet_300_100", "--levels", "0", "--replicates",
           str(args.replicates), "--training-steps", args.training_steps, "--data-dir", args.data_dir,
           "--root", str(root), "--checkpoint-every", "never"]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    t0 = time.perf_counter()
    if processes == 1:
        cmd += ["--threads", str(threads)] if threads else []
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        procs = []
        for _ in range(processes):
            procs.append(subprocess.Popen([*cmd, "--threads", "1"], env={**env, "OMP_NUM_THREADS": "1"},
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(0.5)  # as a person starts them: one after another
        for p in procs:
            if p.wait() != 0:
                raise SystemExit(f"a command failed with exit status {p.returncode}")
    return time.perf_counter() - t0


def finals(root: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Final weights by run directory (relative to ``root``)."""
    return {str(p.parent.relative_to(root)): RunDir(p.parent).load_state("final") for p in root.rglob("done.json")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=os.environ.get("LTH_DATA"))
    ap.add_argument("--replicates", type=int, default=4)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--training-steps", default="2ep")
    args = ap.parse_args()
    out: dict = {"bench": "processes", "cpus": os.cpu_count(), "torch": torch.__version__, "runs": args.replicates,
                 "training_steps": args.training_steps, "network": "lenet_300_100"}
    with tempfile.TemporaryDirectory() as tmp:
        one, one_1, many = Path(tmp) / "one", Path(tmp) / "one_thread", Path(tmp) / f"x{args.processes}"
        out["one_command_s"] = round(run(one, args, 1), 2)
        out["one_command_one_thread_s"] = round(run(one_1, args, 1, threads=1), 2)
        out[f"{args.processes}_commands_one_thread_each_s"] = round(run(many, args, args.processes), 2)
        a, b = finals(one_1), finals(many)
        out["same_runs"] = sorted(a) == sorted(b) and len(a) == args.replicates
        # the split changes nothing: each run trains as it would alone, with one thread in both
        out["same_weights_as_one_command_one_thread"] = out["same_runs"] and all(
            torch.equal(a[k][n], b[k][n]) for k in a for n in a[k])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
