"""On a CPU, do N commands on one store train a graph faster than one? Runs of networks too large for a CPU
population (LeNet-300-100: one at a time) leave cores idle in one process; started N times with ``--threads 1``
on one store, the commands split the graph's runs (each skips a run another holds). Times the same
``lth lottery`` graph (level 0 of R replicates: R independent runs) once as one command with torch's default
threads and once as N commands with one thread each, each on a fresh store, and compares their final weights.
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


def run(root: Path, args: argparse.Namespace, processes: int) -> float:
    """Wall seconds for ``processes`` commands on ``root`` (one command: torch's default threads)."""
    cmd = [sys.executable, "-m", "lth", "lottery", "--preset", "lenet_300_100", "--levels", "0", "--replicates",
           str(args.replicates), "--training-steps", args.training_steps, "--data-dir", args.data_dir,
           "--root", str(root), "--checkpoint-every", "never"]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    t0 = time.perf_counter()
    if processes == 1:
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
        one, many = Path(tmp) / "one", Path(tmp) / f"x{args.processes}"
        out["one_command_s"] = round(run(one, args, 1), 2)
        out[f"{args.processes}_commands_one_thread_each_s"] = round(run(many, args, args.processes), 2)
        a, b = finals(one), finals(many)
        out["same_runs"] = sorted(a) == sorted(b) and len(a) == args.replicates
        # one thread against torch's default: matrix products may sum in another order, so not bit for bit
        out["max_abs_weight_difference"] = max(float((a[k][n] - b[k][n]).abs().max()) for k in a for n in a[k]) \
            if out["same_runs"] else None
    print(json.dumps(out))


if __name__ == "__main__":
    main()
