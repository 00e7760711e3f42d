"""A run killed part-way and started again ends bit-identical to an uninterrupted one (CPU), and two processes
started on the same spec never both train it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from lth.store import RunDir

ARGS = ["train", "--preset", "digits_mlp", "--training-steps", "60ep", "--checkpoint-every", "1ep"]


def lth(root: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "LTH_LOG": str(root.parent / "error.log")}
    return subprocess.Popen([sys.executable, "-m", "lth.cli", *ARGS, "--root", str(root), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def run_dir(root: Path) -> Path:
    (d,) = root.glob("train_*/replicate_0")
    return d


def test_killed_run_resumes_bit_identical(tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    assert lth(whole).wait(timeout=300) == 0

    broken = tmp_path / "broken"
    proc = lth(broken)
    deadline = time.time() + 120
    ckpt = None
    while time.time() < deadline:
        found = list(broken.glob("train_*/replicate_0/checkpoint.pt"))
        if found:
            ckpt = found[0]
            time.sleep(0.2)  # let it get a few epochs further, then kill it hard
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt is not None, "no checkpoint appeared"
    assert RunDir(run_dir(broken)).done is None, "the run finished before it was killed: nothing was tested"
    killed_at = torch.load(ckpt, weights_only=True)["iteration"]
    assert killed_at > 0

    rerun = lth(broken)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert f"resuming 1 run from its checkpoint at iteration {killed_at} of " in err.decode(), err
    a, b = RunDir(run_dir(whole)), RunDir(run_dir(broken))
    assert b.done["status"] == "complete"
    fa, fb = a.load_tensors("states/final.pt"), b.load_tensors("states/final.pt")
    for k in fa:
        assert torch.equal(fa[k], fb[k]), k
    assert a.read_metrics() == b.read_metrics()
    assert not (run_dir(broken) / "checkpoint.pt").exists()


def test_two_processes_on_one_spec_train_it_once(tmp_path: Path) -> None:
    root = tmp_path / "store"
    p1, p2 = lth(root, "--training-steps", "20ep"), lth(root, "--training-steps", "20ep")
    _, e1 = p1.communicate(timeout=300)
    _, e2 = p2.communicate(timeout=300)
    assert p1.returncode == 0 and p2.returncode == 0
    trained = [e for e in (e1.decode(), e2.decode()) if "trained 1 population" in e]
    assert len(trained) == 1, (e1, e2)
    assert RunDir(run_dir(root)).done["status"] == "complete"
    assert len(RunDir(run_dir(root)).read_metrics()) == 21
